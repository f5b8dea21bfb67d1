package kafka_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/kafka"
)

// TestConsumerEndsPastMarkers reads committed transactions: the records
// come back, and Ends gives the last stable offset, past the commit
// markers and past the records of an aborted transaction.
func TestConsumerEndsPastMarkers(t *testing.T) {
	c := newCluster(t)
	b := newBroker(t, c)
	ctx := t.Context()
	require.NoError(t, b.CreateTopic(ctx, "out", broker.TopicConfig{Partitions: 1}))
	cm, err := b.NewCommitter(ctx, "w")
	require.NoError(t, err)
	defer cm.Close()
	require.NoError(t, cm.Commit(ctx, broker.CommitRequest{Records: []broker.Record{rec("out", 0, "a"), rec("out", 0, "b")}}))

	// An aborted transaction of another producer: records and marker.
	other, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.TransactionalID("other"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	defer other.Close()
	require.NoError(t, other.BeginTransaction())
	require.NoError(t, other.ProduceSync(ctx, &kgo.Record{Topic: "out", Partition: 0, Value: []byte("aborted")}).FirstErr())
	require.NoError(t, other.EndTransaction(ctx, kgo.TryAbort))
	require.NoError(t, cm.Commit(ctx, broker.CommitRequest{Records: []broker.Record{rec("out", 0, "c")}}))

	offs, err := b.ListOffsets(ctx, "out", 0)
	require.NoError(t, err)
	require.Greater(t, offs.Latest, int64(3), "markers take offsets")

	con, err := b.NewConsumer(broker.ConsumerOptions{})
	require.NoError(t, err)
	defer con.Close()
	tp := broker.TopicPartition{Topic: "out", Partition: 0}
	con.Assign(map[broker.TopicPartition]int64{tp: 0})
	var got []broker.Record
	for {
		p, err := con.Poll(ctx, 0)
		require.NoError(t, err)
		got = append(got, p.Records...)
		if end, ok := p.Ends[tp]; ok {
			require.Equal(t, offs.Latest, end)
			break
		}
	}
	require.Equal(t, []string{"a", "b", "c"}, values(got))
	require.Equal(t, []int64{0, 1, 5}, []int64{got[0].Offset, got[1].Offset, got[2].Offset},
		"a, b, commit marker, aborted, abort marker, c")

	// At its end a long Poll waits, and a commit wakes it.
	done := make(chan broker.Polled, 1)
	go func() {
		p, _ := con.Poll(ctx, waitBound)
		done <- p
	}()
	require.NoError(t, cm.Commit(ctx, broker.CommitRequest{Records: []broker.Record{rec("out", 0, "d")}}))
	select {
	case p := <-done:
		require.Equal(t, []string{"d"}, values(p.Records))
	case <-time.After(waitBound):
		require.FailNow(t, "the commit did not wake the poll")
	}
}

// TestConsumerPositions checks seeking, pausing, unassigning, the
// limits of one Poll, and positions out of range.
func TestConsumerPositions(t *testing.T) {
	b := newBroker(t, newCluster(t))
	ctx := t.Context()
	require.NoError(t, b.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: 2}))
	for p := range int32(2) {
		var recs []broker.Record
		for i := range 30 {
			recs = append(recs, rec("t", p, fmt.Sprintf("p%d-%d", p, i)))
		}
		require.NoError(t, b.Produce(ctx, recs))
	}
	p0, p1 := broker.TopicPartition{Topic: "t", Partition: 0}, broker.TopicPartition{Topic: "t", Partition: 1}
	con, err := b.NewConsumer(broker.ConsumerOptions{MaxRecords: 7})
	require.NoError(t, err)
	defer con.Close()
	poll := func() broker.Polled {
		t.Helper()
		p, err := con.Poll(ctx, time.Second)
		require.NoError(t, err)
		return p
	}

	con.Assign(map[broker.TopicPartition]int64{p0: 10, p1: 25})
	con.Pause(p1)
	var got []string
	for len(got) < 20 {
		p := poll()
		require.LessOrEqual(t, len(p.Records), 7, "MaxRecords bounds a Poll")
		for _, r := range p.Records {
			require.Equal(t, p0, broker.TopicPartition{Topic: r.Topic, Partition: r.Partition}, "a paused partition is not read")
		}
		got = append(got, values(p.Records)...)
	}
	require.Equal(t, "p0-10", got[0])
	require.Equal(t, "p0-29", got[19])

	con.Resume(p1)
	con.Assign(map[broker.TopicPartition]int64{p0: 28}) // seek back
	var rest []broker.Record
	for len(rest) < 7 {
		rest = append(rest, poll().Records...)
	}
	want := map[string]bool{"p0-28": true, "p0-29": true, "p1-25": true, "p1-26": true, "p1-27": true, "p1-28": true, "p1-29": true}
	for _, r := range rest {
		require.True(t, want[string(r.Value)], "unexpected %s", r.Value)
		delete(want, string(r.Value))
	}
	require.Empty(t, want)

	con.Unassign(p0, p1)
	p, err := con.Poll(ctx, 0)
	require.NoError(t, err)
	require.Empty(t, p.Records)
	require.Empty(t, p.Ends)

	// Out of range: above the latest offset, and below the earliest
	// after DeleteRecords; Poll reads none of the partitions then.
	for _, off := range []int64{31, -1} {
		con.Assign(map[broker.TopicPartition]int64{p0: off, p1: 0})
		_, err := con.Poll(ctx, time.Second)
		var oor *broker.OffsetOutOfRangeError
		require.ErrorAs(t, err, &oor, "offset %d", off)
		require.Equal(t, off, oor.Offset)
		require.Equal(t, broker.Offsets{Earliest: 0, Latest: 30}, oor.Offsets)
		con.Unassign(p0, p1)
	}
	require.NoError(t, b.DeleteRecords(ctx, "t", 0, 12))
	con.Assign(map[broker.TopicPartition]int64{p0: 5})
	_, err = con.Poll(ctx, time.Second)
	var oor *broker.OffsetOutOfRangeError
	require.ErrorAs(t, err, &oor)
	require.Equal(t, broker.Offsets{Earliest: 12, Latest: 30}, oor.Offsets)
	con.Assign(map[broker.TopicPartition]int64{p0: 12})
	require.Equal(t, "p0-12", string(poll().Records[0].Value))

	// Unknown topics and partitions are errors of Poll.
	con.Unassign(p0)
	con.Assign(map[broker.TopicPartition]int64{{Topic: "nope"}: 0})
	_, err = con.Poll(ctx, time.Second)
	require.ErrorIs(t, err, broker.ErrUnknownTopic)
	con.Unassign(broker.TopicPartition{Topic: "nope"})
	con.Assign(map[broker.TopicPartition]int64{{Topic: "t", Partition: 2}: 0})
	_, err = con.Poll(ctx, time.Second)
	require.ErrorIs(t, err, broker.ErrUnknownPartition)
}

// TestConsumerClose ends a waiting Poll with ErrClosed when the broker
// closes, and a canceled context ends it with its error.
func TestConsumerClose(t *testing.T) {
	b := newBroker(t, newCluster(t))
	ctx := t.Context()
	require.NoError(t, b.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: 1}))
	con, err := b.NewConsumer(broker.ConsumerOptions{})
	require.NoError(t, err)
	con.Assign(map[broker.TopicPartition]int64{{Topic: "t"}: 0})
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err = con.Poll(short, waitBound)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	done := make(chan error, 1)
	go func() {
		_, err := con.Poll(ctx, waitBound)
		done <- err
	}()
	require.NoError(t, b.Close())
	select {
	case err := <-done:
		require.ErrorIs(t, err, broker.ErrClosed)
	case <-time.After(waitBound):
		require.FailNow(t, "Close did not end the poll")
	}
	_, err = con.Poll(ctx, 0)
	require.ErrorIs(t, err, broker.ErrClosed)
	require.NoError(t, con.Close())
}

// TestEmptyKeyIsNotNilKey keeps an empty key apart from a nil key (and an
// empty value apart from a tombstone), produced and committed: codecs
// that encode "" rely on it, and Kafka's partitioner hashes an empty key.
func TestEmptyKeyIsNotNilKey(t *testing.T) {
	b := newBroker(t, newCluster(t))
	ctx := t.Context()
	require.NoError(t, b.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: 3}))
	in := []broker.Record{
		{Topic: "t", Partition: 0, Key: []byte{}, Value: []byte{}},
		{Topic: "t", Partition: 0, Key: nil, Value: nil},
		{Topic: "t", Partition: broker.PartitionByKey, Key: []byte{}, Value: []byte("by empty key")},
	}
	require.NoError(t, b.Produce(ctx, in))
	require.Equal(t, broker.KeyPartition([]byte{}, 3), in[2].Partition, "an empty key is hashed")
	cm, err := b.NewCommitter(ctx, "w")
	require.NoError(t, err)
	defer cm.Close()
	committed := []broker.Record{{Topic: "t", Partition: 1, Key: []byte{}, Value: []byte{}}, {Topic: "t", Partition: 1}}
	require.NoError(t, cm.Commit(ctx, broker.CommitRequest{Records: committed}))
	recs, err := broker.ReadAll(ctx, b, "t")
	require.NoError(t, err)
	var keys, vals []string
	for _, r := range recs {
		describe := func(b []byte) string {
			if b == nil {
				return "nil"
			}
			return fmt.Sprintf("%q", b)
		}
		if r.Value != nil && string(r.Value) == "by empty key" {
			continue
		}
		keys = append(keys, describe(r.Key))
		vals = append(vals, describe(r.Value))
	}
	require.Equal(t, []string{`""`, "nil", `""`, "nil"}, keys)
	require.Equal(t, []string{`""`, "nil", `""`, "nil"}, vals)
}

// TestConsumerFollowsLeader moves partition leaders between polls and
// commits: the consumer, the committer and the producer find the new
// leaders (NOT_LEADER_OR_FOLLOWER, then fresh metadata) and nothing is
// lost or read twice.
func TestConsumerFollowsLeader(t *testing.T) {
	c := newCluster(t)
	b := newBroker(t, c)
	ctx := t.Context()
	require.NoError(t, b.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: 2}))
	cm, err := b.NewCommitter(ctx, "w")
	require.NoError(t, err)
	defer cm.Close()
	con, err := b.NewConsumer(broker.ConsumerOptions{})
	require.NoError(t, err)
	defer con.Close()
	con.Assign(map[broker.TopicPartition]int64{{Topic: "t", Partition: 0}: 0, {Topic: "t", Partition: 1}: 0})
	var want, got []string
	for round := range 6 {
		v := fmt.Sprintf("r%d", round)
		if round%2 == 0 {
			require.NoError(t, b.Produce(ctx, []broker.Record{rec("t", int32(round%4/2), v)}))
		} else {
			require.NoError(t, cm.Commit(ctx, broker.CommitRequest{Records: []broker.Record{rec("t", 1, v)}}))
		}
		want = append(want, v)
		for len(got) < len(want) {
			p, err := con.Poll(ctx, waitBound)
			require.NoError(t, err)
			got = append(got, values(p.Records)...)
		}
		c.ShufflePartitionLeaders()
	}
	require.ElementsMatch(t, want, got)
	p, err := con.Poll(ctx, 0)
	require.NoError(t, err)
	require.Empty(t, p.Records, "nothing read twice")
}

// TestConsumerEndsOnlyWhenRead checks that Ends never reports a partition
// whose records are fetched but not yet returned: a partition found at its
// end by one Poll, then fetched again with new records while the
// MaxRecords of the next Polls are taken by another partition, is not at
// its end until those records are returned. (A reader that trusts Ends
// moves its position there and would skip them.)
func TestConsumerEndsOnlyWhenRead(t *testing.T) {
	c := newCluster(t)
	b := newBroker(t, c)
	ctx := t.Context()
	require.NoError(t, b.CreateTopic(ctx, "in", broker.TopicConfig{Partitions: 2}))
	con, err := b.NewConsumer(broker.ConsumerOptions{MaxRecords: 3})
	require.NoError(t, err)
	defer con.Close()
	tps := []broker.TopicPartition{{Topic: "in", Partition: 0}, {Topic: "in", Partition: 1}}
	con.Assign(map[broker.TopicPartition]int64{tps[0]: 0, tps[1]: 0})
	for p := range 1000 {
		polled, err := con.Poll(ctx, time.Second)
		require.NoError(t, err)
		if len(polled.Ends) == 2 {
			break
		}
		require.Less(t, p, 999, "both empty partitions at their end")
	}

	for round := range 3 {
		var recs []broker.Record
		for p := range int32(2) {
			for i := range 10 {
				recs = append(recs, broker.Record{Topic: "in", Partition: p, Value: fmt.Appendf(nil, "%d-%d-%d", round, p, i)})
			}
		}
		require.NoError(t, b.Produce(ctx, recs))
		want := map[broker.TopicPartition]int64{}
		for _, tp := range tps {
			offs, err := b.ListOffsets(ctx, tp.Topic, tp.Partition)
			require.NoError(t, err)
			want[tp] = offs.Latest
		}
		next := map[broker.TopicPartition]int64{}
		for _, tp := range tps {
			next[tp] = want[tp] - 10
		}
		deadline := time.Now().Add(waitBound)
		for next[tps[0]] < want[tps[0]] || next[tps[1]] < want[tps[1]] {
			require.True(t, time.Now().Before(deadline), "round %d: read %v of %v", round, next, want)
			polled, err := con.Poll(ctx, time.Second)
			require.NoError(t, err)
			for _, r := range polled.Records {
				tp := broker.TopicPartition{Topic: r.Topic, Partition: r.Partition}
				require.Equal(t, next[tp], r.Offset, "round %d: %s/%d", round, r.Topic, r.Partition)
				next[tp]++
			}
			for tp, end := range polled.Ends {
				// An end may be an earlier fetch's (the partition's
				// fetch with this round's records has not come back
				// yet): it is then where the reader is, never past it.
				require.LessOrEqual(t, end, want[tp], "round %d: end of %s/%d", round, tp.Topic, tp.Partition)
				require.Equal(t, end, next[tp], "round %d: %s/%d reported at its end %d with records before it not returned",
					round, tp.Topic, tp.Partition, end)
			}
		}
	}
}

// TestConsumerDecompressBound reads a compressed batch that expands past
// the bound on decompressed batches (kgo.MaxDecompressBatchBytes, here
// 64 KiB): Poll returns the records before it, then an error matching
// broker.ErrCorrupt that names the partition and the batch's offset;
// seeking past the batch reads on.
func TestConsumerDecompressBound(t *testing.T) {
	c := newCluster(t)
	b := newBroker(t, c, kafka.WithClientOptions(kgo.MaxDecompressBatchBytes(64<<10)))
	ctx := t.Context()
	require.NoError(t, b.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: 1}))
	p, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	require.NoError(t, err)
	defer p.Close()
	bomb := make([]byte, 256<<10) // zeros: a few hundred bytes compressed
	for _, v := range [][]byte{[]byte("a"), bomb, []byte("c")} {
		require.NoError(t, p.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: v}).FirstErr())
	}

	con, err := b.NewConsumer(broker.ConsumerOptions{})
	require.NoError(t, err)
	defer con.Close()
	tp := broker.TopicPartition{Topic: "t"}
	con.Assign(map[broker.TopicPartition]int64{tp: 0})
	var got []broker.Record
	for deadline := time.Now().Add(waitBound); ; {
		require.True(t, time.Now().Before(deadline), "no error for the batch past the bound")
		polled, err := con.Poll(ctx, time.Second)
		if err != nil {
			t.Log(err)
			require.ErrorIs(t, err, broker.ErrCorrupt)
			require.ErrorIs(t, err, kgo.ErrMaxDecompress)
			var te *broker.TopicError
			require.ErrorAs(t, err, &te)
			require.Equal(t, broker.TopicError{Topic: "t", Partition: 0}, broker.TopicError{Topic: te.Topic, Partition: te.Partition})
			require.Contains(t, err.Error(), "offset 1")
			break
		}
		require.NotContains(t, polled.Ends, tp, "the end reported before the batch at offset 1")
		got = append(got, polled.Records...)
	}
	require.Equal(t, []string{"a"}, values(got))

	con.Assign(map[broker.TopicPartition]int64{tp: 2})
	polled, err := con.Poll(ctx, waitBound)
	require.NoError(t, err)
	require.Equal(t, []string{"c"}, values(polled.Records))
}

// TestConsumerRecycle checks broker.Recycler: a Poll after Recycle fills
// the recycled slice again, with the right records, also from a later
// fetch, and the keys and values of recycled records stay as they were.
func TestConsumerRecycle(t *testing.T) {
	b := newBroker(t, newCluster(t))
	ctx := t.Context()
	require.NoError(t, b.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: 2}))
	keyed := func(p int32, vals ...string) []broker.Record {
		var out []broker.Record
		for _, v := range vals {
			out = append(out, broker.Record{Topic: "t", Partition: p, Key: []byte("k-" + v), Value: []byte(v)})
		}
		return out
	}
	require.NoError(t, b.Produce(ctx, keyed(0, "a", "b", "c", "d")))
	require.NoError(t, b.Produce(ctx, keyed(1, "e", "f")))
	c, err := b.NewConsumer(broker.ConsumerOptions{MaxRecords: 3})
	require.NoError(t, err)
	defer c.Close()
	rc, ok := c.(broker.Recycler)
	require.True(t, ok, "the Kafka consumer reuses records")
	c.Assign(map[broker.TopicPartition]int64{{Topic: "t", Partition: 0}: 0, {Topic: "t", Partition: 1}: 0})

	// The first Poll fetches both partitions and returns partition 0's
	// first three records.
	first, err := c.Poll(ctx, waitBound)
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b", "c"}, values(first.Records))
	keptKey, keptValue := first.Records[0].Key, first.Records[0].Value
	slot := &first.Records[0]
	rc.Recycle(first.Records)
	require.Zero(t, first.Records[0], "recycled records are cleared")

	// The rest of that fetch, in the recycled slice.
	polled, err := c.Poll(ctx, waitBound)
	require.NoError(t, err)
	require.Equal(t, []string{"d", "e", "f"}, values(polled.Records))
	require.Equal(t, []int32{0, 1, 1}, []int32{polled.Records[0].Partition, polled.Records[1].Partition, polled.Records[2].Partition})
	require.Same(t, slot, &polled.Records[0], "the recycled slice is filled again")
	rc.Recycle(polled.Records)

	// A later fetch's records, in it again.
	require.NoError(t, b.Produce(ctx, keyed(0, "g")))
	var got []broker.Record
	for deadline := time.Now().Add(waitBound); len(got) == 0; {
		require.True(t, time.Now().Before(deadline), "no record g")
		polled, err = c.Poll(ctx, time.Second)
		require.NoError(t, err)
		got = polled.Records
	}
	require.Equal(t, []string{"g"}, values(got))
	require.Equal(t, "k-g", string(got[0].Key))
	require.Same(t, slot, &got[0], "the recycled slice is filled again")

	require.Equal(t, "k-a", string(keptKey), "a key kept from a recycled record is unchanged")
	require.Equal(t, "a", string(keptValue), "a value kept from a recycled record is unchanged")
	rc.Recycle(nil) // nothing to do
	require.NoError(t, c.Close())
	rc.Recycle(got) // after Close: dropped
}
