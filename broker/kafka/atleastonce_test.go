package kafka_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
)

// TestAtLeastOnceCommitter checks what distinguishes the at-least-once
// committer on Kafka: its records are plain (non-transactional) appends,
// so two commits to one partition take contiguous offsets (no commit
// markers), and a commit the group fences leaves its records appended
// (the duplicates at-least-once allows) but not its offsets. Two
// committers with one id do not fence each other.
func TestAtLeastOnceCommitter(t *testing.T) {
	b := newBroker(t, newCluster(t))
	ctx := t.Context()
	require.NoError(t, b.CreateTopic(ctx, "in", broker.TopicConfig{Partitions: 1}))
	require.NoError(t, b.CreateTopic(ctx, "out", broker.TopicConfig{Partitions: 1}))
	in := broker.TopicPartition{Topic: "in", Partition: 0}
	m1, err := b.JoinGroup(ctx, "g", []string{"in"}, broker.JoinOptions{})
	require.NoError(t, err)
	a1 := <-m1.Assignments()

	c, err := b.NewAtLeastOnceCommitter(ctx, "app-i-0")
	require.NoError(t, err)
	defer c.Close()
	commit := func(c broker.Committer, gen int64, member string, off int64, values ...string) ([]broker.Record, error) {
		var recs []broker.Record
		for _, v := range values {
			recs = append(recs, rec("out", 0, v))
		}
		return recs, c.Commit(ctx, broker.CommitRequest{Records: recs, Group: "g", Generation: gen, MemberID: member,
			Offsets: map[broker.TopicPartition]int64{in: off}})
	}
	first, err := commit(c, a1.Generation, m1.MemberID(), 2, "a", "b")
	require.NoError(t, err)
	second, err := commit(c, a1.Generation, m1.MemberID(), 4, "c", "d")
	require.NoError(t, err)
	var offs []int64
	for _, r := range append(first, second...) {
		offs = append(offs, r.Offset)
	}
	require.Equal(t, []int64{0, 1, 2, 3}, offs, "no transaction markers between commits")

	same, err := b.NewAtLeastOnceCommitter(ctx, "app-i-0")
	require.NoError(t, err)
	defer same.Close()
	_, err = commit(same, a1.Generation, m1.MemberID(), 5, "e")
	require.NoError(t, err)
	_, err = commit(c, a1.Generation, m1.MemberID(), 6, "f")
	require.NoError(t, err, "an at-least-once committer is not fenced by its id")

	// A rebalance: the first member's generation is over.
	m2, err := b.JoinGroup(ctx, "g", []string{"in"}, broker.JoinOptions{})
	require.NoError(t, err)
	defer m2.Leave(ctx)
	_, err = commit(c, a1.Generation, m1.MemberID(), 99, "zombie")
	require.ErrorIs(t, err, broker.ErrFenced)
	require.False(t, broker.IsRetryable(err))
	got, err := b.FetchOffsets(ctx, "g", []broker.TopicPartition{in})
	require.NoError(t, err)
	require.Equal(t, int64(6), got[in], "a fenced commit stores no offsets")
	require.Equal(t, []string{"a", "b", "c", "d", "e", "f", "zombie"}, values(readAll(t, b, "out", 0, 0)),
		"a fenced commit's records stay appended")
	require.NoError(t, m1.Leave(ctx))
}
