package duality_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/internal/crashtest"
	"github.com/duality-streams/duality/stream"
)

// The dead-letter tests run one app on a mix of good and poison records:
// every input record must end up either processed (its output in
// "dl-out") or in the dead-letter topic, exactly once, with headers that
// say what failed.

// dlReading is the app's output value.
type dlReading struct {
	N     int64   `json:"n"`
	Ratio float64 `json:"ratio"`
	Note  string  `json:"note,omitempty"`
}

// The poison kinds, by input index i (i % dlCycle), and the good ones.
const (
	dlCycle     = 12
	dlBadEncode = 3             // a value codec.Int64 cannot decode: fails in "parse"
	dlBadTime   = 5             // the extractor returns year 10000: fails in "parse"
	dlPanic     = 7             // "compute" panics
	dlOversized = 9             // "compute" makes an output larger than the broker takes: fails in "emit"
	dlNaN       = 11            // "compute" makes a ratio JSON cannot encode: fails in "emit"
	dlBigValue  = 1<<20 + 4<<10 // over the limits of both backends (1 MiB, 1000012-512 bytes)
)

// dlKind returns the poison kind of input i, or 0 for a good one.
func dlKind(i int) int {
	switch k := i % dlCycle; k {
	case dlBadEncode, dlBadTime, dlPanic, dlOversized, dlNaN:
		return k
	}
	return 0
}

// dlWant says, for each poison kind, the step that fails and a part of
// the error's text.
var dlWant = map[int]struct{ step, err string }{
	dlBadEncode: {"parse", "decode value: codec: invalid encoding"},
	dlBadTime:   {"parse", "stream: invalid record timestamp"},
	dlPanic:     {"compute", "panic: poison 7"},
	dlOversized: {"emit", "exceeds the limit"},
	dlNaN:       {"emit", "json: unsupported value: NaN"},
}

var dlBase = time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)

// dlInput produces n records to "dl-in" (created with parts partitions),
// keys k<i>, values i as codec.Int64 (or undecodable bytes), timestamps
// dlBase + i s, and a header trace=t<i>; it creates "dl-out".
func dlInput(t *testing.T, b broker.Broker, parts int32, n int) {
	t.Helper()
	createTopic(t, b, "dl-in", parts)
	createTopic(t, b, "dl-out", parts)
	recs := make([]broker.Record, n)
	for i := range recs {
		v, err := codec.Int64().Append(nil, int64(i))
		require.NoError(t, err)
		if dlKind(i) == dlBadEncode {
			v = []byte("bad")
		}
		recs[i] = broker.Record{Topic: "dl-in", Partition: broker.PartitionByKey, Key: fmt.Appendf(nil, "k%d", i), Value: v,
			Timestamp: dlBase.Add(time.Duration(i) * time.Second),
			Headers:   []broker.Header{{Key: "trace", Value: fmt.Appendf(nil, "t%d", i)}}}
	}
	require.NoError(t, b.Produce(t.Context(), recs))
}

// dlTopology reads "dl-in" in step "parse", computes a reading in
// "compute" and writes it to "dl-out" as JSON in "emit"; the poison
// kinds fail as dlWant says.
func dlTopology(t testing.TB) *stream.Topology {
	sb := stream.NewBuilder()
	in := stream.From(sb, "dl-in", codec.String(), codec.Int64(), stream.Named("parse"),
		stream.WithTimestamp(func(_ string, v int64, ts time.Time) time.Time {
			if v%dlCycle == dlBadTime {
				return time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
			}
			return ts
		}))
	stream.MapValues(in, func(v int64) dlReading {
		r := dlReading{N: v, Ratio: float64(v) / dlCycle}
		switch v % dlCycle {
		case dlPanic:
			panic(fmt.Sprintf("poison %d", dlPanic))
		case dlOversized:
			r.Note = strings.Repeat("x", dlBigValue)
		case dlNaN:
			r.Ratio = math.NaN()
		}
		return r
	}, stream.Named("compute")).To("dl-out", stream.Named("emit"), stream.WithValueCodec(codec.JSON[dlReading]()))
	topo, err := sb.Build()
	require.NoError(t, err)
	return topo
}

// dlCounts are what a check of the two sides found.
type dlCounts struct{ processed, deadLettered int }

// checkDeadLetters checks that every input record of "dl-in" whose offset
// committed says it is handled (all of them with committed nil) is either
// in "dl-out" (good ones) or in the dead-letter topic dlq (poison ones),
// exactly once, and that nothing else is in either: the dead letters
// with their record's key, value, timestamp and headers, and the
// dead-letter headers that name the failure.
func checkDeadLetters(t *testing.T, b broker.Broker, app, dlq string, committed func(broker.Record) bool) dlCounts {
	t.Helper()
	in := readTopic(t, b, "dl-in")
	byKey := map[string]broker.Record{}
	for _, r := range in {
		byKey[string(r.Key)] = r
	}
	outs := map[string]int{}
	for _, r := range readTopic(t, b, "dl-out") {
		src, ok := byKey[string(r.Key)]
		require.True(t, ok, "output of no input: %s", r.Key)
		var i int
		_, err := fmt.Sscanf(string(r.Key), "k%d", &i)
		require.NoError(t, err)
		require.Zero(t, dlKind(i), "output of poison record %s", r.Key)
		require.JSONEq(t, fmt.Sprintf(`{"n":%d,"ratio":%v}`, i, float64(i)/dlCycle), string(r.Value))
		require.True(t, committed == nil || committed(src), "output of the uncommitted input %s", r.Key)
		outs[string(r.Key)]++
	}
	dls := map[string]int{}
	for _, r := range readTopic(t, b, dlq) {
		src, ok := byKey[string(r.Key)]
		require.True(t, ok, "dead letter of no input: %q", r.Key)
		var i int
		_, err := fmt.Sscanf(string(r.Key), "k%d", &i)
		require.NoError(t, err)
		want, poison := dlWant[dlKind(i)]
		require.True(t, poison, "dead letter of the good record %s", r.Key)
		require.True(t, committed == nil || committed(src), "dead letter of the uncommitted input %s", r.Key)
		dl, own, err := duality.ParseDeadLetter(r.Headers)
		require.NoError(t, err)
		require.Contains(t, dl.Error, want.err, "dead letter of %s", r.Key)
		require.Equal(t, duality.DeadLetter{Error: dl.Error, Step: want.step, Topic: "dl-in", Partition: src.Partition,
			Offset: src.Offset, Task: fmt.Sprintf("0_%d", src.Partition), App: app}, dl)
		require.Equal(t, src.Partition, r.Partition, "a dead letter keeps its record's partition")
		require.Equal(t, src.Key, r.Key)
		require.Equal(t, src.Value, r.Value)
		require.Equal(t, src.Headers, own)
		require.Equal(t, src.Timestamp.UnixMilli(), r.Timestamp.UnixMilli())
		dls[string(r.Key)]++
	}
	var c dlCounts
	for _, r := range in {
		k := string(r.Key)
		if committed != nil && !committed(r) {
			continue
		}
		require.Equal(t, 1, outs[k]+dls[k], "record %s/%d@%d: %d outputs, %d dead letters", r.Topic, r.Partition, r.Offset, outs[k], dls[k])
		c.processed += outs[k]
		c.deadLettered += dls[k]
	}
	return c
}

// TestDeadLetterMix runs the app on good and poison records on each
// backend, twice (the second run finds everything committed), and counts
// both sides.
func TestDeadLetterMix(t *testing.T) {
	const n = 120 // 50 poison
	for _, be := range []struct {
		name string
		open func(t *testing.T) broker.Broker
	}{
		{"embedded", func(t *testing.T) broker.Broker { return openBroker(t) }},
		{"kafka", func(t *testing.T) broker.Broker { return newKafkaBroker(t) }},
	} {
		t.Run(be.name, func(t *testing.T) {
			b := be.open(t)
			dlInput(t, b, 2, n)
			var mu sync.Mutex
			failed := map[string]int{}
			for run := range 2 {
				app, err := duality.New("dl-app", dlTopology(t), b, duality.Workers(2), duality.CommitInterval(5*time.Millisecond),
					duality.OnProcessingError(duality.DeadLetterOnError(func(pe *duality.ProcessingError) {
						mu.Lock()
						defer mu.Unlock()
						failed[fmt.Sprintf("%s/%d@%d", pe.Topic, pe.Partition, pe.Offset)]++
					})))
				require.NoError(t, err)
				ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
				require.NoError(t, app.RunToEnd(ctx))
				cancel()
				m := app.Metrics()
				if run == 0 {
					require.EqualValues(t, n-50, m.RecordsProcessed)
					require.EqualValues(t, 50, m.RecordsDeadLettered)
					require.Zero(t, m.RecordsSkipped)
				} else {
					require.Zero(t, m.RecordsProcessed+m.RecordsDeadLettered, "the second run found everything committed")
				}
				c := checkDeadLetters(t, b, "dl-app", "dl-app-dlq", nil)
				require.Equal(t, dlCounts{processed: n - 50, deadLettered: 50}, c)
			}
			mu.Lock()
			require.Len(t, failed, 50)
			for k, c := range failed {
				require.Equal(t, 1, c, "callback for %s", k)
			}
			mu.Unlock()
			info, err := b.DescribeTopic(t.Context(), "dl-app-dlq")
			require.NoError(t, err)
			require.EqualValues(t, 2, info.Config.Partitions)
			require.Equal(t, broker.CleanupDelete, info.Config.Cleanup)
			require.Negative(t, info.Config.RetentionTime, "dead letters are kept however old their timestamps")
		})
	}
}

// TestDeadLetterTopicOption: a dead-letter topic of the user's, existing
// with fewer partitions than the input, takes each dead letter in its
// record's partition modulo its count.
func TestDeadLetterTopicOption(t *testing.T) {
	b := openBroker(t)
	dlInput(t, b, 3, 24)
	createTopic(t, b, "my-dlq", 1)
	app, err := duality.New("dl-own", dlTopology(t), b,
		duality.OnProcessingError(duality.DeadLetterOnError(nil, duality.DeadLetterTopic("my-dlq"))))
	require.NoError(t, err)
	require.NoError(t, app.RunToEnd(t.Context()))
	want := map[string]int32{} // the poison records' partitions
	for _, r := range readTopic(t, b, "dl-in") {
		var i int
		_, err := fmt.Sscanf(string(r.Key), "k%d", &i)
		require.NoError(t, err)
		if dlKind(i) != 0 {
			want[string(r.Key)] = r.Partition
		}
	}
	got := map[string]int32{}
	for _, r := range readTopic(t, b, "my-dlq") {
		require.Zero(t, r.Partition)
		dl, _, err := duality.ParseDeadLetter(r.Headers)
		require.NoError(t, err)
		got[string(r.Key)] = dl.Partition
	}
	require.Len(t, got, 10)
	require.Equal(t, want, got)
	_, err = b.DescribeTopic(t.Context(), "dl-own-dlq")
	require.ErrorIs(t, err, broker.ErrUnknownTopic, "no default topic made")
}

// TestDeadLetterConfigErrors: a dead-letter topic that is no topic name
// or a topic of the topology fails New; a compacted one fails Run.
func TestDeadLetterConfigErrors(t *testing.T) {
	b := openBroker(t)
	for _, name := range []string{"bad name", "dl-in", "dl-out", "dl-app-topology"} {
		_, err := duality.New("dl-app", dlTopology(t), b,
			duality.OnProcessingError(duality.DeadLetterOnError(nil, duality.DeadLetterTopic(name))))
		require.ErrorIs(t, err, duality.ErrInvalidConfig, name)
		require.ErrorContains(t, err, name)
	}
	long := strings.Repeat("a", 247) // a valid app id; "<id>-dlq" is too long
	_, err := duality.New(long, dlTopology(t), b, duality.OnProcessingError(duality.DeadLetterOnError(nil)))
	require.ErrorIs(t, err, duality.ErrInvalidConfig)
	require.ErrorContains(t, err, "dead-letter topic")
	_, err = duality.New(long, dlTopology(t), b)
	require.NoError(t, err)

	dlInput(t, b, 1, 4)
	require.NoError(t, b.CreateTopic(t.Context(), "dl-app-dlq", broker.TopicConfig{Partitions: 1, Cleanup: broker.CleanupCompact}))
	app, err := duality.New("dl-app", dlTopology(t), b, duality.OnProcessingError(duality.DeadLetterOnError(nil)))
	require.NoError(t, err)
	err = app.RunToEnd(t.Context())
	require.ErrorContains(t, err, `dead-letter topic "dl-app-dlq" has cleanup policy compact`)
	require.Empty(t, readTopic(t, b, "dl-out"), "nothing processed")
}

// TestDeadLetterHeadersReplaced: a record that carries dead-letter
// headers (a replayed dead letter that fails again) gets new ones, not a
// second set.
func TestDeadLetterHeadersReplaced(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "dl-in", 1)
	createTopic(t, b, "dl-out", 1)
	require.NoError(t, b.Produce(t.Context(), []broker.Record{{Topic: "dl-in", Key: []byte("k3"), Value: []byte("bad"),
		Timestamp: dlBase, Headers: []broker.Header{{Key: "a", Value: []byte("1")}, {Key: duality.DeadLetterErrorHeader, Value: []byte("old")},
			{Key: duality.DeadLetterOffsetHeader, Value: []byte("99")}, {Key: "b", Value: []byte("2")}}}}))
	app, err := duality.New("dl-app", dlTopology(t), b, duality.OnProcessingError(duality.DeadLetterOnError(nil)))
	require.NoError(t, err)
	require.NoError(t, app.RunToEnd(t.Context()))
	dls := readTopic(t, b, "dl-app-dlq")
	require.Len(t, dls, 1)
	var keys []string
	for _, h := range dls[0].Headers {
		keys = append(keys, h.Key)
	}
	require.Equal(t, []string{"a", "b", duality.DeadLetterErrorHeader, duality.DeadLetterStepHeader, duality.DeadLetterTopicHeader,
		duality.DeadLetterPartitionHeader, duality.DeadLetterOffsetHeader, duality.DeadLetterTaskHeader, duality.DeadLetterAppHeader}, keys)
	dl, own, err := duality.ParseDeadLetter(dls[0].Headers)
	require.NoError(t, err)
	require.Zero(t, dl.Offset)
	require.Equal(t, []broker.Header{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("2")}}, own)
}

// TestParseDeadLetter: headers without an error header are no dead
// letter; malformed numbers are reported.
func TestParseDeadLetter(t *testing.T) {
	hs := []broker.Header{{Key: "x", Value: []byte("y")}}
	_, own, err := duality.ParseDeadLetter(hs)
	require.ErrorIs(t, err, duality.ErrNotDeadLetter)
	require.Equal(t, hs, own)
	_, _, err = duality.ParseDeadLetter([]broker.Header{{Key: duality.DeadLetterErrorHeader, Value: []byte("e")},
		{Key: duality.DeadLetterPartitionHeader, Value: []byte("-1")}, {Key: duality.DeadLetterOffsetHeader, Value: []byte("x")}})
	require.ErrorContains(t, err, `header duality.partition "-1" is not a partition`)
	require.ErrorContains(t, err, `header duality.offset "x" is not an offset`)
}

// The kill -9 test of the dead-letter policy: the app above, in a child
// process, on dlCrashInput records.
const (
	dlCrashInput = 1200 // 500 poison
	dlCrashParts = 3
	dlCrashKills = 4
	dlCrashApp   = "dl-crash"
	// dlCrashMaxTime bounds a child: the last one processes what is
	// left, 100 oversized outputs encoded among it, under -race on a
	// loaded machine.
	dlCrashMaxTime = time.Minute
	dlCrashDLQ     = dlCrashApp + "-dlq"
)

// TestDeadLetterKill9 kills the app with SIGKILL at random moments and
// restarts it until all input is handled, and checks after every kill
// that every input record below the committed offsets is either
// processed or in the dead-letter topic, exactly once, and that no other
// is in either: a dead letter commits with its input offset.
func TestDeadLetterKill9(t *testing.T) { dlKill9(t, crashtest.Embedded) }

// TestDeadLetterKill9Kafka is TestDeadLetterKill9 on the Kafka backend
// (kfake in a process of its own): dead letters are written in the
// worker's transactions.
func TestDeadLetterKill9Kafka(t *testing.T) { dlKill9(t, crashtest.Kafka) }

func dlKill9(t *testing.T, backend crashtest.Backend) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	x := crashtest.New(t, backend)
	b := x.Open()
	dlInput(t, b, dlCrashParts, dlCrashInput)
	require.NoError(t, b.Close())

	kills := crashtest.Kills(dlCrashKills)
	x.Run(crashtest.Plan{
		Kills: kills, MinKills: kills,
		Schedule: crashtest.Spread(dlCrashInput, kills, 5*time.Millisecond),
		MaxTime:  dlCrashMaxTime,
		Check: func(t *testing.T, b broker.Broker) int {
			offs, err := crashtest.GroupOffsets(t.Context(), b, dlCrashApp, "dl-in", dlCrashDLQ)
			require.NoError(t, err)
			if len(offs.Missing) > 0 {
				return 0 // killed before it created the dead-letter topic
			}
			c := checkDeadLetters(t, b, dlCrashApp, dlCrashDLQ, offs.IsCommitted)
			return c.processed + c.deadLettered
		},
	})

	b = x.Open()
	defer func() { require.NoError(t, b.Close()) }()
	c := checkDeadLetters(t, b, dlCrashApp, dlCrashDLQ, nil)
	require.Equal(t, dlCounts{processed: dlCrashInput - 500, deadLettered: 500}, c)
}

// TestDeadLetterKill9Child is the child of TestDeadLetterKill9.
func TestDeadLetterKill9Child(t *testing.T) { dlKill9Child(t) }

// TestDeadLetterKill9KafkaChild is the child of TestDeadLetterKill9Kafka.
func TestDeadLetterKill9KafkaChild(t *testing.T) { dlKill9Child(t) }

// dlKill9Child runs the app until the group has committed all input and
// its output and dead letters are visible.
func dlKill9Child(t *testing.T) {
	crashtest.RunChild(t, crashtest.Child{
		App: func(env *crashtest.Env) (crashtest.App, error) {
			// The state directory keeps the instance id across
			// restarts: on Kafka the next run's committers fence the
			// killed run's and abort its open transactions, which
			// would otherwise hold back read_committed readers of the
			// outputs until they time out.
			return duality.New(dlCrashApp, dlTopology(t), env.Broker, duality.Workers(2), duality.StateDir(env.StateDir),
				duality.CommitInterval(2*time.Millisecond), duality.FetchMaxRecords(50),
				duality.OnProcessingError(duality.DeadLetterOnError(nil)))
		},
		Poll: func(ctx context.Context, env *crashtest.Env) (crashtest.Progress, error) {
			offs, err := crashtest.GroupOffsets(ctx, env.Broker, dlCrashApp, "dl-in", "dl-out", dlCrashDLQ)
			return crashtest.Progress{
				N:    offs.CommittedSum("dl-in"),
				Done: offs.CaughtUp("dl-in") && len(offs.Missing) == 0 && offs.EndSum("dl-out", dlCrashDLQ) >= dlCrashInput,
			}, err
		},
	})
}

// TestTaskMetricsDeadLetters: the dead letters count per task and per
// step that failed, in TaskMetrics. Partition 1 of "dl-in" gets one poison
// record of each kind, partition 0 only good ones.
func TestTaskMetricsDeadLetters(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "dl-in", 2)
	createTopic(t, b, "dl-out", 2)
	var recs []broker.Record
	for i := range 3 * dlCycle {
		v, err := codec.Int64().Append(nil, int64(i))
		require.NoError(t, err)
		p := int32(0)
		if dlKind(i) != 0 {
			p = 1
		}
		if dlKind(i) == dlBadEncode {
			v = []byte("bad")
		}
		recs = append(recs, broker.Record{Topic: "dl-in", Partition: p, Key: fmt.Appendf(nil, "k%d", i), Value: v,
			Timestamp: dlBase.Add(time.Duration(i) * time.Second)})
	}
	require.NoError(t, b.Produce(t.Context(), recs))
	app, err := duality.New("dl-app", dlTopology(t), b, duality.OnProcessingError(duality.DeadLetterOnError(nil)))
	require.NoError(t, err)
	require.NoError(t, app.RunToEnd(t.Context()))

	// Per poison kind, three records each: parse fails on two kinds,
	// compute on one, emit on two.
	require.EqualValues(t, 15, app.Metrics().RecordsDeadLettered)
	tms := app.TaskMetrics()
	require.Len(t, tms, 2)
	dead := map[string]map[string]uint64{}
	for _, tm := range tms {
		steps := map[string]uint64{}
		for _, s := range tm.Steps {
			steps[s.Step] = s.RecordsDeadLettered
		}
		dead[tm.Task.String()] = steps
		if tm.Task.Partition == 0 {
			require.Zero(t, tm.RecordsDeadLettered, "partition 0 had no poison")
		} else {
			require.EqualValues(t, 15, tm.RecordsDeadLettered)
		}
	}
	require.Equal(t, map[string]map[string]uint64{
		"0_0": {"parse": 0, "compute": 0, "emit": 0},
		"0_1": {"parse": 6, "compute": 3, "emit": 6},
	}, dead)
	require.Equal(t, 3*dlCycle-15, int(app.Metrics().RecordsProcessed))
}
