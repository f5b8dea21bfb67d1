package brokertest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
)

var committerCases = []testCase{
	{"Committer/Atomic", testCommitterAtomic},
	{"Committer/FencedByGeneration", testCommitterFencedByGeneration},
	{"Committer/FencedBySameID", testCommitterFencedBySameID},
	{"Committer/Invalid", testCommitterInvalid},
}

// newCommitter returns b's committer with id, which the test closes.
func newCommitter(t *testing.T, b broker.Broker, id string) broker.Committer {
	t.Helper()
	c, err := b.NewCommitter(t.Context(), id)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func testCommitterAtomic(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	createTopic(t, b, "in", 2)
	createTopic(t, b, "out1", 2)
	createTopic(t, b, "out2", 1)
	in0, in1 := broker.TopicPartition{Topic: "in", Partition: 0}, broker.TopicPartition{Topic: "in", Partition: 1}
	m, err := b.JoinGroup(ctx, "g", []string{"in"}, broker.JoinOptions{})
	require.NoError(t, err)
	a := recvAssignment(t, m, func(broker.Assignment) bool { return true })
	c := newCommitter(t, b, "app-instance-0")
	req := broker.CommitRequest{
		Records: []broker.Record{rec("out1", 0, "k", "x0"), rec("out2", 0, "k", "y0"), rec("out1", 1, "k", "x1"),
			rec("out1", 0, "k", "x0b"), rec("out1", broker.PartitionByKey, "by-key", "z")},
		Group: "g", Generation: a.Generation, MemberID: m.MemberID(),
		Offsets: map[broker.TopicPartition]int64{in0: 4, in1: 2},
	}
	require.NoError(t, c.Commit(ctx, req))
	byKey := broker.KeyPartition([]byte("by-key"), 2)
	require.Equal(t, byKey, req.Records[4].Partition, "Partition set in place")
	next := map[int32]int64{}
	for _, i := range []int{0, 2, 3, 4} {
		r := req.Records[i]
		require.Equal(t, next[r.Partition], r.Offset, "record %d: Offset set in place", i)
		next[r.Partition]++
	}

	// Visible together once Commit returned.
	got, err := b.FetchOffsets(ctx, "g", []broker.TopicPartition{in0, in1})
	require.NoError(t, err)
	require.Equal(t, map[broker.TopicPartition]int64{in0: 4, in1: 2}, got)
	recs, err := broker.ReadAll(ctx, b, "out1", "out2")
	require.NoError(t, err)
	want := map[int32][]string{0: {"x0", "x0b"}, 1: {"x1"}}
	want[byKey] = append(want[byKey], "z")
	require.Equal(t, want[0], valuesOf(recs, "out1", 0))
	require.Equal(t, want[1], valuesOf(recs, "out1", 1))
	require.Equal(t, []string{"y0"}, valuesOf(recs, "out2", 0))

	// A refused commit leaves nothing: no record, no offset.
	err = c.Commit(ctx, broker.CommitRequest{
		Records: []broker.Record{rec("out2", 0, "k", "lost"), rec("missing", 0, "k", "v")},
		Group:   "g", Generation: a.Generation, MemberID: m.MemberID(),
		Offsets: map[broker.TopicPartition]int64{in0: 9},
	})
	require.ErrorIs(t, err, broker.ErrUnknownTopic)
	requireUnchanged(t, b, "g", in0, 4, "out2", 0, 1)

	// The committer goes on after a refused commit.
	require.NoError(t, c.Commit(ctx, broker.CommitRequest{
		Records: []broker.Record{rec("out2", 0, "k", "y1")}, Group: "g",
		Generation: a.Generation, MemberID: m.MemberID(), Offsets: map[broker.TopicPartition]int64{in0: 5},
	}))
	requireUnchanged(t, b, "g", in0, 5, "out2", 0, 2)
	require.NoError(t, m.Leave(ctx))
}

func testCommitterFencedByGeneration(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	createTopic(t, b, "in", 2)
	createTopic(t, b, "out", 1)
	inTP := broker.TopicPartition{Topic: "in", Partition: 0}
	m1, err := b.JoinGroup(ctx, "g", []string{"in"}, broker.JoinOptions{})
	require.NoError(t, err)
	a1 := recvAssignment(t, m1, func(broker.Assignment) bool { return true })
	c1 := newCommitter(t, b, "app-one-0")
	require.NoError(t, c1.Commit(ctx, broker.CommitRequest{
		Records: []broker.Record{rec("out", 0, "k", "gen1")}, Group: "g",
		Generation: a1.Generation, MemberID: m1.MemberID(), Offsets: map[broker.TopicPartition]int64{inTP: 1},
	}))

	m2, err := b.JoinGroup(ctx, "g", []string{"in"}, broker.JoinOptions{})
	require.NoError(t, err)
	a2 := recvAssignment(t, m2, func(a broker.Assignment) bool { return a.Generation > a1.Generation })
	err = c1.Commit(ctx, broker.CommitRequest{
		Records: []broker.Record{rec("out", 0, "k", "zombie")}, Group: "g",
		Generation: a1.Generation, MemberID: m1.MemberID(), Offsets: map[broker.TopicPartition]int64{inTP: 7},
	})
	require.ErrorIs(t, err, broker.ErrFenced)
	require.False(t, broker.IsRetryable(err))
	requireUnchanged(t, b, "g", inTP, 1, "out", 0, 1)

	c2 := newCommitter(t, b, "app-two-0")
	require.NoError(t, c2.Commit(ctx, broker.CommitRequest{
		Records: []broker.Record{rec("out", 0, "k", "gen2")}, Group: "g",
		Generation: a2.Generation, MemberID: m2.MemberID(), Offsets: map[broker.TopicPartition]int64{inTP: 2},
	}))
	recs, err := broker.ReadAll(ctx, b, "out")
	require.NoError(t, err)
	require.Equal(t, []string{"gen1", "gen2"}, values(recs))
	require.NoError(t, m1.Leave(ctx))
	require.NoError(t, m2.Leave(ctx))
}

// testCommitterFencedBySameID opens a second committer with the id of a
// first one, as a restarted instance does: the first (a zombie) is
// fenced, whatever its generation, and nothing of its commit is visible.
func testCommitterFencedBySameID(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	createTopic(t, b, "in", 1)
	createTopic(t, b, "out", 1)
	inTP := broker.TopicPartition{Topic: "in", Partition: 0}
	m, err := b.JoinGroup(ctx, "g", []string{"in"}, broker.JoinOptions{})
	require.NoError(t, err)
	a := recvAssignment(t, m, func(broker.Assignment) bool { return true })
	commit := func(c broker.Committer, value string, off int64) error {
		return c.Commit(ctx, broker.CommitRequest{
			Records: []broker.Record{rec("out", 0, "k", value)}, Group: "g",
			Generation: a.Generation, MemberID: m.MemberID(), Offsets: map[broker.TopicPartition]int64{inTP: off},
		})
	}
	old := newCommitter(t, b, "app-inst-0")
	require.NoError(t, commit(old, "old-1", 1))
	other := newCommitter(t, b, "app-inst-1") // another id is not affected
	fresh := newCommitter(t, b, "app-inst-0")
	err = commit(old, "zombie", 5)
	require.ErrorIs(t, err, broker.ErrFenced)
	require.False(t, broker.IsRetryable(err))
	requireUnchanged(t, b, "g", inTP, 1, "out", 0, 1)
	require.NoError(t, commit(fresh, "fresh-2", 2))
	require.NoError(t, commit(other, "other-3", 3))
	recs, err := broker.ReadAll(ctx, b, "out")
	require.NoError(t, err)
	require.Equal(t, []string{"old-1", "fresh-2", "other-3"}, values(recs))
	require.NoError(t, m.Leave(ctx))
}

func testCommitterInvalid(t *testing.T, b broker.Broker) {
	_, err := b.NewCommitter(t.Context(), "")
	require.ErrorIs(t, err, broker.ErrInvalidConfig)
	createTopic(t, b, "out", 1)
	c, err := b.NewCommitter(t.Context(), "app-x-0")
	require.NoError(t, err)
	require.NoError(t, c.Close())
	require.NoError(t, c.Close(), "closing twice")
	err = c.Commit(t.Context(), broker.CommitRequest{Records: []broker.Record{rec("out", 0, "k", "v")}})
	require.ErrorIs(t, err, broker.ErrClosed)
	offs, err := b.ListOffsets(t.Context(), "out", 0)
	require.NoError(t, err)
	require.Equal(t, int64(0), offs.Latest)
}
