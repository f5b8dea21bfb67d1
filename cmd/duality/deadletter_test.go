package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
)

// runPaymentsApp runs, to the end of its input, an app "payments-app"
// under the dead-letter policy that reads int64 amounts from "payments"
// in step "read-payment" and writes them in cents to "payments-cents" in
// step "to-cents", which panics on an amount of 666 unless fixed.
func runPaymentsApp(t *testing.T, be backend, fixed bool) duality.Metrics {
	t.Helper()
	b, closeBroker := be.open(t)
	defer closeBroker()
	sb := stream.NewBuilder()
	in := stream.From(sb, "payments", codec.String(), codec.Int64(), stream.Named("read-payment"))
	stream.MapValues(in, func(euros int64) int64 {
		if euros == 666 && !fixed {
			panic("cursed amount")
		}
		return euros * 100
	}, stream.Named("to-cents")).To("payments-cents")
	topo, err := sb.Build()
	require.NoError(t, err)
	app, err := duality.New("payments-app", topo, b, duality.Workers(1), duality.OnProcessingError(duality.DeadLetterOnError(nil)))
	require.NoError(t, err)
	require.NoError(t, app.RunToEnd(t.Context()))
	return app.Metrics()
}

// deadLetterLine is a line of consume's output of a dead-letter topic.
type deadLetterLine struct {
	consumed
	KeyBase64  string `json:"key_base64"`
	DeadLetter *struct {
		Error     string `json:"error"`
		Step      string `json:"step"`
		Topic     string `json:"topic"`
		Partition int32  `json:"partition"`
		Offset    int64  `json:"offset"`
		Task      string `json:"task"`
		App       string `json:"app"`
	} `json:"dead_letter"`
}

// TestDeadLetters runs an app that sends two poison payments to its
// dead-letter topic (one whose value does not decode, one that breaks a
// step), shows them with consume, fixes the first with an edit of its
// line and the second by fixing the app, replays both with replay, and
// checks that the fixed app processes them: as a user would, with the
// built binary.
func TestDeadLetters(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		ok(t, "", be.args("topics", "create", "payments", "-p", "2")...)
		ok(t, "", be.args("topics", "create", "payments-cents", "-p", "2")...)
		amount := func(n int64) []byte { v, _ := codec.Int64().Append(nil, n); return v }
		at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		b, closeBroker := be.open(t)
		require.NoError(t, b.Produce(t.Context(), []broker.Record{
			{Topic: "payments", Partition: 0, Key: []byte("ada"), Value: amount(12), Timestamp: at},
			{Topic: "payments", Partition: 1, Key: []byte("bob"), Value: []byte("12.50"), Timestamp: at.Add(time.Second),
				Headers: []broker.Header{{Key: "source", Value: []byte("legacy-pos")}}},
			{Topic: "payments", Partition: 1, Key: []byte("cy"), Value: amount(666), Timestamp: at.Add(2 * time.Second)},
			{Topic: "payments", Partition: 0, Key: []byte("dee"), Value: amount(3), Timestamp: at.Add(3 * time.Second)},
		}))
		closeBroker()

		m := runPaymentsApp(t, be, false)
		require.EqualValues(t, 2, m.RecordsProcessed)
		require.EqualValues(t, 2, m.RecordsDeadLettered)

		// consume shows the dead-letter headers decoded.
		out := ok(t, "", be.args("consume", "payments-app-dlq", "--value-codec", "int64")...)
		var lines []string
		var dead []deadLetterLine
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			var l deadLetterLine
			require.NoError(t, json.Unmarshal(sc.Bytes(), &l), "line %q", sc.Text())
			lines = append(lines, sc.Text())
			dead = append(dead, l)
		}
		require.Len(t, dead, 2)
		bob, cy := dead[0], dead[1]
		require.Equal(t, `"bob"`, string(bob.Key))
		require.NotNil(t, bob.DeadLetter)
		require.Equal(t, "decode value: codec: invalid encoding: int64 needs 8 bytes, got 5", bob.DeadLetter.Error)
		require.Equal(t, "read-payment", bob.DeadLetter.Step)
		require.Equal(t, "payments", bob.DeadLetter.Topic)
		require.Equal(t, int32(1), bob.DeadLetter.Partition)
		require.Equal(t, int64(0), bob.DeadLetter.Offset)
		require.Equal(t, "0_1", bob.DeadLetter.Task)
		require.Equal(t, "payments-app", bob.DeadLetter.App)
		require.Contains(t, bob.ValueError, "int64 needs 8 bytes")
		require.Equal(t, "MTIuNTA=", bob.ValueBase64) // "12.50", unchanged
		require.True(t, at.Add(time.Second).Equal(bob.Timestamp))
		require.Equal(t, int32(1), bob.Partition, "a dead letter keeps its partition")
		require.Equal(t, `"cy"`, string(cy.Key))
		require.Equal(t, "666", string(cy.Value))
		require.Equal(t, "to-cents", cy.DeadLetter.Step)
		require.Equal(t, "panic: cursed amount", cy.DeadLetter.Error)
		require.Equal(t, int64(1), cy.DeadLetter.Offset)

		// A line of a record that is no dead letter is refused without
		// --to; one whose timestamp is before 1970 (the poison of an
		// invalid timestamp) until it is fixed.
		r := runDuality(t, `{"topic":"payments","partition":0,"offset":0,"timestamp":"2026-03-01T12:00:00Z","key":"ada","value":12}`,
			be.args("replay", "--value-codec", "int64")...)
		require.Equal(t, 1, r.code)
		require.Contains(t, r.stderr, "line 1: record payments/0@0 is not a dead letter (no duality.error header): give --to")
		r = runDuality(t, strings.Replace(lines[1], `"timestamp":"2026-03-01T12:00:02Z"`, `"timestamp":"1969-12-31T23:59:59.999Z"`, 1),
			be.args("replay", "--value-codec", "int64")...)
		require.Equal(t, 1, r.code, r.stderr)
		require.Contains(t, r.stderr, "line 1: timestamp")

		// Fix bob's amount in his line (as jq would), leave cy's (the
		// app is fixed), and replay both.
		var fixedBob map[string]any
		require.NoError(t, json.Unmarshal([]byte(lines[0]), &fixedBob))
		fixedBob["value"] = 13
		edited, err := json.Marshal(fixedBob)
		require.NoError(t, err)
		r = runDuality(t, string(edited)+"\n"+lines[1]+"\n", be.args("replay", "--value-codec", "int64")...)
		require.Equal(t, 0, r.code, r.stderr)
		require.Equal(t, "replayed 2 records: payments 2\n", r.stderr)

		b, closeBroker = be.open(t)
		recs, err := broker.ReadAll(t.Context(), b, "payments")
		require.NoError(t, err)
		closeBroker()
		var replayed []string
		for _, r := range recs {
			if r.Offset < 2 {
				continue // the records produced before
			}
			n, err := codec.Int64().Decode(r.Value)
			require.NoError(t, err)
			var hs []string
			for _, h := range r.Headers {
				hs = append(hs, h.Key+"="+string(h.Value))
			}
			replayed = append(replayed, fmt.Sprintf("%s p%d %d %s %v", r.Key, r.Partition, n, r.Timestamp.UTC().Format(time.RFC3339), hs))
		}
		require.Equal(t, []string{
			"bob p1 13 2026-03-01T12:00:01Z [source=legacy-pos]",
			"cy p1 666 2026-03-01T12:00:02Z []",
		}, replayed, "each back in its partition with its timestamp and its own headers only")

		m = runPaymentsApp(t, be, true)
		require.EqualValues(t, 2, m.RecordsProcessed, "the two replayed records")
		require.Zero(t, m.RecordsDeadLettered)
		cents := parseConsumed(t, ok(t, "", be.args("consume", "payments-cents", "--value-codec", "int64")...))
		got := map[string]string{}
		for _, c := range cents {
			got[string(c.Key)] = string(c.Value)
		}
		require.Equal(t, map[string]string{`"ada"`: "1200", `"dee"`: "300", `"bob"`: "1300", `"cy"`: "66600"}, got)
	})
}
