package brokertest

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
)

var committerCases = []testCase{
	{"Committer/Atomic", func(t *testing.T, b broker.Broker) { testCommitterCommit(t, b, atomicKind) }},
	{"Committer/FencedByGeneration", func(t *testing.T, b broker.Broker) { testFencedByGeneration(t, b, atomicKind, true) }},
	{"Committer/FencedBySameID", testCommitterFencedBySameID},
	{"Committer/Invalid", func(t *testing.T, b broker.Broker) { testCommitterInvalid(t, b, atomicKind) }},
	// What an at-least-once committer promises is what an atomic one
	// does but for a commit that failed after it was sent: its records
	// may be visible, its offsets are not. A backend may hand out its
	// atomic committer, which passes these too.
	{"Committer/AtLeastOnce/Commit", func(t *testing.T, b broker.Broker) { testCommitterCommit(t, b, atLeastOnce) }},
	{"Committer/AtLeastOnce/FencedByGeneration", func(t *testing.T, b broker.Broker) { testFencedByGeneration(t, b, atLeastOnce, false) }},
	{"Committer/AtLeastOnce/OffsetsAlone", testAtLeastOnceOffsetsAlone},
	{"Committer/AtLeastOnce/Invalid", func(t *testing.T, b broker.Broker) { testCommitterInvalid(t, b, atLeastOnce) }},
}

// committerKind opens a committer of one kind: atomicKind or atLeastOnce.
type committerKind func(b broker.Broker, ctx context.Context, id string) (broker.Committer, error)

var (
	atomicKind  committerKind = broker.Broker.NewCommitter
	atLeastOnce committerKind = broker.Broker.NewAtLeastOnceCommitter
)

// newCommitter returns b's atomic committer with id, which the test
// closes.
func newCommitter(t *testing.T, b broker.Broker, id string) broker.Committer {
	t.Helper()
	return newCommitterOf(t, b, atomicKind, id)
}

// newCommitterOf returns b's committer of kind with id, which the test
// closes.
func newCommitterOf(t *testing.T, b broker.Broker, kind committerKind, id string) broker.Committer {
	t.Helper()
	c, err := kind(b, t.Context(), id)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// testCommitterCommit commits records to several partitions with offsets
// through a committer of kind: all visible once Commit returned; a commit
// refused before anything was sent (an unknown topic) leaves nothing.
func testCommitterCommit(t *testing.T, b broker.Broker, kind committerKind) {
	ctx := t.Context()
	createTopic(t, b, "in", 2)
	createTopic(t, b, "out1", 2)
	createTopic(t, b, "out2", 1)
	in0, in1 := broker.TopicPartition{Topic: "in", Partition: 0}, broker.TopicPartition{Topic: "in", Partition: 1}
	m, err := b.JoinGroup(ctx, "g", []string{"in"}, broker.JoinOptions{})
	require.NoError(t, err)
	a := recvAssignment(t, m, func(broker.Assignment) bool { return true })
	c := newCommitterOf(t, b, kind, "app-instance-0")
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

func testCommitterInvalid(t *testing.T, b broker.Broker, kind committerKind) {
	_, err := kind(b, t.Context(), "")
	require.ErrorIs(t, err, broker.ErrInvalidConfig)
	createTopic(t, b, "out", 1)
	c, err := kind(b, t.Context(), "app-x-0")
	require.NoError(t, err)
	require.NoError(t, c.Close())
	require.NoError(t, c.Close(), "closing twice")
	err = c.Commit(t.Context(), broker.CommitRequest{Records: []broker.Record{rec("out", 0, "k", "v")}})
	require.ErrorIs(t, err, broker.ErrClosed)
	offs, err := b.ListOffsets(t.Context(), "out", 0)
	require.NoError(t, err)
	require.Equal(t, int64(0), offs.Latest)
}

// testFencedByGeneration commits through a committer of kind (atomic
// or not) in a
// generation a rebalance ended: ErrFenced, not retryable, and the offsets
// stay as they were; the new generation's commit goes through. An atomic
// committer appends nothing of the zombie's commit; an at-least-once one
// may have appended its record, at most once.
func testFencedByGeneration(t *testing.T, b broker.Broker, kind committerKind, atomic bool) {
	ctx := t.Context()
	createTopic(t, b, "in", 2)
	createTopic(t, b, "out", 1)
	inTP := broker.TopicPartition{Topic: "in", Partition: 0}
	m1, err := b.JoinGroup(ctx, "g", []string{"in"}, broker.JoinOptions{})
	require.NoError(t, err)
	a1 := recvAssignment(t, m1, func(broker.Assignment) bool { return true })
	c1 := newCommitterOf(t, b, kind, "app-one-0")
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
	got, err := b.FetchOffsets(ctx, "g", []broker.TopicPartition{inTP})
	require.NoError(t, err)
	require.Equal(t, map[broker.TopicPartition]int64{inTP: 1}, got, "a fenced commit stores no offsets")
	if atomic {
		requireUnchanged(t, b, "g", inTP, 1, "out", 0, 1)
	}

	c2 := newCommitterOf(t, b, kind, "app-two-0")
	require.NoError(t, c2.Commit(ctx, broker.CommitRequest{
		Records: []broker.Record{rec("out", 0, "k", "gen2")}, Group: "g",
		Generation: a2.Generation, MemberID: m2.MemberID(), Offsets: map[broker.TopicPartition]int64{inTP: 2},
	}))
	got, err = b.FetchOffsets(ctx, "g", []broker.TopicPartition{inTP})
	require.NoError(t, err)
	require.Equal(t, map[broker.TopicPartition]int64{inTP: 2}, got)
	recs, err := broker.ReadAll(ctx, b, "out")
	require.NoError(t, err)
	if vs := values(recs); atomic || len(vs) == 2 {
		require.Equal(t, []string{"gen1", "gen2"}, vs)
	} else {
		require.Equal(t, []string{"gen1", "zombie", "gen2"}, vs)
	}
	require.NoError(t, m1.Leave(ctx))
	require.NoError(t, m2.Leave(ctx))
}

// testAtLeastOnceOffsetsAlone commits offsets without records, and
// records without offsets, through an at-least-once committer.
func testAtLeastOnceOffsetsAlone(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	createTopic(t, b, "in", 1)
	createTopic(t, b, "out", 1)
	inTP := broker.TopicPartition{Topic: "in", Partition: 0}
	m, err := b.JoinGroup(ctx, "g", []string{"in"}, broker.JoinOptions{})
	require.NoError(t, err)
	a := recvAssignment(t, m, func(broker.Assignment) bool { return true })
	c := newCommitterOf(t, b, atLeastOnce, "app-alone-0")
	require.NoError(t, c.Commit(ctx, broker.CommitRequest{
		Group: "g", Generation: a.Generation, MemberID: m.MemberID(),
		Offsets: map[broker.TopicPartition]int64{inTP: 3},
	}))
	requireUnchanged(t, b, "g", inTP, 3, "out", 0, 0)
	recs := []broker.Record{rec("out", 0, "k", "v")}
	require.NoError(t, c.Commit(ctx, broker.CommitRequest{Records: recs}))
	require.Equal(t, int64(0), recs[0].Offset, "Offset set in place")
	requireUnchanged(t, b, "g", inTP, 3, "out", 0, 1)
	require.NoError(t, m.Leave(ctx))
}
