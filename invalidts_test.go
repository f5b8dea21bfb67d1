package duality_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
)

// invalidTimestampApp produces, before the app starts, records to "in" and
// "in2" (one partition each, read by one task in timestamp order) of
// which three have invalid timestamps: a2's broker timestamp is -1, a4's
// extractor returns a time in year 10000, and a6 is a tombstone (the
// extractor is not called for it) with broker timestamp -1. It returns an
// app that passes the records to "out" through a source with a
// WithTimestamp extractor.
func invalidTimestampApp(t *testing.T, b broker.Broker, id string, opts ...duality.Option) *duality.App {
	t.Helper()
	createTopic(t, b, "in", 1)
	createTopic(t, b, "in2", 1)
	createTopic(t, b, "out", 1)
	rec := func(topic, key string, value []byte, ms int64) broker.Record {
		return broker.Record{Topic: topic, Partition: 0, Key: []byte(key), Value: value, Timestamp: time.UnixMilli(ms)}
	}
	require.NoError(t, b.Produce(t.Context(), []broker.Record{
		rec("in", "a0", []byte("a0"), 1000),
		rec("in", "a1", []byte("a1"), 3000),
		rec("in", "a2", []byte("a2"), -1),
		rec("in", "a3", []byte("a3"), 5000),
		rec("in", "a4", []byte("a4!"), 5500),
		rec("in", "a5", []byte("a5"), 7000),
		rec("in", "a6", nil, -1),
		rec("in", "a7", []byte("a7"), 9000),
	}))
	require.NoError(t, b.Produce(t.Context(), []broker.Record{
		rec("in2", "b0", []byte("b0"), 2000),
		rec("in2", "b1", []byte("b1"), 4000),
		rec("in2", "b2", []byte("b2"), 6000),
		rec("in2", "b3", []byte("b3"), 8000),
	}))
	sb := stream.NewBuilder()
	stream.FromTopics(sb, []string{"in", "in2"}, codec.String(), codec.String(), stream.Named("src"),
		stream.WithTimestamp(func(_, v string, recordTime time.Time) time.Time {
			if strings.HasSuffix(v, "!") {
				return time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
			}
			return recordTime
		})).To("out")
	topo, err := sb.Build()
	require.NoError(t, err)
	app, err := duality.New(id, topo, b, append([]duality.Option{duality.Workers(1)}, opts...)...)
	require.NoError(t, err)
	return app
}

// TestInvalidTimestampFailsApp: by default a record with an invalid
// timestamp fails the app with a *ProcessingError wrapping the source's
// *stream.NodeError, which matches stream.ErrInvalidTimestamp.
func TestInvalidTimestampFailsApp(t *testing.T) {
	b := openBroker(t)
	app := invalidTimestampApp(t, b, "invalid-ts-fail")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second) // a bound: the app fails at once
	defer cancel()
	err := app.Run(ctx)
	require.ErrorIs(t, err, stream.ErrInvalidTimestamp)
	var pe *duality.ProcessingError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "in", pe.Topic)
	require.EqualValues(t, 2, pe.Offset)
	var ne *stream.NodeError
	require.ErrorAs(t, err, &ne)
	require.Equal(t, "src", ne.Node)
	require.EqualError(t, err, `duality: app "invalid-ts-fail": task 0_0: processing record in/0 at offset 2: `+
		`step "src": stream: invalid record timestamp: -1 ms (1969-12-31T23:59:59.999Z) is before the Unix epoch`)
}

// TestInvalidTimestampSkipped: under SkipOnError the three records with
// invalid timestamps are skipped and counted, each as soon as it is the
// first of its partition, and the others are written exactly once, in
// timestamp order across the task's two partitions.
func TestInvalidTimestampSkipped(t *testing.T) {
	b := openBroker(t)
	var mu sync.Mutex
	var skipped []string
	app := invalidTimestampApp(t, b, "invalid-ts-skip", duality.OnProcessingError(duality.SkipOnError(func(pe *duality.ProcessingError) {
		var ne *stream.NodeError
		ok := errors.As(pe, &ne) && ne.Node == "src"
		mu.Lock()
		defer mu.Unlock()
		skipped = append(skipped, fmt.Sprintf("%s/%d %v %v", pe.Topic, pe.Offset, ok, errors.Is(pe, stream.ErrInvalidTimestamp)))
	})))
	stop, _ := runApp(t, app)
	eventually(t, "12 records handled", func() bool { m := app.Metrics(); return m.RecordsProcessed+m.RecordsSkipped == 12 })
	require.NoError(t, stop())
	m := app.Metrics()
	require.EqualValues(t, 3, m.RecordsSkipped)
	require.EqualValues(t, 9, m.RecordsProcessed)
	mu.Lock()
	require.Equal(t, []string{"in/2 true true", "in/4 true true", "in/6 true true"}, skipped)
	mu.Unlock()
	var got []string
	for _, r := range readTopic(t, b, "out") {
		got = append(got, fmt.Sprintf("%s@%d", r.Value, r.Timestamp.UnixMilli()))
	}
	require.Equal(t, []string{"a0@1000", "b0@2000", "a1@3000", "b1@4000", "a3@5000", "b2@6000", "a5@7000", "b3@8000", "a7@9000"}, got)
}
