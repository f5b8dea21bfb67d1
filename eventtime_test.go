package duality_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/internal/topology"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
)

// TestBootstrapJoinInTimestampOrder: 200 customers are written, then an
// hour later 200 orders; the app starts with both backlogged. A task reads
// its partition of both topics in timestamp order, so every order joins
// with its customer, although the stream source comes first in the
// topology and small fetches refill the buffers many times.
func TestBootstrapJoinInTimestampOrder(t *testing.T) {
	for _, fetchMax := range []int{7, duality.DefaultFetchMaxRecords} {
		t.Run(fmt.Sprintf("fetch=%d", fetchMax), func(t *testing.T) {
			b := openBroker(t)
			createTopic(t, b, "orders", 2)
			createTopic(t, b, "customers", 2)
			createTopic(t, b, "enriched", 1)
			t0 := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
			const n = 200
			var customers, orders []broker.Record
			for i := range n {
				customers = append(customers, broker.Record{Topic: "customers", Partition: broker.PartitionByKey,
					Key: fmt.Appendf(nil, "c%d", i), Value: fmt.Appendf(nil, "name-%d", i), Timestamp: t0.Add(time.Duration(i) * time.Second)})
				orders = append(orders, broker.Record{Topic: "orders", Partition: broker.PartitionByKey,
					Key: fmt.Appendf(nil, "c%d", i), Value: fmt.Appendf(nil, "order-%d", i), Timestamp: t0.Add(time.Hour + time.Duration(i)*time.Second)})
			}
			require.NoError(t, b.Produce(t.Context(), customers))
			require.NoError(t, b.Produce(t.Context(), orders))

			sb := stream.NewBuilder()
			os := stream.From(sb, "orders", codec.String(), codec.String())
			cs := table.From(sb, "customers", codec.String(), codec.String(), "customers")
			table.LeftJoin(os, cs, func(_, o, c string, found bool) string {
				if !found {
					return o + "|<none>"
				}
				return o + "|" + c
			}).To("enriched")
			topo, err := sb.Build()
			require.NoError(t, err)
			app, err := duality.New("bootstrap", topo, b, duality.FetchMaxRecords(fetchMax), duality.Workers(1))
			require.NoError(t, err)
			stop, _ := runApp(t, app)
			awaitRecords(t, b, "enriched", n)
			require.NoError(t, stop())
			var missing []string
			for _, r := range readTopic(t, b, "enriched") {
				if strings.HasSuffix(string(r.Value), "|<none>") {
					missing = append(missing, string(r.Value))
				}
			}
			require.Empty(t, missing, "orders joined before their customer was read")
			require.Zero(t, app.Metrics().EnforcedProcessing)
		})
	}
}

// TestTaskInterleavesPartitionsByTimestamp: a task reading one partition
// of each of two topics processes their records in timestamp order, the
// first source first on equal timestamps, whatever order the broker
// returns them in; a caught-up empty partition does not hold the task
// back, even with a long MaxTaskIdle.
func TestTaskInterleavesPartitionsByTimestamp(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "a", 1)
	createTopic(t, b, "b", 1)
	createTopic(t, b, "out", 1)
	t0 := time.UnixMilli(1_000_000).UTC()
	// a has even timestamps, b odd ones plus every tenth even one again;
	// b is written first.
	var as, bs []broker.Record
	for i := range 100 {
		ts := 2 * i
		as = append(as, broker.Record{Topic: "a", Value: fmt.Appendf(nil, "a%d@%d", i, ts), Timestamp: t0.Add(time.Duration(ts) * time.Millisecond)})
		if i%10 == 0 {
			bs = append(bs, broker.Record{Topic: "b", Value: fmt.Appendf(nil, "b-tie@%d", ts), Timestamp: t0.Add(time.Duration(ts) * time.Millisecond)})
		}
		bs = append(bs, broker.Record{Topic: "b", Value: fmt.Appendf(nil, "b%d@%d", i, ts+1), Timestamp: t0.Add(time.Duration(ts+1) * time.Millisecond)})
	}
	require.NoError(t, b.Produce(t.Context(), bs))
	require.NoError(t, b.Produce(t.Context(), as))
	want := func(recs ...[]broker.Record) []string {
		var all []broker.Record
		for _, r := range recs {
			all = append(all, r...)
		}
		// Stable: a before b on ties, as the topology lists a first.
		slices.SortStableFunc(all, func(x, y broker.Record) int {
			if c := x.Timestamp.Compare(y.Timestamp); c != 0 {
				return c
			}
			return strings.Compare(x.Topic, y.Topic)
		})
		var out []string
		for _, r := range all {
			out = append(out, "out-"+string(r.Value))
		}
		return out
	}
	var streamTimes []int64
	var mu sync.Mutex
	fn := func(ctx context.Context, env topology.TaskEnv, rec *broker.Record) error {
		mu.Lock()
		streamTimes = append(streamTimes, env.StreamTime())
		mu.Unlock()
		return prefixTo("out")(ctx, env, rec)
	}
	app, err := duality.New("interleave", mapTopology(t, []string{"a", "b"}, "out", fn), b,
		duality.FetchMaxRecords(9), duality.MaxTaskIdle(time.Hour))
	require.NoError(t, err)
	stop, _ := runApp(t, app)
	awaitRecords(t, b, "out", len(as)+len(bs))

	// Only a gets more records: b is caught up and empty, which does not
	// hold a's records back.
	var more []broker.Record
	for i := range 20 {
		more = append(more, broker.Record{Topic: "a", Value: fmt.Appendf(nil, "late-a%d", i), Timestamp: t0.Add(time.Duration(500+i) * time.Millisecond)})
	}
	require.NoError(t, b.Produce(t.Context(), more))
	awaitRecords(t, b, "out", len(as)+len(bs)+len(more))
	require.NoError(t, stop())

	var got []string
	for _, r := range readTopic(t, b, "out") {
		got = append(got, string(r.Value))
	}
	require.Equal(t, append(want(as, bs), want(more)...), got)
	require.Zero(t, app.Metrics().EnforcedProcessing)
	// Stream time is the largest timestamp processed, the current
	// record's included: it only grows.
	require.True(t, slices.IsSorted(streamTimes))
	require.Equal(t, t0.Add(519*time.Millisecond).UnixMilli(), streamTimes[len(streamTimes)-1])
}

// stallingBroker withholds the records of one topic from fetches until
// released: a fetch that asks only for that topic fails with a retryable
// error, and the topic's records are left out of other fetches.
type stallingBroker struct {
	broker.Broker
	topic    string
	released atomic.Bool
	stalled  atomic.Int64 // fetches that asked only for topic
}

type retryableErr struct{}

func (retryableErr) Error() string   { return "stalled" }
func (retryableErr) Retryable() bool { return true }

func (s *stallingBroker) NewConsumer(opts broker.ConsumerOptions) (broker.Consumer, error) {
	return newHookedConsumer(s.Broker, opts, func(_ context.Context, reqs []broker.FetchRequest) (func(broker.TopicPartition) bool, error) {
		if s.released.Load() {
			return nil, nil
		}
		if !slices.ContainsFunc(reqs, func(r broker.FetchRequest) bool { return r.Topic != s.topic }) {
			s.stalled.Add(1)
			return nil, retryableErr{}
		}
		return func(tp broker.TopicPartition) bool { return tp.Topic == s.topic }, nil
	})
}

// TestMaxTaskIdleBoundsTheWait: when a partition the task needs has
// records the broker does not deliver, the task holds its other records
// back for MaxTaskIdle by the app's clock, then processes them (counted
// as enforced processing); the withheld records follow once delivered.
func TestMaxTaskIdleBoundsTheWait(t *testing.T) {
	eb := openBroker(t)
	createTopic(t, eb, "a", 1)
	createTopic(t, eb, "b", 1)
	createTopic(t, eb, "out", 1)
	produceN(t, eb, "b", 0, 5)
	produceN(t, eb, "a", 5, 10)
	sb := &stallingBroker{Broker: eb, topic: "b"}
	var clock atomic.Int64 // ms
	now := func() time.Time { return time.UnixMilli(clock.Load()) }
	app, err := duality.New("idle", mapTopology(t, []string{"a", "b"}, "out", prefixTo("out")), sb,
		duality.MaxTaskIdle(time.Minute), duality.Clock(now), duality.FetchMaxWait(5*time.Millisecond))
	require.NoError(t, err)
	stop, _ := runApp(t, app)
	// The task has a's records and waits for b's: it fetches b alone.
	eventually(t, "the task waits for b", func() bool { return sb.stalled.Load() >= 3 })
	require.Zero(t, app.Metrics().RecordsProcessed)
	clock.Add(time.Minute.Milliseconds() - 1)
	eventually(t, "still waiting", func() bool { return sb.stalled.Load() >= 6 })
	require.Zero(t, app.Metrics().RecordsProcessed)
	clock.Add(1)
	awaitRecords(t, eb, "out", 5)
	require.EqualValues(t, 5, app.Metrics().EnforcedProcessing)
	sb.released.Store(true)
	awaitRecords(t, eb, "out", 10)
	require.NoError(t, stop())
	requireExactlyOnce(t, eb, "out", 10)
}

// TestTaskOrderUsesExtractedTimestamps: with stream.WithTimestamp the
// event time comes from the value; a task orders its partitions by it,
// not by the broker timestamps (here the reverse order).
func TestTaskOrderUsesExtractedTimestamps(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "a", 1)
	createTopic(t, b, "b", 1)
	createTopic(t, b, "out", 1)
	// Values are "<event ms>"; a's broker timestamps are later than b's,
	// the event times interleave.
	var recs []broker.Record
	for i := range 50 {
		recs = append(recs, broker.Record{Topic: "b", Value: fmt.Appendf(nil, "%d", 2*i+1), Timestamp: time.UnixMilli(int64(1000 + i))})
	}
	for i := range 50 {
		recs = append(recs, broker.Record{Topic: "a", Value: fmt.Appendf(nil, "%d", 2*i), Timestamp: time.UnixMilli(int64(5000 + i))})
	}
	require.NoError(t, b.Produce(t.Context(), recs))
	eventTime := stream.WithTimestamp(func(_ string, v int64, _ time.Time) time.Time { return time.UnixMilli(v) })
	num := codec.JSON[int64]()
	sb := stream.NewBuilder()
	stream.From(sb, "a", codec.String(), num, eventTime).
		Merge(stream.From(sb, "b", codec.String(), num, eventTime)).
		To("out")
	topo, err := sb.Build()
	require.NoError(t, err)
	app, err := duality.New("extracted", topo, b, duality.FetchMaxRecords(7))
	require.NoError(t, err)
	stop, _ := runApp(t, app)
	awaitRecords(t, b, "out", 100)
	require.NoError(t, stop())
	for i, r := range readTopic(t, b, "out") {
		require.Equal(t, fmt.Sprint(i), string(r.Value))
		require.Equal(t, int64(i), r.Timestamp.UnixMilli())
	}
}

// TestRebalanceChurnCoPartitioned is TestRebalanceChurn with tasks that
// read two co-partitioned topics, so that rebalances and fenced commits
// hit tasks holding buffered records of both: every record is still
// output exactly once.
func TestRebalanceChurnCoPartitioned(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "in", 4)
	createTopic(t, b, "in2", 4)
	createTopic(t, b, "out", 3)
	newApp := func() *duality.App {
		app, err := duality.New("churn2", mapTopology(t, []string{"in", "in2"}, "out", prefixTo("out")), b,
			duality.Workers(2), duality.CommitInterval(time.Millisecond), duality.MaxUncommittedRecords(50),
			duality.FetchMaxRecords(20), duality.FetchMaxWait(10*time.Millisecond))
		require.NoError(t, err)
		return app
	}
	const step = 300
	var stops []func() error
	start := func() {
		stop, _ := runApp(t, newApp())
		stops = append(stops, stop)
	}
	start()
	produced := 0
	for i := range 6 {
		produceN(t, b, "in", produced, produced+step)
		produced += step
		start()
		produceN(t, b, "in2", produced, produced+step)
		produced += step
		if i%2 == 1 {
			require.NoError(t, stops[0]())
			stops = stops[1:]
		}
	}
	awaitRecords(t, b, "out", produced)
	for _, stop := range stops {
		require.NoError(t, stop())
	}
	requireExactlyOnce(t, b, "out", produced)
}

// phantomEnd lists one topic's end offsets past its last record, as
// offsets without records (compacted away, transaction markers) look.
type phantomEnd struct {
	broker.Broker
	topic string
}

func (p phantomEnd) ListOffsets(ctx context.Context, topic string, partition int32) (broker.Offsets, error) {
	o, err := p.Broker.ListOffsets(ctx, topic, partition)
	if topic == p.topic {
		o.Latest += 5
	}
	return o, err
}

// TestOffsetsWithoutRecordsDoNotHoldATask: a partition listed with
// records beyond its fetch position that a fetch returns none of holds no
// records there; the task stops waiting for it at once, not after
// MaxTaskIdle (an hour here).
func TestOffsetsWithoutRecordsDoNotHoldATask(t *testing.T) {
	eb := openBroker(t)
	createTopic(t, eb, "a", 1)
	createTopic(t, eb, "b", 1)
	createTopic(t, eb, "out", 1)
	produceN(t, eb, "b", 0, 3)
	produceN(t, eb, "a", 3, 10)
	app, err := duality.New("phantom", mapTopology(t, []string{"a", "b"}, "out", prefixTo("out")), phantomEnd{Broker: eb, topic: "b"},
		duality.MaxTaskIdle(time.Hour), duality.FetchMaxRecords(2))
	require.NoError(t, err)
	stop, _ := runApp(t, app)
	awaitRecords(t, eb, "out", 10)
	require.NoError(t, stop())
	requireExactlyOnce(t, eb, "out", 10)
	require.Zero(t, app.Metrics().EnforcedProcessing)
}
