package brokertest

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
)

// waitBound bounds every wait for something the broker must deliver (a
// long-poll result, a group assignment). It is an upper bound for failing a
// stuck test, never a synchronisation delay: tests proceed as soon as the
// awaited event happens.
const waitBound = 20 * time.Second

type testCase struct {
	name string
	fn   func(t *testing.T, b broker.Broker)
}

// Run runs the conformance suite against the brokers newBroker returns. Each
// subtest calls newBroker once and expects a fresh broker with no topics and
// no groups; newBroker owns its cleanup (t.Cleanup) and must tolerate the
// broker having been closed by the test already (the Close subtest closes it).
// The brokers must implement broker.GroupAdmin too.
//
// Run fails t through its subtests; it never skips.
func Run(t *testing.T, newBroker func(t *testing.T) broker.Broker) {
	t.Helper()
	var cases []testCase
	cases = append(cases, topicCases...)
	cases = append(cases, produceCases...)
	cases = append(cases, groupCases...)
	cases = append(cases, groupAdminCases...)
	cases = append(cases, balanceCases...)
	cases = append(cases, commitCases...)
	cases = append(cases, consumerCases...)
	cases = append(cases, committerCases...)
	cases = append(cases, cleanupCases...)
	cases = append(cases, deleteRecordsCases...)
	cases = append(cases, testCase{"Close", testClose})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newBroker(t)
			require.NotNil(t, b, "newBroker returned nil")
			tc.fn(t, b)
		})
	}
}

// createTopic creates a topic with n partitions and default settings.
func createTopic(t *testing.T, b broker.Broker, name string, n int32) {
	t.Helper()
	require.NoError(t, b.CreateTopic(t.Context(), name, broker.TopicConfig{Partitions: n}))
}

// rec returns a record for topic/partition with key and value strings.
func rec(topic string, partition int32, key, value string) broker.Record {
	return broker.Record{Topic: topic, Partition: partition, Key: []byte(key), Value: []byte(value)}
}

// produce produces recs and returns them with Partition and Offset set.
func produce(t *testing.T, b broker.Broker, recs ...broker.Record) []broker.Record {
	t.Helper()
	require.NoError(t, b.Produce(t.Context(), recs))
	return recs
}

// produceValues produces one record per value to topic/partition, in one call.
func produceValues(t *testing.T, b broker.Broker, topic string, partition int32, values ...string) []broker.Record {
	t.Helper()
	recs := make([]broker.Record, len(values))
	for i, v := range values {
		recs[i] = rec(topic, partition, fmt.Sprintf("k%d", i), v)
	}
	return produce(t, b, recs...)
}

// fetchAll reads topic/partition from offset from up to its latest offset
// (as of the call) with broker.Read, checking that offsets increase.
// Offsets may have gaps between commits: on Kafka a transaction's commit
// marker takes an offset.
func fetchAll(t *testing.T, b broker.Broker, topic string, partition int32, from int64) []broker.Record {
	t.Helper()
	out, err := broker.Read(t.Context(), b, map[broker.TopicPartition]int64{{Topic: topic, Partition: partition}: from})
	require.NoError(t, err)
	next := from
	for _, r := range out {
		require.Equal(t, topic, r.Topic)
		require.Equal(t, partition, r.Partition)
		require.GreaterOrEqual(t, r.Offset, next, "offsets must increase")
		next = r.Offset + 1
	}
	return out
}

// fetch reads the partitions of reqs, each from its Offset, in one Poll
// of a new Consumer of b limited as opts says, waiting up to
// opts.MaxWait: what a single read of a reader at those positions
// returns.
func fetch(ctx context.Context, b broker.Broker, reqs []broker.FetchRequest, opts broker.FetchOptions) ([]broker.Record, error) {
	c, err := b.NewConsumer(broker.ConsumerOptions{MaxRecords: opts.MaxRecords, MaxBytes: opts.MaxBytes})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	positions := make(map[broker.TopicPartition]int64, len(reqs))
	for _, r := range reqs {
		positions[broker.TopicPartition{Topic: r.Topic, Partition: r.Partition}] = r.Offset
	}
	c.Assign(positions)
	p, err := c.Poll(ctx, opts.MaxWait)
	return p.Records, err
}

// committers numbers the committers commit opens.
var committers atomic.Int64

// commit performs req through a new Committer of b with an id of its own.
func commit(ctx context.Context, b broker.Broker, req broker.CommitRequest) error {
	c, err := b.NewCommitter(ctx, fmt.Sprintf("brokertest-%d", committers.Add(1)))
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Commit(ctx, req)
}

// values returns the values of recs as strings.
func values(recs []broker.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Value)
	}
	return out
}

// seq returns n strings prefix0..prefix(n-1).
func seq(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

// requireSameRecord asserts got is want as stored by a broker: same topic,
// partition, offset, key, value (nil stays nil, empty stays empty), headers
// and timestamp.
func requireSameRecord(t *testing.T, want, got broker.Record) {
	t.Helper()
	require.Equal(t, want.Topic, got.Topic)
	require.Equal(t, want.Partition, got.Partition)
	require.Equal(t, want.Offset, got.Offset)
	if want.Key == nil {
		require.Empty(t, got.Key, "offset %d: key", want.Offset)
	} else {
		require.Equal(t, want.Key, got.Key, "offset %d: key", want.Offset)
	}
	if want.Value == nil {
		require.Nil(t, got.Value, "offset %d: a nil value (tombstone) must stay nil", want.Offset)
	} else {
		require.NotNil(t, got.Value, "offset %d: a non-nil value must not become nil", want.Offset)
		require.Equal(t, want.Value, got.Value, "offset %d: value", want.Offset)
	}
	if len(want.Headers) == 0 {
		require.Empty(t, got.Headers, "offset %d: headers", want.Offset)
	} else {
		require.Equal(t, len(want.Headers), len(got.Headers), "offset %d: headers", want.Offset)
		for i := range want.Headers {
			require.Equal(t, want.Headers[i].Key, got.Headers[i].Key, "offset %d: header %d key", want.Offset, i)
			require.Equal(t, string(want.Headers[i].Value), string(got.Headers[i].Value), "offset %d: header %d value", want.Offset, i)
		}
	}
	require.True(t, want.Timestamp.Equal(got.Timestamp), "offset %d: timestamp %v, want %v", want.Offset, got.Timestamp, want.Timestamp)
}

// recvAssignment waits for an assignment of m that satisfies ok, skipping
// older ones (the channel holds only the newest).
func recvAssignment(t *testing.T, m broker.Membership, ok func(broker.Assignment) bool) broker.Assignment {
	t.Helper()
	timeout := time.After(waitBound)
	for {
		select {
		case a, open := <-m.Assignments():
			require.True(t, open, "member %s: assignments closed while waiting", m.MemberID())
			requireSortedAssignment(t, a)
			if ok(a) {
				return a
			}
		case <-timeout:
			require.FailNow(t, "no matching assignment", "member %s: waited %v", m.MemberID(), waitBound)
		}
	}
}

// requireSortedAssignment asserts a's partitions are sorted by partition,
// then topic, without duplicates.
func requireSortedAssignment(t *testing.T, a broker.Assignment) {
	t.Helper()
	sorted := slices.IsSortedFunc(a.Partitions, compareTP)
	require.True(t, sorted, "assignment %+v is not sorted by partition, then topic", a)
	require.Len(t, slices.CompactFunc(slices.Clone(a.Partitions), func(x, y broker.TopicPartition) bool { return x == y }),
		len(a.Partitions), "assignment %+v has duplicates", a)
}

func compareTP(x, y broker.TopicPartition) int {
	if x.Partition != y.Partition {
		if x.Partition < y.Partition {
			return -1
		}
		return 1
	}
	switch {
	case x.Topic < y.Topic:
		return -1
	case x.Topic > y.Topic:
		return 1
	}
	return 0
}

// allPartitions returns every partition of topics with n partitions each,
// sorted the way assignments are.
func allPartitions(n int32, topics ...string) []broker.TopicPartition {
	var out []broker.TopicPartition
	for p := range n {
		for _, topic := range slices.Sorted(slices.Values(topics)) {
			out = append(out, broker.TopicPartition{Topic: topic, Partition: p})
		}
	}
	return out
}

// topicCalls returns, by name, every per-topic call on topic (partition 0)
// other than CreateTopic, for checking that each refuses a bad topic.
func topicCalls(topic string) map[string]func(context.Context, broker.Broker) error {
	return map[string]func(context.Context, broker.Broker) error{
		"DescribeTopic": func(ctx context.Context, b broker.Broker) error {
			_, err := b.DescribeTopic(ctx, topic)
			return err
		},
		"DeleteTopic": func(ctx context.Context, b broker.Broker) error {
			return b.DeleteTopic(ctx, topic)
		},
		"Produce": func(ctx context.Context, b broker.Broker) error {
			return b.Produce(ctx, []broker.Record{rec(topic, 0, "k", "v")})
		},
		"ProduceByKey": func(ctx context.Context, b broker.Broker) error {
			return b.Produce(ctx, []broker.Record{rec(topic, broker.PartitionByKey, "k", "v")})
		},
		"Poll": func(ctx context.Context, b broker.Broker) error {
			_, err := fetch(ctx, b, []broker.FetchRequest{{Topic: topic}}, broker.FetchOptions{})
			return err
		},
		"ListOffsets": func(ctx context.Context, b broker.Broker) error {
			_, err := b.ListOffsets(ctx, topic, 0)
			return err
		},
		"DeleteRecords": func(ctx context.Context, b broker.Broker) error {
			return b.DeleteRecords(ctx, topic, 0, 0)
		},
		"OffsetForTime": func(ctx context.Context, b broker.Broker) error {
			_, err := b.OffsetForTime(ctx, topic, 0, time.UnixMilli(0))
			return err
		},
		"Commit": func(ctx context.Context, b broker.Broker) error {
			return commit(ctx, b, broker.CommitRequest{Records: []broker.Record{rec(topic, 0, "k", "v")}})
		},
	}
}
