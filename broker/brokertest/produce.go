package brokertest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
)

var produceCases = []testCase{
	{"Produce/RoundTrip", testRoundTrip},
	{"Produce/PartitionByKey", testPartitionByKey},
	{"Produce/UnknownPartition", testUnknownPartition},
	{"Produce/Concurrent", testConcurrentProducers},
	{"Fetch/FromMiddle", testFetchFromMiddle},
	{"Fetch/ManyPartitions", testFetchManyPartitions},
	{"Fetch/LongPoll", testFetchLongPoll},
	{"Fetch/NoWait", testFetchNoWait},
	{"Fetch/Canceled", testFetchCanceled},
	{"Fetch/OffsetOutOfRange", testOffsetOutOfRange},
	{"Fetch/MaxRecords", testMaxRecords},
	{"Fetch/MaxBytes", testMaxBytes},
	{"Offsets/ListOffsets", testListOffsets},
	{"Offsets/OffsetForTime", testOffsetForTime},
}

func testRoundTrip(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	createTopic(t, b, "t", 2)
	ts := time.UnixMilli(1_700_000_000_123)
	in := []broker.Record{
		{Topic: "t", Partition: 0, Key: []byte("k0"), Value: []byte("v0"), Timestamp: ts},
		{Topic: "t", Partition: 1, Key: []byte("k1"), Value: []byte("v1"), Timestamp: ts.Add(time.Millisecond),
			Headers: []broker.Header{{Key: "h", Value: []byte("x")}, {Key: "h", Value: []byte("second")}, {Key: "empty", Value: []byte{}}}},
		{Topic: "t", Partition: 0, Key: []byte("tomb"), Value: nil, Timestamp: ts.Add(2 * time.Millisecond)},
		{Topic: "t", Partition: 0, Key: []byte("empty"), Value: []byte{}, Timestamp: ts.Add(3 * time.Millisecond)},
		{Topic: "t", Partition: 1, Key: nil, Value: []byte("no key"), Timestamp: ts.Add(-time.Hour)},
		{Topic: "t", Partition: 0, Key: []byte{0, 0xff, 0}, Value: []byte{0xff, 0, 1}, Timestamp: ts.Add(4 * time.Millisecond)},
	}
	require.NoError(t, b.Produce(ctx, in))

	// Produce sets Partition and Offset in place: per partition, contiguous from 0 in call order.
	wantOffsets := []int64{0, 0, 1, 2, 1, 3}
	for i, r := range in {
		require.Equal(t, wantOffsets[i], r.Offset, "record %d offset", i)
	}
	want := map[int32][]broker.Record{}
	for _, r := range in {
		want[r.Partition] = append(want[r.Partition], r)
	}
	for p, recs := range want {
		got := fetchAll(t, b, "t", p, 0)
		require.Len(t, got, len(recs), "partition %d", p)
		for i := range recs {
			requireSameRecord(t, recs[i], got[i])
		}
	}

	// A zero timestamp becomes the broker's clock; sub-millisecond precision
	// is truncated; a second call continues the offsets.
	before := time.Now()
	more := produce(t, b,
		broker.Record{Topic: "t", Partition: 0, Key: []byte("now"), Value: []byte("now")},
		broker.Record{Topic: "t", Partition: 0, Key: []byte("sub"), Value: []byte("sub"), Timestamp: ts.Add(456 * time.Microsecond)},
	)
	after := time.Now()
	require.Equal(t, int64(4), more[0].Offset)
	require.Equal(t, int64(5), more[1].Offset)
	got := fetchAll(t, b, "t", 0, 4)
	require.Len(t, got, 2)
	require.False(t, got[0].Timestamp.IsZero(), "a zero timestamp is replaced")
	require.WithinRange(t, got[0].Timestamp, before.Add(-time.Second), after.Add(time.Second))
	require.True(t, ts.Equal(got[1].Timestamp), "timestamp %v, want %v (millisecond precision)", got[1].Timestamp, ts)

	// Fetched records are the caller's: changing them does not change the log.
	got[1].Value[0] = 'X'
	again := fetchAll(t, b, "t", 0, 5)
	require.Equal(t, "sub", string(again[0].Value))

	// So are produced ones once Produce returns: reusing their buffers does
	// not change what was stored.
	key, value, hval := []byte("reused-k"), []byte("reused-v"), []byte("reused-h")
	produce(t, b, broker.Record{Topic: "t", Partition: 1, Key: key, Value: value, Headers: []broker.Header{{Key: "h", Value: hval}}})
	copy(key, "XXXXXXXX")
	copy(value, "XXXXXXXX")
	copy(hval, "XXXXXXXX")
	last := fetchAll(t, b, "t", 1, 2)
	require.Len(t, last, 1)
	require.Equal(t, "reused-k", string(last[0].Key))
	require.Equal(t, "reused-v", string(last[0].Value))
	require.Equal(t, "reused-h", string(last[0].Headers[0].Value))
}

func testPartitionByKey(t *testing.T, b broker.Broker) {
	const n = 5
	createTopic(t, b, "t", n)
	var in []broker.Record
	for i := range 60 {
		in = append(in, rec("t", broker.PartitionByKey, fmt.Sprintf("key-%d", i), fmt.Sprintf("v%d", i)))
	}
	in = append(in, broker.Record{Topic: "t", Partition: broker.PartitionByKey, Value: []byte("nil key")})
	produce(t, b, in...)

	want := map[int32][]string{}
	for _, r := range in[:60] {
		require.Equal(t, broker.KeyPartition(r.Key, n), r.Partition, "key %q", r.Key)
		want[r.Partition] = append(want[r.Partition], string(r.Value))
	}
	nilKey := in[60]
	require.GreaterOrEqual(t, nilKey.Partition, int32(0), "a nil key goes to some partition")
	require.Less(t, nilKey.Partition, int32(n))
	want[nilKey.Partition] = append(want[nilKey.Partition], "nil key")
	for p := range int32(n) {
		require.Equal(t, want[p], values(fetchAll(t, b, "t", p, 0)), "partition %d", p)
	}
}

func testUnknownPartition(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	createTopic(t, b, "t", 3)
	for _, p := range []int32{3, 100, -2} {
		err := b.Produce(ctx, []broker.Record{rec("t", 0, "ok", "ok"), rec("t", p, "k", "v")})
		require.ErrorIs(t, err, broker.ErrUnknownPartition, "produce to partition %d", p)
		_, err = fetch(ctx, b, []broker.FetchRequest{{Topic: "t", Partition: p}}, broker.FetchOptions{})
		require.ErrorIs(t, err, broker.ErrUnknownPartition, "fetch partition %d", p)
		_, err = b.ListOffsets(ctx, "t", p)
		require.ErrorIs(t, err, broker.ErrUnknownPartition, "list offsets of partition %d", p)
		_, err = b.OffsetForTime(ctx, "t", p, time.UnixMilli(0))
		require.ErrorIs(t, err, broker.ErrUnknownPartition, "offset for time of partition %d", p)
		err = commit(ctx, b, broker.CommitRequest{Records: []broker.Record{rec("t", p, "k", "v")}})
		require.ErrorIs(t, err, broker.ErrUnknownPartition, "commit to partition %d", p)
	}
	offs, err := b.ListOffsets(ctx, "t", 0)
	require.NoError(t, err)
	require.Equal(t, broker.Offsets{}, offs, "a refused produce writes none of its records")
}

func testConcurrentProducers(t *testing.T, b broker.Broker) {
	const producers, calls, perCall = 4, 50, 10
	createTopic(t, b, "t", 1)
	var wg sync.WaitGroup
	errs := make(chan error, producers)
	for g := range producers {
		wg.Go(func() {
			for c := range calls {
				recs := make([]broker.Record, perCall)
				for r := range recs {
					recs[r] = rec("t", 0, "", fmt.Sprintf("g%d-c%d-r%d", g, c, r))
				}
				if err := b.Produce(t.Context(), recs); err != nil {
					errs <- fmt.Errorf("producer %d call %d: %w", g, c, err)
					return
				}
				for r := 1; r < perCall; r++ {
					if recs[r].Offset != recs[0].Offset+int64(r) {
						errs <- fmt.Errorf("producer %d call %d: offsets %d and %d of one call are not contiguous",
							g, c, recs[0].Offset, recs[r].Offset)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	got := fetchAll(t, b, "t", 0, 0)
	require.Len(t, got, producers*calls*perCall)
	seen := map[string]bool{}
	for i := 0; i < len(got); i += perCall {
		var g, c, r int
		_, err := fmt.Sscanf(string(got[i].Value), "g%d-c%d-r%d", &g, &c, &r)
		require.NoError(t, err)
		require.Equal(t, 0, r, "offset %d starts a call's batch", got[i].Offset)
		for r := range perCall {
			v := string(got[i+r].Value)
			require.Equal(t, fmt.Sprintf("g%d-c%d-r%d", g, c, r), v, "one call's records are contiguous")
			require.False(t, seen[v], "duplicate %s", v)
			seen[v] = true
		}
	}
	require.Len(t, seen, producers*calls*perCall)
}

func testFetchFromMiddle(t *testing.T, b broker.Broker) {
	createTopic(t, b, "t", 1)
	produceValues(t, b, "t", 0, seq("a", 10)...)
	produceValues(t, b, "t", 0, seq("b", 10)...)
	for _, from := range []int64{0, 1, 7, 10, 13, 19} {
		got := fetchAll(t, b, "t", 0, from)
		want := append(seq("a", 10), seq("b", 10)...)[from:]
		require.Equal(t, want, values(got), "from %d", from)
	}
}

func testFetchManyPartitions(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	createTopic(t, b, "a", 2)
	createTopic(t, b, "b", 1)
	produceValues(t, b, "a", 0, "a0-0", "a0-1", "a0-2")
	produceValues(t, b, "a", 1, "a1-0")
	produceValues(t, b, "b", 0, "b0-0", "b0-1")
	got, err := fetch(ctx, b, []broker.FetchRequest{
		{Topic: "a", Partition: 0, Offset: 1},
		{Topic: "a", Partition: 1, Offset: 1}, // at latest: nothing, but valid
		{Topic: "b", Partition: 0, Offset: 0},
	}, broker.FetchOptions{})
	require.NoError(t, err)
	byTP := map[broker.TopicPartition][]string{}
	for _, r := range got {
		tp := broker.TopicPartition{Topic: r.Topic, Partition: r.Partition}
		byTP[tp] = append(byTP[tp], string(r.Value))
	}
	require.Equal(t, map[broker.TopicPartition][]string{
		{Topic: "a", Partition: 0}: {"a0-1", "a0-2"},
		{Topic: "b", Partition: 0}: {"b0-0", "b0-1"},
	}, byTP)
}

// fetchResult is what a Fetch run in a goroutine returned.
type fetchResult struct {
	recs    []broker.Record
	err     error
	elapsed time.Duration
}

// goFetch runs Fetch in a goroutine; it closes started just before calling
// Fetch and delivers the result on the returned channel.
func goFetch(ctx context.Context, b broker.Broker, reqs []broker.FetchRequest, opts broker.FetchOptions) (started <-chan struct{}, result <-chan fetchResult) {
	s := make(chan struct{})
	res := make(chan fetchResult, 1)
	go func() {
		close(s)
		start := time.Now()
		recs, err := fetch(ctx, b, reqs, opts)
		res <- fetchResult{recs, err, time.Since(start)}
	}()
	return s, res
}

// awaitFetch waits for a goFetch result, failing after waitBound.
func awaitFetch(t *testing.T, res <-chan fetchResult) fetchResult {
	t.Helper()
	select {
	case r := <-res:
		return r
	case <-time.After(waitBound):
		require.FailNow(t, "fetch did not return", "waited %v", waitBound)
	}
	panic("unreachable")
}

func testFetchLongPoll(t *testing.T, b broker.Broker) {
	createTopic(t, b, "t", 2)
	produceValues(t, b, "t", 1, "x", "y")
	// Wait at the latest offsets of both partitions; a produce to either wakes the fetch.
	started, res := goFetch(t.Context(), b, []broker.FetchRequest{
		{Topic: "t", Partition: 0, Offset: 0},
		{Topic: "t", Partition: 1, Offset: 2},
	}, broker.FetchOptions{MaxWait: waitBound})
	<-started
	produceValues(t, b, "t", 1, "woken")
	r := awaitFetch(t, res)
	require.NoError(t, r.err)
	require.Less(t, r.elapsed, waitBound, "the produce, not MaxWait, ended the fetch")
	require.Len(t, r.recs, 1)
	require.Equal(t, "woken", string(r.recs[0].Value))
	require.Equal(t, int64(2), r.recs[0].Offset)
	require.Equal(t, int32(1), r.recs[0].Partition)
}

func testFetchNoWait(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	createTopic(t, b, "t", 1)
	req := []broker.FetchRequest{{Topic: "t", Partition: 0, Offset: 0}}

	start := time.Now()
	got, err := fetch(ctx, b, req, broker.FetchOptions{MaxWait: 0})
	require.NoError(t, err)
	require.Empty(t, got)
	require.Less(t, time.Since(start), 2*time.Second, "MaxWait 0 returns at once")

	// A short MaxWait with nothing arriving returns empty, without error.
	got, err = fetch(ctx, b, req, broker.FetchOptions{MaxWait: 50 * time.Millisecond})
	require.NoError(t, err)
	require.Empty(t, got)

	produceValues(t, b, "t", 0, "v")
	req[0].Offset = 1
	got, err = fetch(ctx, b, req, broker.FetchOptions{})
	require.NoError(t, err)
	require.Empty(t, got, "at latest after a produce")
}

func testFetchCanceled(t *testing.T, b broker.Broker) {
	createTopic(t, b, "t", 1)
	req := []broker.FetchRequest{{Topic: "t", Partition: 0, Offset: 0}}

	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := fetch(canceled, b, req, broker.FetchOptions{MaxWait: waitBound})
	require.ErrorIs(t, err, context.Canceled, "a canceled context ends a fetch")

	ctx, cancel := context.WithCancel(t.Context())
	started, res := goFetch(ctx, b, req, broker.FetchOptions{MaxWait: waitBound})
	<-started
	cancel()
	r := awaitFetch(t, res)
	require.ErrorIs(t, r.err, context.Canceled, "canceling ends a waiting fetch")

	ctx, cancel = context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	_, err = fetch(ctx, b, req, broker.FetchOptions{MaxWait: waitBound})
	require.ErrorIs(t, err, context.DeadlineExceeded, "a context deadline before MaxWait ends the fetch")
}

func testOffsetOutOfRange(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	createTopic(t, b, "t", 2)
	produceValues(t, b, "t", 1, seq("v", 5)...)
	for _, off := range []int64{6, 1000, -1} {
		_, err := fetch(ctx, b, []broker.FetchRequest{{Topic: "t", Partition: 1, Offset: off}}, broker.FetchOptions{})
		var oor *broker.OffsetOutOfRangeError
		require.ErrorAs(t, err, &oor, "offset %d", off)
		require.Equal(t, "t", oor.Topic)
		require.Equal(t, int32(1), oor.Partition)
		require.Equal(t, off, oor.Offset)
		require.Equal(t, broker.Offsets{Earliest: 0, Latest: 5}, oor.Offsets)
		require.False(t, broker.IsRetryable(err))
	}
	_, err := fetch(ctx, b, []broker.FetchRequest{{Topic: "t", Partition: 0, Offset: 1}}, broker.FetchOptions{})
	var oor *broker.OffsetOutOfRangeError
	require.ErrorAs(t, err, &oor, "offset 1 of an empty partition")
	require.Equal(t, broker.Offsets{}, oor.Offsets)

	// The latest offset itself is valid and empty.
	got, err := fetch(ctx, b, []broker.FetchRequest{{Topic: "t", Partition: 1, Offset: 5}}, broker.FetchOptions{})
	require.NoError(t, err)
	require.Empty(t, got)
}

func testMaxRecords(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	createTopic(t, b, "single", 1)
	createTopic(t, b, "batch", 1)
	// One record per call: a broker's internal batch holds at most one
	// call's records, so MaxRecords is exact here.
	for i := range 30 {
		produceValues(t, b, "single", 0, fmt.Sprintf("s%d", i))
	}
	got, err := fetch(ctx, b, []broker.FetchRequest{{Topic: "single"}}, broker.FetchOptions{MaxRecords: 10})
	require.NoError(t, err)
	require.NotEmpty(t, got)
	require.LessOrEqual(t, len(got), 10)
	var all []string
	for next := int64(0); next < 30; {
		got, err := fetch(ctx, b, []broker.FetchRequest{{Topic: "single", Offset: next}}, broker.FetchOptions{MaxRecords: 7})
		require.NoError(t, err)
		require.NotEmpty(t, got)
		require.LessOrEqual(t, len(got), 7)
		for _, r := range got {
			require.Equal(t, next, r.Offset)
			next++
			all = append(all, string(r.Value))
		}
	}
	require.Equal(t, seq("s", 30), all)

	// One call of 40 records: the broker may exceed MaxRecords by less than
	// that batch, and must return at least one record.
	produceValues(t, b, "batch", 0, seq("b", 40)...)
	got, err = fetch(ctx, b, []broker.FetchRequest{{Topic: "batch"}}, broker.FetchOptions{MaxRecords: 5})
	require.NoError(t, err)
	require.NotEmpty(t, got)
	require.Less(t, len(got), 5+40)

	// Over several partitions MaxRecords bounds the total.
	got, err = fetch(ctx, b, []broker.FetchRequest{{Topic: "single"}, {Topic: "batch", Offset: 39}}, broker.FetchOptions{MaxRecords: 3})
	require.NoError(t, err)
	require.NotEmpty(t, got)
	require.LessOrEqual(t, len(got), 3)
}

func testMaxBytes(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	createTopic(t, b, "t", 1)
	for i := range 5 {
		produceValues(t, b, "t", 0, fmt.Sprintf("value-%d-%s", i, make([]byte, 100)))
	}
	got, err := fetch(ctx, b, []broker.FetchRequest{{Topic: "t", Offset: 2}}, broker.FetchOptions{MaxBytes: 1})
	require.NoError(t, err)
	require.NotEmpty(t, got, "at least one record is returned when any is available")
	require.Less(t, len(got), 5-2, "MaxBytes bounds the response")
	require.Equal(t, int64(2), got[0].Offset)
}

func testListOffsets(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	createTopic(t, b, "t", 3)
	for p := range int32(3) {
		offs, err := b.ListOffsets(ctx, "t", p)
		require.NoError(t, err)
		require.Equal(t, broker.Offsets{}, offs, "empty partition %d", p)
	}
	produceValues(t, b, "t", 1, "a", "b", "c")
	produceValues(t, b, "t", 2, "d")
	produceValues(t, b, "t", 1, "e")
	for p, want := range []broker.Offsets{{Latest: 0}, {Latest: 4}, {Latest: 1}} {
		offs, err := b.ListOffsets(ctx, "t", int32(p))
		require.NoError(t, err)
		require.Equal(t, want, offs, "partition %d", p)
	}
}

func testOffsetForTime(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	createTopic(t, b, "t", 2)
	base := time.UnixMilli(1_700_000_000_000)
	var in []broker.Record
	for i, ms := range []int{0, 10, 20, 20, 30} {
		r := rec("t", 0, "k", fmt.Sprintf("v%d", i))
		r.Timestamp = base.Add(time.Duration(ms) * time.Millisecond)
		in = append(in, r)
	}
	produce(t, b, in[:2]...)
	produce(t, b, in[2:]...)
	for _, tc := range []struct {
		ms   int
		want int64
	}{
		{-1000, 0}, {0, 0}, {1, 1}, {10, 1}, {15, 2}, {20, 2}, {25, 4}, {30, 4}, {31, 5}, {100000, 5},
	} {
		got, err := b.OffsetForTime(ctx, "t", 0, base.Add(time.Duration(tc.ms)*time.Millisecond))
		require.NoError(t, err)
		require.Equal(t, tc.want, got, "base%+dms", tc.ms)
	}
	got, err := b.OffsetForTime(ctx, "t", 1, base)
	require.NoError(t, err)
	require.Equal(t, int64(0), got, "empty partition: the latest offset")
}
