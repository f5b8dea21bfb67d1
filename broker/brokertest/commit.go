package brokertest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
)

var commitCases = []testCase{
	{"Commit/Atomic", testCommitAtomic},
	{"Commit/WholeToFetchers", testCommitWholeToFetchers},
	{"Commit/Fenced", testCommitFenced},
	{"Commit/ConcurrentMembers", testConcurrentMembers},
	{"Commit/OffsetsNotBeforeRecords", testOffsetsNotBeforeRecords},
	{"Commit/FetchOffsetsAfterRebalance", testFetchOffsetsAfterRebalance},
}

// testOffsetsNotBeforeRecords commits in one goroutine while another reads
// the group's offsets and then the output's end: once an offset is
// readable, the records committed with it are fetchable too.
func testOffsetsNotBeforeRecords(t *testing.T, b broker.Broker) {
	const commits = 200
	createTopic(t, b, "in", 1)
	createTopic(t, b, "out", 1)
	inTP := broker.TopicPartition{Topic: "in", Partition: 0}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- func() error {
			for c := range commits {
				// Commit c writes one record and stores offset c+1.
				err := commit(ctx, b, broker.CommitRequest{
					Records: []broker.Record{rec("out", 0, "k", fmt.Sprint(c))},
					Group:   "g",
					Offsets: map[broker.TopicPartition]int64{inTP: int64(c + 1)},
				})
				if err != nil {
					return err
				}
			}
			return nil
		}()
	}()
	for {
		got, err := b.FetchOffsets(ctx, "g", []broker.TopicPartition{inTP})
		require.NoError(t, err)
		offs, err := b.ListOffsets(ctx, "out", 0)
		require.NoError(t, err)
		require.GreaterOrEqual(t, offs.Latest, got[inTP], "offset %d readable before its commit's records", got[inTP])
		if got[inTP] == commits {
			break
		}
	}
	require.NoError(t, <-done)
}

// testFetchOffsetsAfterRebalance has a member commit in a loop while a
// second member joins: the offset the new owner reads after its assignment
// is the last commit the old member got acknowledged, never an older one
// (which would make the new owner process records twice).
func testFetchOffsetsAfterRebalance(t *testing.T, b broker.Broker) {
	createTopic(t, b, "in", 1)
	createTopic(t, b, "out", 1)
	inTP := broker.TopicPartition{Topic: "in", Partition: 0}
	for round := range 5 {
		group := fmt.Sprintf("g%d", round)
		ctx := t.Context()
		m1, err := b.JoinGroup(ctx, group, []string{"in"}, broker.JoinOptions{})
		require.NoError(t, err)
		a1 := recvAssignment(t, m1, func(broker.Assignment) bool { return true })

		started := make(chan struct{})
		last := make(chan int64, 1)
		go func() {
			acked := int64(0)
			for i := int64(1); ; i++ {
				err := commit(ctx, b, broker.CommitRequest{
					Records: []broker.Record{rec("out", 0, "k", fmt.Sprint(i))},
					Group:   group, Generation: a1.Generation, MemberID: m1.MemberID(),
					Offsets: map[broker.TopicPartition]int64{inTP: i},
				})
				if i == 1 {
					close(started)
				}
				if err != nil {
					last <- acked
					return
				}
				acked = i
			}
		}()
		<-started
		m2, err := b.JoinGroup(ctx, group, []string{"in"}, broker.JoinOptions{})
		require.NoError(t, err)
		recvAssignment(t, m2, func(a broker.Assignment) bool { return a.Generation > a1.Generation })
		// Leaving hands every partition to m2 in a newer generation, so
		// m1's loop ends fenced.
		require.NoError(t, m1.Leave(ctx))
		a2 := recvAssignment(t, m2, func(a broker.Assignment) bool { return len(a.Partitions) == 1 })
		got, err := b.FetchOffsets(ctx, group, []broker.TopicPartition{inTP})
		require.NoError(t, err)
		acked := <-last
		require.Equal(t, acked, got[inTP], "round %d: new owner (generation %d) read a stale offset", round, a2.Generation)
		require.NoError(t, m2.Leave(ctx))
	}
}

func testCommitAtomic(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	createTopic(t, b, "in", 1)
	createTopic(t, b, "out1", 2)
	createTopic(t, b, "out2", 1)
	produceValues(t, b, "in", 0, seq("in", 5)...)
	produceValues(t, b, "out1", 1, "before")
	inTP := broker.TopicPartition{Topic: "in", Partition: 0}

	req := broker.CommitRequest{
		Records: []broker.Record{
			rec("out1", 0, "k", "o1p0-0"),
			rec("out1", 1, "k", "o1p1-0"),
			rec("out2", 0, "k", "o2-0"),
			rec("out1", 0, "k", "o1p0-1"),
			rec("out1", broker.PartitionByKey, "by-key", "o1-bykey"),
		},
		Group:   "g",
		Offsets: map[broker.TopicPartition]int64{inTP: 3},
	}
	require.NoError(t, commit(ctx, b, req))

	// Partition and Offset are set in place.
	byKey := broker.KeyPartition([]byte("by-key"), 2)
	require.Equal(t, byKey, req.Records[4].Partition)
	next := map[int32]int64{0: 0, 1: 1}
	for _, i := range []int{0, 1, 3, 4} {
		r := req.Records[i]
		require.Equal(t, next[r.Partition], r.Offset, "record %d", i)
		next[r.Partition]++
	}
	require.Equal(t, int64(0), req.Records[2].Offset)

	// Visible at once after Commit returns: the records and the offsets.
	got, err := b.FetchOffsets(ctx, "g", []broker.TopicPartition{inTP})
	require.NoError(t, err)
	require.Equal(t, map[broker.TopicPartition]int64{inTP: 3}, got)
	want := map[int32][]string{0: {"o1p0-0", "o1p0-1"}, 1: {"before", "o1p1-0"}}
	want[byKey] = append(want[byKey], "o1-bykey")
	require.Equal(t, want[0], values(fetchAll(t, b, "out1", 0, 0)))
	require.Equal(t, want[1], values(fetchAll(t, b, "out1", 1, 0)))
	require.Equal(t, []string{"o2-0"}, values(fetchAll(t, b, "out2", 0, 0)))

	// Offsets only, and records only, are valid commits too.
	require.NoError(t, commit(ctx, b, broker.CommitRequest{Group: "g", Offsets: map[broker.TopicPartition]int64{inTP: 5}}))
	require.NoError(t, commit(ctx, b, broker.CommitRequest{Records: []broker.Record{rec("out2", 0, "k", "o2-1")}}))
	got, err = b.FetchOffsets(ctx, "g", []broker.TopicPartition{inTP})
	require.NoError(t, err)
	require.Equal(t, map[broker.TopicPartition]int64{inTP: 5}, got)
	require.Equal(t, []string{"o2-0", "o2-1"}, values(fetchAll(t, b, "out2", 0, 0)))

	// A commit naming an unknown topic writes nothing, offsets included.
	err = commit(ctx, b, broker.CommitRequest{
		Records: []broker.Record{rec("out2", 0, "k", "lost"), rec("missing", 0, "k", "v")},
		Group:   "g",
		Offsets: map[broker.TopicPartition]int64{inTP: 1},
	})
	require.ErrorIs(t, err, broker.ErrUnknownTopic)
	requireUnchanged(t, b, "g", inTP, 5, "out2", 0, 2)
}

// testCommitWholeToFetchers runs fetchers concurrently with commits and
// checks that every fetch response holds whole commits per partition: a
// commit's records become visible together, never a part of them.
func testCommitWholeToFetchers(t *testing.T, b broker.Broker) {
	const commits, perPartition = 20, 5
	createTopic(t, b, "out", 2)
	createTopic(t, b, "in", 1)
	inTP := broker.TopicPartition{Topic: "in", Partition: 0}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	watchErr := make(chan error, 1)
	go func() {
		watchErr <- func() error {
			next, seen := []int64{0, 0}, []int{0, 0}
			for seen[0] < commits*perPartition || seen[1] < commits*perPartition {
				recs, err := fetch(ctx, b, []broker.FetchRequest{
					{Topic: "out", Partition: 0, Offset: next[0]},
					{Topic: "out", Partition: 1, Offset: next[1]},
				}, broker.FetchOptions{MaxWait: waitBound})
				if err != nil {
					return err
				}
				count := map[string]int{}
				for _, r := range recs {
					// Offsets increase; they may skip a commit
					// marker's (Kafka).
					if r.Offset < next[r.Partition] {
						return fmt.Errorf("partition %d: offset %d, want at least %d", r.Partition, r.Offset, next[r.Partition])
					}
					next[r.Partition] = r.Offset + 1
					seen[r.Partition]++
					commit, _, _ := strings.Cut(string(r.Value), "/")
					count[fmt.Sprintf("%d/%s", r.Partition, commit)]++
				}
				for c, n := range count {
					if n != perPartition {
						return fmt.Errorf("a fetch saw %d of the %d records of commit %s", n, perPartition, c)
					}
				}
			}
			return nil
		}()
	}()

	for c := range commits {
		var recs []broker.Record
		for p := range int32(2) {
			for i := range perPartition {
				recs = append(recs, rec("out", p, "k", fmt.Sprintf("c%d/%d", c, i)))
			}
		}
		require.NoError(t, commit(t.Context(), b, broker.CommitRequest{
			Records: recs,
			Group:   "g",
			Offsets: map[broker.TopicPartition]int64{inTP: int64(c + 1)},
		}))
		// Visible once Commit has returned: the latest offset is past
		// the commit's records (their offsets are set in place).
		for p := range int32(2) {
			offs, err := b.ListOffsets(t.Context(), "out", p)
			require.NoError(t, err)
			last := recs[p*perPartition+perPartition-1]
			require.Equal(t, p, last.Partition)
			require.Greater(t, offs.Latest, last.Offset, "commit %d partition %d", c, p)
		}
		got, err := b.FetchOffsets(t.Context(), "g", []broker.TopicPartition{inTP})
		require.NoError(t, err)
		require.Equal(t, int64(c+1), got[inTP])
	}
	select {
	case err := <-watchErr:
		require.NoError(t, err)
	case <-time.After(waitBound):
		require.FailNow(t, "the watcher did not see every commit", "waited %v", waitBound)
	}
}

func testCommitFenced(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	createTopic(t, b, "in", 2)
	createTopic(t, b, "out", 1)
	inTP := broker.TopicPartition{Topic: "in", Partition: 0}

	m1, err := b.JoinGroup(ctx, "g", []string{"in"}, broker.JoinOptions{})
	require.NoError(t, err)
	a1 := recvAssignment(t, m1, func(broker.Assignment) bool { return true })
	require.NoError(t, commit(ctx, b, broker.CommitRequest{
		Records: []broker.Record{rec("out", 0, "k", "gen1")}, Group: "g",
		Generation: a1.Generation, MemberID: m1.MemberID(),
		Offsets: map[broker.TopicPartition]int64{inTP: 1},
	}))

	m2, err := b.JoinGroup(ctx, "g", []string{"in"}, broker.JoinOptions{})
	require.NoError(t, err)
	a2 := recvAssignment(t, m2, func(a broker.Assignment) bool { return a.Generation > a1.Generation })
	b1 := recvAssignment(t, m1, func(a broker.Assignment) bool { return a.Generation >= a2.Generation })
	require.Equal(t, a2.Generation, b1.Generation)

	fenced := func(name string, gen int64, member string) {
		t.Helper()
		err := commit(ctx, b, broker.CommitRequest{
			Records: []broker.Record{rec("out", 0, "k", "zombie-"+name)}, Group: "g",
			Generation: gen, MemberID: member,
			Offsets: map[broker.TopicPartition]int64{inTP: 99},
		})
		require.ErrorIs(t, err, broker.ErrFenced, name)
		require.False(t, broker.IsRetryable(err), name)
	}
	fenced("stale generation", a1.Generation, m1.MemberID())
	fenced("unknown member", a2.Generation, "no-such-member")
	fenced("future generation", a2.Generation+1, m1.MemberID())
	requireUnchanged(t, b, "g", inTP, 1, "out", 0, 1)

	require.NoError(t, commit(ctx, b, broker.CommitRequest{
		Records: []broker.Record{rec("out", 0, "k", "gen2")}, Group: "g",
		Generation: a2.Generation, MemberID: m2.MemberID(),
		Offsets: map[broker.TopicPartition]int64{inTP: 2},
	}))

	// A member that left is fenced, with its last generation or the new one.
	require.NoError(t, m2.Leave(ctx))
	c1 := recvAssignment(t, m1, func(a broker.Assignment) bool { return a.Generation > a2.Generation })
	fenced("left, old generation", a2.Generation, m2.MemberID())
	fenced("left, current generation", c1.Generation, m2.MemberID())
	requireUnchanged(t, b, "g", inTP, 2, "out", 0, 2)
	require.Equal(t, []string{"gen1", "gen2"}, values(fetchAll(t, b, "out", 0, 0)))

	require.NoError(t, commit(ctx, b, broker.CommitRequest{
		Group: "g", Generation: c1.Generation, MemberID: m1.MemberID(),
		Offsets: map[broker.TopicPartition]int64{inTP: 3},
	}))
	require.NoError(t, m1.Leave(ctx))
}

// requireUnchanged asserts that group's offset for tp is still offset and
// that topic/partition still holds records readable records (its offsets
// are not compared: on Kafka commit markers take offsets too).
func requireUnchanged(t *testing.T, b broker.Broker, group string, tp broker.TopicPartition, offset int64, topic string, partition int32, records int) {
	t.Helper()
	got, err := b.FetchOffsets(t.Context(), group, []broker.TopicPartition{tp})
	require.NoError(t, err)
	require.Equal(t, map[broker.TopicPartition]int64{tp: offset}, got, "a refused commit stores no offsets")
	offs, err := b.ListOffsets(t.Context(), topic, partition)
	require.NoError(t, err)
	require.Len(t, fetchAll(t, b, topic, partition, offs.Earliest), records, "a refused commit appends no records")
}

func testClose(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	createTopic(t, b, "t", 1)
	produceValues(t, b, "t", 0, "v")
	started, res := goFetch(ctx, b, []broker.FetchRequest{{Topic: "t", Offset: 1}}, broker.FetchOptions{MaxWait: waitBound})
	<-started
	require.NoError(t, b.Close())
	r := awaitFetch(t, res)
	require.ErrorIs(t, r.err, broker.ErrClosed, "a fetch blocked at Close returns ErrClosed")
	require.Less(t, r.elapsed, waitBound)

	for name, call := range topicCalls("t") {
		require.ErrorIs(t, call(ctx, b), broker.ErrClosed, name)
	}
	require.ErrorIs(t, b.CreateTopic(ctx, "u", broker.TopicConfig{Partitions: 1}), broker.ErrClosed)
	_, err := b.ListTopics(ctx)
	require.ErrorIs(t, err, broker.ErrClosed)
	_, err = b.JoinGroup(ctx, "g", []string{"t"}, broker.JoinOptions{})
	require.ErrorIs(t, err, broker.ErrClosed)
	require.ErrorIs(t, b.CommitOffsets(ctx, "g", map[broker.TopicPartition]int64{{Topic: "t"}: 1}), broker.ErrClosed)
	_, err = b.FetchOffsets(ctx, "g", []broker.TopicPartition{{Topic: "t"}})
	require.ErrorIs(t, err, broker.ErrClosed)
	require.ErrorIs(t, commit(ctx, b, broker.CommitRequest{Group: "g", Offsets: map[broker.TopicPartition]int64{{Topic: "t"}: 1}}), broker.ErrClosed)
}

// testConcurrentMembers runs three members committing concurrently, each
// with its newest assignment, while one of them leaves (a rebalance). Every
// Commit succeeds or is fenced; the output topic holds exactly the records
// of the successful commits; each partition's stored offset is the highest
// one committed for it (owners change only with the generation, and a
// commit of an older generation is fenced, so offsets only grow).
func testConcurrentMembers(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	createTopic(t, b, "in", 4)
	createTopic(t, b, "out", 1)
	var mu sync.Mutex
	committed := map[string]map[broker.TopicPartition]int64{} // by record value
	fenced := 0
	// run commits with m's newest assignment: iterations times, or, when
	// iterations is 0, until it has committed 5 times with a generation
	// newer than its first (after a rebalance), at most 200 times.
	run := func(idx int, m broker.Membership, iterations int) error {
		var a broker.Assignment
		select {
		case a = <-m.Assignments():
		case <-time.After(waitBound):
			return fmt.Errorf("member %d: no assignment", idx)
		}
		first, after := a.Generation, 0
		if iterations == 0 {
			iterations = 200
		}
		for n := range iterations {
			select {
			case newer, open := <-m.Assignments():
				if open {
					a = newer
				}
			default:
			}
			if a.Generation > first {
				if after++; after > 5 {
					return nil
				}
			}
			offsets := map[broker.TopicPartition]int64{}
			for _, tp := range a.Partitions {
				offsets[tp] = a.Generation*1_000_000 + int64(n)
			}
			value := fmt.Sprintf("m%d-g%d-n%d", idx, a.Generation, n)
			err := commit(ctx, b, broker.CommitRequest{
				Records: []broker.Record{rec("out", 0, "k", value)},
				Group:   "g", Generation: a.Generation, MemberID: m.MemberID(), Offsets: offsets,
			})
			mu.Lock()
			switch {
			case err == nil:
				committed[value] = offsets
			case errors.Is(err, broker.ErrFenced):
				fenced++
			default:
				mu.Unlock()
				return fmt.Errorf("member %d commit %d: %w", idx, n, err)
			}
			mu.Unlock()
		}
		return nil
	}
	var members []broker.Membership
	for range 3 {
		m, err := b.JoinGroup(ctx, "g", []string{"in"}, broker.JoinOptions{})
		require.NoError(t, err)
		members = append(members, m)
	}
	errs := make(chan error, 3)
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Go(func() {
			if i == 2 {
				err := run(i, m, 10)
				if err == nil {
					err = m.Leave(ctx) // rebalances the other two mid-run
				}
				errs <- err
				return
			}
			errs <- run(i, m, 0)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.NoError(t, members[0].Leave(ctx))
	require.NoError(t, members[1].Leave(ctx))
	require.NotEmpty(t, committed, "some commits succeed")
	t.Logf("%d commits succeeded, %d were fenced", len(committed), fenced)

	var got []string
	for _, r := range fetchAll(t, b, "out", 0, 0) {
		got = append(got, string(r.Value))
	}
	var want []string
	highest := map[broker.TopicPartition]int64{}
	for value, offsets := range committed {
		want = append(want, value)
		for tp, off := range offsets {
			highest[tp] = max(highest[tp], off)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	require.Equal(t, want, got, "the output holds exactly the records of the successful commits")
	stored, err := b.FetchOffsets(ctx, "g", allPartitions(4, "in"))
	require.NoError(t, err)
	require.Equal(t, highest, stored, "each partition's offset is the highest committed for it")
}
