package kafka_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/duality-streams/duality/broker"
)

func rec(topic string, partition int32, value string) broker.Record {
	return broker.Record{Topic: topic, Partition: partition, Key: []byte("k"), Value: []byte(value)}
}

// TestCommitterFencedBySameID opens a second committer with the id of a
// first one: the first is fenced for good, and nothing it tries to
// commit afterwards becomes visible.
func TestCommitterFencedBySameID(t *testing.T) {
	b := newBroker(t, newCluster(t))
	ctx := t.Context()
	require.NoError(t, b.CreateTopic(ctx, "out", broker.TopicConfig{Partitions: 1}))
	require.NoError(t, b.CreateTopic(ctx, "in", broker.TopicConfig{Partitions: 1}))
	in := broker.TopicPartition{Topic: "in", Partition: 0}

	old, err := b.NewCommitter(ctx, "app-instance-0")
	require.NoError(t, err)
	defer old.Close()
	require.NoError(t, old.Commit(ctx, broker.CommitRequest{Records: []broker.Record{rec("out", 0, "old-1")}, Group: "g", Offsets: map[broker.TopicPartition]int64{in: 1}}))

	restarted, err := b.NewCommitter(ctx, "app-instance-0")
	require.NoError(t, err)
	defer restarted.Close()
	before, err := b.ListOffsets(ctx, "out", 0)
	require.NoError(t, err)
	for i := range 3 {
		err := old.Commit(ctx, broker.CommitRequest{Records: []broker.Record{rec("out", 0, fmt.Sprint("zombie-", i))}, Group: "g", Offsets: map[broker.TopicPartition]int64{in: 99}})
		require.ErrorIs(t, err, broker.ErrFenced, "zombie commit %d", i)
		require.False(t, broker.IsRetryable(err))
		err = old.Commit(ctx, broker.CommitRequest{Records: []broker.Record{rec("out", 0, "zombie-records-only")}})
		require.ErrorIs(t, err, broker.ErrFenced)
	}
	after, err := b.ListOffsets(ctx, "out", 0)
	require.NoError(t, err)
	require.Equal(t, before, after, "a zombie's commits append nothing")
	got, err := b.FetchOffsets(ctx, "g", []broker.TopicPartition{in})
	require.NoError(t, err)
	require.Equal(t, int64(1), got[in])

	require.NoError(t, restarted.Commit(ctx, broker.CommitRequest{Records: []broker.Record{rec("out", 0, "new-1")}, Group: "g", Offsets: map[broker.TopicPartition]int64{in: 2}}))
	require.Equal(t, []string{"old-1", "new-1"}, values(readAll(t, b, "out", 0, 0)))
	got, err = b.FetchOffsets(ctx, "g", []broker.TopicPartition{in})
	require.NoError(t, err)
	require.Equal(t, int64(2), got[in])
}

// TestCommitterAbortsZombieTransaction leaves a transaction open with a
// plain franz-go producer of the same transactional id (a worker killed
// mid-commit): opening the Committer aborts it, so read_committed readers
// never see its records.
func TestCommitterAbortsZombieTransaction(t *testing.T) {
	c := newCluster(t)
	b := newBroker(t, c)
	ctx := t.Context()
	require.NoError(t, b.CreateTopic(ctx, "out", broker.TopicConfig{Partitions: 1}))
	zombie, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.TransactionalID("worker-0"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	defer zombie.Close()
	require.NoError(t, zombie.BeginTransaction())
	require.NoError(t, zombie.ProduceSync(ctx, &kgo.Record{Topic: "out", Partition: 0, Value: []byte("uncommitted")}).FirstErr())

	cm, err := b.NewCommitter(ctx, "worker-0")
	require.NoError(t, err)
	defer cm.Close()
	require.NoError(t, cm.Commit(ctx, broker.CommitRequest{Records: []broker.Record{rec("out", 0, "committed")}}))
	got := readAll(t, b, "out", 0, 0)
	require.Equal(t, []string{"committed"}, values(got))
	require.Equal(t, int64(2), got[0].Offset, "after the zombie's record (0) and its abort marker (1)")
	_ = zombie.EndTransaction(ctx, kgo.TryCommit) // too late: its transaction was aborted
	require.Equal(t, []string{"committed"}, values(readAll(t, b, "out", 0, 0)))
}

// TestCommitterGroupFencing commits with a real member's generation, then
// with a stale one after a rebalance; and offsets alone.
func TestCommitterGroupFencing(t *testing.T) {
	b := newBroker(t, newCluster(t))
	ctx := t.Context()
	require.NoError(t, b.CreateTopic(ctx, "in", broker.TopicConfig{Partitions: 2}))
	require.NoError(t, b.CreateTopic(ctx, "out", broker.TopicConfig{Partitions: 1}))
	in := broker.TopicPartition{Topic: "in", Partition: 0}
	m1, err := b.JoinGroup(ctx, "g", []string{"in"}, broker.JoinOptions{})
	require.NoError(t, err)
	defer m1.Leave(context.Background())
	a1 := <-m1.Assignments()
	cm, err := b.NewCommitter(ctx, "w1")
	require.NoError(t, err)
	defer cm.Close()
	commit := func(gen int64, member string, off int64, value string) error {
		req := broker.CommitRequest{Group: "g", Generation: gen, MemberID: member, Offsets: map[broker.TopicPartition]int64{in: off}}
		if value != "" {
			req.Records = []broker.Record{rec("out", 0, value)}
		}
		return cm.Commit(ctx, req)
	}
	require.NoError(t, commit(a1.Generation, m1.MemberID(), 1, "g1"))
	require.NoError(t, commit(a1.Generation, m1.MemberID(), 2, ""), "offsets alone")

	m2, err := b.JoinGroup(ctx, "g", []string{"in"}, broker.JoinOptions{})
	require.NoError(t, err)
	defer m2.Leave(context.Background())
	var a2 broker.Assignment
	for a2 = range m1.Assignments() {
		if a2.Generation > a1.Generation {
			break
		}
	}
	before, err := b.ListOffsets(ctx, "out", 0)
	require.NoError(t, err)
	require.ErrorIs(t, commit(a1.Generation, m1.MemberID(), 9, "stale"), broker.ErrFenced)
	require.ErrorIs(t, commit(a1.Generation, m1.MemberID(), 9, ""), broker.ErrFenced)
	require.ErrorIs(t, commit(a2.Generation, "not-a-member", 9, "stranger"), broker.ErrFenced)
	after, err := b.ListOffsets(ctx, "out", 0)
	require.NoError(t, err)
	require.Equal(t, before, after)
	// The committer is not fenced itself: the current generation commits.
	require.NoError(t, commit(a2.Generation, m1.MemberID(), 3, "g2"))
	got, err := b.FetchOffsets(ctx, "g", []broker.TopicPartition{in})
	require.NoError(t, err)
	require.Equal(t, int64(3), got[in])
	require.Equal(t, []string{"g1", "g2"}, values(readAll(t, b, "out", 0, 0)))
}

// TestCommitterAbortOnFailure fails a commit after its offsets went into
// the transaction (a record over the producer's batch limit): nothing of
// it is visible, and the next commit works.
func TestCommitterAbortOnFailure(t *testing.T) {
	b := newBroker(t, newCluster(t))
	ctx := t.Context()
	require.NoError(t, b.CreateTopic(ctx, "out", broker.TopicConfig{Partitions: 1}))
	require.NoError(t, b.CreateTopic(ctx, "in", broker.TopicConfig{Partitions: 1}))
	in := broker.TopicPartition{Topic: "in", Partition: 0}
	cm, err := b.NewCommitter(ctx, "w")
	require.NoError(t, err)
	defer cm.Close()
	require.NoError(t, cm.Commit(ctx, broker.CommitRequest{Group: "g", Offsets: map[broker.TopicPartition]int64{in: 1}}))
	huge := rec("out", 0, string(make([]byte, 2<<20)))
	err = cm.Commit(ctx, broker.CommitRequest{Records: []broker.Record{rec("out", 0, "small"), huge}, Group: "g", Offsets: map[broker.TopicPartition]int64{in: 5}})
	require.ErrorIs(t, err, broker.ErrRecordTooLarge)
	got, err := b.FetchOffsets(ctx, "g", []broker.TopicPartition{in})
	require.NoError(t, err)
	require.Equal(t, int64(1), got[in], "the aborted commit's offsets are not stored")
	require.Empty(t, readAll(t, b, "out", 0, 0), "the aborted commit's records are not visible")
	require.NoError(t, cm.Commit(ctx, broker.CommitRequest{Records: []broker.Record{rec("out", 0, "next")}, Group: "g", Offsets: map[broker.TopicPartition]int64{in: 2}}))
	require.Equal(t, []string{"next"}, values(readAll(t, b, "out", 0, 0)))
}

// TestMaxRecordBytes produces records at and over the limit the broker
// reports to the runtime (broker.RecordLimiter).
func TestMaxRecordBytes(t *testing.T) {
	b := newBroker(t, newCluster(t))
	ctx := t.Context()
	require.NoError(t, b.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: 1}))
	limit := b.MaxRecordBytes()
	require.Greater(t, limit, 900_000)
	at := broker.Record{Topic: "t", Partition: 0, Key: []byte("k"), Value: make([]byte, limit-2),
		Headers: []broker.Header{{Key: "h", Value: []byte{}}}}
	require.Equal(t, limit, broker.RecordSize(&at))
	require.NoError(t, b.Produce(ctx, []broker.Record{at}))
	over := broker.Record{Topic: "t", Partition: 0, Value: make([]byte, limit+recordOverheadForTest)}
	require.ErrorIs(t, b.Produce(ctx, []broker.Record{over}), broker.ErrRecordTooLarge)
	cm, err := b.NewCommitter(ctx, "w")
	require.NoError(t, err)
	defer cm.Close()
	require.NoError(t, cm.Commit(ctx, broker.CommitRequest{Records: []broker.Record{at}}))
}

// recordOverheadForTest makes a record surely over the producer's batch
// limit.
const recordOverheadForTest = 1024
