package brokertest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
)

var consumerCases = []testCase{
	{"Consumer/AssignPoll", testConsumerAssignPoll},
	{"Consumer/Seek", testConsumerSeek},
	{"Consumer/PauseResume", testConsumerPauseResume},
	{"Consumer/Unassign", testConsumerUnassign},
	{"Consumer/Ends", testConsumerEnds},
	{"Consumer/Waits", testConsumerWaits},
	{"Consumer/OutOfRange", testConsumerOutOfRange},
	{"Consumer/ReadCommitted", testConsumerReadCommitted},
	{"Consumer/Close", testConsumerClose},
	{"Read", testRead},
}

// newConsumer returns a consumer of b that the test closes.
func newConsumer(t *testing.T, b broker.Broker) broker.Consumer {
	t.Helper()
	c, err := b.NewConsumer(broker.ConsumerOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// pollUntil polls c until done says the records polled so far (and the
// latest Polled) are enough, failing after waitBound. It returns the
// records polled, checking that each partition's come in offset order.
func pollUntil(t *testing.T, c broker.Consumer, done func(recs []broker.Record, last broker.Polled) bool) ([]broker.Record, broker.Polled) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitBound)
	defer cancel()
	var recs []broker.Record
	last := map[broker.TopicPartition]int64{}
	for {
		p, err := c.Poll(ctx, 100*time.Millisecond)
		require.NoError(t, err)
		for _, r := range p.Records {
			tp := broker.TopicPartition{Topic: r.Topic, Partition: r.Partition}
			if prev, ok := last[tp]; ok {
				require.Greater(t, r.Offset, prev, "%s/%d: offsets in order", r.Topic, r.Partition)
			}
			last[tp] = r.Offset
		}
		recs = append(recs, p.Records...)
		if done(recs, p) {
			return recs, p
		}
	}
}

// valuesOf returns the values of the records of topic/partition in recs.
func valuesOf(recs []broker.Record, topic string, partition int32) []string {
	var out []string
	for _, r := range recs {
		if r.Topic == topic && r.Partition == partition {
			out = append(out, string(r.Value))
		}
	}
	return out
}

// count returns a done func of pollUntil that waits for n records.
func count(n int) func([]broker.Record, broker.Polled) bool {
	return func(recs []broker.Record, _ broker.Polled) bool { return len(recs) >= n }
}

func testConsumerAssignPoll(t *testing.T, b broker.Broker) {
	createTopic(t, b, "a", 2)
	createTopic(t, b, "b", 1)
	produceValues(t, b, "a", 0, seq("a0-", 5)...)
	produceValues(t, b, "a", 1, seq("a1-", 3)...)
	produceValues(t, b, "b", 0, seq("b0-", 4)...)
	c := newConsumer(t, b)
	c.Assign(map[broker.TopicPartition]int64{
		{Topic: "a", Partition: 0}: 0,
		{Topic: "a", Partition: 1}: 1,
		{Topic: "b", Partition: 0}: 4, // at its end
	})
	recs, _ := pollUntil(t, c, count(7))
	require.Len(t, recs, 7)
	require.Equal(t, seq("a0-", 5), valuesOf(recs, "a", 0))
	require.Equal(t, seq("a1-", 3)[1:], valuesOf(recs, "a", 1))
	require.Empty(t, valuesOf(recs, "b", 0))

	// Positions advanced: new records, and only them, come next.
	produceValues(t, b, "b", 0, "b0-new")
	produceValues(t, b, "a", 1, "a1-new")
	recs, _ = pollUntil(t, c, count(2))
	require.ElementsMatch(t, []string{"b0-new", "a1-new"}, values(recs))
}

func testConsumerSeek(t *testing.T, b broker.Broker) {
	createTopic(t, b, "t", 1)
	produceValues(t, b, "t", 0, seq("v", 6)...)
	tp := broker.TopicPartition{Topic: "t", Partition: 0}
	c := newConsumer(t, b)
	c.Assign(map[broker.TopicPartition]int64{tp: 0})
	recs, _ := pollUntil(t, c, count(6))
	require.Equal(t, seq("v", 6), values(recs))

	// Assigning an assigned partition again moves its position, back or
	// forth.
	c.Assign(map[broker.TopicPartition]int64{tp: 2})
	recs, _ = pollUntil(t, c, count(4))
	require.Equal(t, seq("v", 6)[2:], values(recs))
	require.Equal(t, int64(2), recs[0].Offset)
	c.Assign(map[broker.TopicPartition]int64{tp: 5})
	recs, _ = pollUntil(t, c, count(1))
	require.Equal(t, []string{"v5"}, values(recs))
}

func testConsumerPauseResume(t *testing.T, b broker.Broker) {
	createTopic(t, b, "t", 2)
	produceValues(t, b, "t", 0, "p0-a", "p0-b")
	produceValues(t, b, "t", 1, "p1-a")
	p0, p1 := broker.TopicPartition{Topic: "t", Partition: 0}, broker.TopicPartition{Topic: "t", Partition: 1}
	c := newConsumer(t, b)
	c.Pause(p0) // not assigned yet: no error, no effect
	c.Assign(map[broker.TopicPartition]int64{p0: 0, p1: 0})
	c.Pause(p0)
	recs, _ := pollUntil(t, c, count(1))
	require.Equal(t, []string{"p1-a"}, values(recs))

	// A paused partition returns nothing, even with records readable;
	// p1 is at its end, so this Poll ends by its wait.
	produceValues(t, b, "t", 0, "p0-c")
	p, err := c.Poll(t.Context(), 0)
	require.NoError(t, err)
	require.Empty(t, p.Records, "records of a paused partition")

	// Re-assigning a paused partition keeps it paused.
	c.Assign(map[broker.TopicPartition]int64{p0: 1})
	p, err = c.Poll(t.Context(), 0)
	require.NoError(t, err)
	require.Empty(t, p.Records, "records of a paused partition after a seek")

	c.Resume(p0)
	recs, _ = pollUntil(t, c, count(2))
	require.Equal(t, []string{"p0-b", "p0-c"}, values(recs), "resumed from the position set while paused")
}

func testConsumerUnassign(t *testing.T, b broker.Broker) {
	createTopic(t, b, "t", 2)
	produceValues(t, b, "t", 0, "p0-a")
	produceValues(t, b, "t", 1, "p1-a")
	p0, p1 := broker.TopicPartition{Topic: "t", Partition: 0}, broker.TopicPartition{Topic: "t", Partition: 1}
	c := newConsumer(t, b)
	c.Assign(map[broker.TopicPartition]int64{p0: 0, p1: 0})
	recs, _ := pollUntil(t, c, count(2))
	require.ElementsMatch(t, []string{"p0-a", "p1-a"}, values(recs))

	c.Pause(p1)
	c.Unassign(p1, broker.TopicPartition{Topic: "t", Partition: 7}) // the second is not assigned: ignored
	produceValues(t, b, "t", 0, "p0-b")
	produceValues(t, b, "t", 1, "p1-b")
	recs, _ = pollUntil(t, c, count(1))
	require.Equal(t, []string{"p0-b"}, values(recs))
	p, err := c.Poll(t.Context(), 0)
	require.NoError(t, err)
	require.Empty(t, p.Records, "records of an unassigned partition")

	// Assigned again, it starts from the position given, unpaused: the
	// pause did not outlive the Unassign.
	c.Assign(map[broker.TopicPartition]int64{p1: 0})
	recs, _ = pollUntil(t, c, count(2))
	require.Equal(t, []string{"p1-a", "p1-b"}, values(recs))
}

func testConsumerEnds(t *testing.T, b broker.Broker) {
	createTopic(t, b, "t", 3)
	produceValues(t, b, "t", 0, seq("v", 3)...)
	produceValues(t, b, "t", 1, seq("w", 2)...)
	tps := []broker.TopicPartition{{Topic: "t", Partition: 0}, {Topic: "t", Partition: 1}, {Topic: "t", Partition: 2}}
	c := newConsumer(t, b)
	c.Assign(map[broker.TopicPartition]int64{tps[0]: 0, tps[1]: 2, tps[2]: 0})
	ends := map[broker.TopicPartition]int64{}
	recs, _ := pollUntil(t, c, func(recs []broker.Record, p broker.Polled) bool {
		for tp, end := range p.Ends {
			ends[tp] = end
		}
		return len(recs) == 3 && len(ends) == 3
	})
	require.Equal(t, seq("v", 3), values(recs))
	require.Equal(t, map[broker.TopicPartition]int64{tps[0]: 3, tps[1]: 2, tps[2]: 0}, ends,
		"every partition read to its end, empty ones and ones at their end included")
	for tp, end := range ends {
		offs, err := b.ListOffsets(t.Context(), tp.Topic, tp.Partition)
		require.NoError(t, err)
		require.Equal(t, offs.Latest, end, "%v: the end is ListOffsets' Latest", tp)
	}

	// A partition with records left is not at its end in the Poll that
	// returns only some of them.
	many := make([]string, 2000)
	for i := range many {
		many[i] = "m"
	}
	produceValues(t, b, "t", 2, many...)
	lim, err := b.NewConsumer(broker.ConsumerOptions{MaxRecords: 10})
	require.NoError(t, err)
	defer lim.Close()
	lim.Assign(map[broker.TopicPartition]int64{tps[2]: 0})
	p, err := lim.Poll(t.Context(), waitBound)
	require.NoError(t, err)
	require.NotEmpty(t, p.Records)
	if len(p.Records) < len(many) {
		_, ok := p.Ends[tps[2]]
		require.False(t, ok, "a partition with %d of %d records returned is not at its end", len(p.Records), len(many))
	}
}

func testConsumerWaits(t *testing.T, b broker.Broker) {
	createTopic(t, b, "t", 2)
	c := newConsumer(t, b)
	c.Assign(map[broker.TopicPartition]int64{{Topic: "t", Partition: 0}: 0, {Topic: "t", Partition: 1}: 0})
	// Nothing readable and no wait: an empty Poll is not an error.
	p, err := c.Poll(t.Context(), 0)
	require.NoError(t, err)
	require.Empty(t, p.Records)

	type result struct {
		p   broker.Polled
		err error
		at  time.Duration
	}
	res := make(chan result, 1)
	started := make(chan struct{})
	go func() {
		close(started)
		start := time.Now()
		p, err := c.Poll(t.Context(), waitBound)
		res <- result{p, err, time.Since(start)}
	}()
	<-started
	produceValues(t, b, "t", 1, "woken")
	select {
	case r := <-res:
		require.NoError(t, r.err)
		require.Less(t, r.at, waitBound, "the produce, not maxWait, ended the Poll")
		require.Equal(t, []string{"woken"}, values(r.p.Records))
	case <-time.After(2 * waitBound):
		require.FailNow(t, "Poll did not return")
	}

	// A canceled ctx ends a Poll with ctx's error.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = c.Poll(ctx, waitBound)
	require.ErrorIs(t, err, context.Canceled)
}

func testConsumerOutOfRange(t *testing.T, b broker.Broker) {
	cfg := broker.TopicConfig{Partitions: 2}
	require.NoError(t, b.CreateTopic(t.Context(), "t", cfg))
	produceValues(t, b, "t", 0, seq("v", 6)...)
	produceValues(t, b, "t", 1, "other")
	require.NoError(t, b.DeleteRecords(t.Context(), "t", 0, 3))
	tp := broker.TopicPartition{Topic: "t", Partition: 0}
	c := newConsumer(t, b)
	c.Assign(map[broker.TopicPartition]int64{tp: 1, {Topic: "t", Partition: 1}: 0})
	ctx, cancel := context.WithTimeout(t.Context(), waitBound)
	defer cancel()
	var oor *broker.OffsetOutOfRangeError
	for {
		// A backend may return the other partition's records first.
		p, err := c.Poll(ctx, 100*time.Millisecond)
		if err != nil {
			require.ErrorAs(t, err, &oor)
			require.Empty(t, p.Records, "a Poll that fails returns no records")
			break
		}
		for _, r := range p.Records {
			require.NotEqual(t, int32(0), r.Partition, "a record below the earliest offset: %d", r.Offset)
		}
	}
	require.Equal(t, "t", oor.Topic)
	require.Equal(t, int32(0), oor.Partition)
	require.Equal(t, int64(1), oor.Offset)
	require.Equal(t, int64(3), oor.Offsets.Earliest)
	require.False(t, broker.IsRetryable(oor))

	// Seeking to the earliest offset recovers.
	c.Assign(map[broker.TopicPartition]int64{tp: oor.Offsets.Earliest})
	recs, _ := pollUntil(t, c, func(recs []broker.Record, _ broker.Polled) bool { return len(valuesOf(recs, "t", 0)) == 3 })
	require.Equal(t, seq("v", 6)[3:], valuesOf(recs, "t", 0))
}

// testConsumerReadCommitted checks that a Consumer never returns the
// records of a commit that failed: fenced by the group generation, or
// refused for a bad record.
func testConsumerReadCommitted(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	createTopic(t, b, "in", 1)
	createTopic(t, b, "out", 1)
	inTP := broker.TopicPartition{Topic: "in", Partition: 0}
	outTP := broker.TopicPartition{Topic: "out", Partition: 0}
	c := newConsumer(t, b)
	c.Assign(map[broker.TopicPartition]int64{outTP: 0})

	m1, err := b.JoinGroup(ctx, "g", []string{"in"}, broker.JoinOptions{})
	require.NoError(t, err)
	a1 := recvAssignment(t, m1, func(broker.Assignment) bool { return true })
	zombie := newCommitter(t, b, "app-zombie-0")
	require.NoError(t, zombie.Commit(ctx, broker.CommitRequest{
		Records: []broker.Record{rec("out", 0, "k", "ok-1")}, Group: "g",
		Generation: a1.Generation, MemberID: m1.MemberID(), Offsets: map[broker.TopicPartition]int64{inTP: 1},
	}))
	m2, err := b.JoinGroup(ctx, "g", []string{"in"}, broker.JoinOptions{})
	require.NoError(t, err)
	a2 := recvAssignment(t, m2, func(a broker.Assignment) bool { return a.Generation > a1.Generation })

	err = zombie.Commit(ctx, broker.CommitRequest{
		Records: []broker.Record{rec("out", 0, "k", "fenced")}, Group: "g",
		Generation: a1.Generation, MemberID: m1.MemberID(), Offsets: map[broker.TopicPartition]int64{inTP: 2},
	})
	require.ErrorIs(t, err, broker.ErrFenced)
	err = zombie.Commit(ctx, broker.CommitRequest{
		Records: []broker.Record{rec("out", 0, "k", "refused"), rec("missing", 0, "k", "v")},
	})
	require.Error(t, err)
	live := newCommitter(t, b, "app-live-0")
	require.NoError(t, live.Commit(ctx, broker.CommitRequest{
		Records: []broker.Record{rec("out", 0, "k", "ok-2")}, Group: "g",
		Generation: a2.Generation, MemberID: m2.MemberID(), Offsets: map[broker.TopicPartition]int64{inTP: 2},
	}))
	var end int64
	recs, _ := pollUntil(t, c, func(_ []broker.Record, p broker.Polled) bool {
		var ok bool
		end, ok = p.Ends[outTP]
		return ok
	})
	require.Equal(t, []string{"ok-1", "ok-2"}, values(recs), "only records of successful commits")
	offs, err := b.ListOffsets(ctx, "out", 0)
	require.NoError(t, err)
	require.Equal(t, offs.Latest, end)
	require.NoError(t, m1.Leave(ctx))
	require.NoError(t, m2.Leave(ctx))
}

func testConsumerClose(t *testing.T, b broker.Broker) {
	createTopic(t, b, "t", 1)
	c, err := b.NewConsumer(broker.ConsumerOptions{})
	require.NoError(t, err)
	c.Assign(map[broker.TopicPartition]int64{{Topic: "t", Partition: 0}: 0})
	require.NoError(t, c.Close())
	require.NoError(t, c.Close(), "closing twice")
	_, err = c.Poll(t.Context(), 0)
	require.ErrorIs(t, err, broker.ErrClosed)

	_, err = b.NewConsumer(broker.ConsumerOptions{MaxRecords: -1})
	require.ErrorIs(t, err, broker.ErrInvalidConfig)
}

func testRead(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	createTopic(t, b, "a", 2)
	createTopic(t, b, "b", 1)
	produceValues(t, b, "a", 1, seq("a1-", 4)...)
	produceValues(t, b, "a", 0, seq("a0-", 3)...)
	produceValues(t, b, "b", 0, "b0")
	got, err := broker.ReadAll(ctx, b, "b", "a")
	require.NoError(t, err)
	want := append(append(seq("a0-", 3), seq("a1-", 4)...), "b0")
	require.Equal(t, want, values(got), "partitions sorted by topic, then partition; each in offset order")

	got, err = broker.Read(ctx, b, map[broker.TopicPartition]int64{{Topic: "a", Partition: 1}: 2, {Topic: "b", Partition: 0}: 1})
	require.NoError(t, err)
	require.Equal(t, []string{"a1-2", "a1-3"}, values(got))

	_, err = broker.ReadAll(ctx, b, "missing")
	require.ErrorIs(t, err, broker.ErrUnknownTopic)
	require.NoError(t, b.DeleteRecords(ctx, "a", 1, 2))
	_, err = broker.Read(ctx, b, map[broker.TopicPartition]int64{{Topic: "a", Partition: 1}: 0})
	var oor *broker.OffsetOutOfRangeError
	require.True(t, errors.As(err, &oor), "%v", err)
}
