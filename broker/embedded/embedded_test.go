package embedded

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
)

// open opens a broker in a fresh temporary directory, closed at the end of
// the test.
func open(t testing.TB, opts ...Option) *Broker {
	t.Helper()
	b, err := Open(t.TempDir(), opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func values(recs []broker.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		if r.Value == nil {
			out[i] = "<nil>"
		} else {
			out[i] = string(r.Value)
		}
	}
	return out
}

func offsets(recs []broker.Record) []int64 {
	out := make([]int64, len(recs))
	for i, r := range recs {
		out[i] = r.Offset
	}
	return out
}

// fetchAll returns every record of a partition from offset on.
func fetchAll(t *testing.T, b *Broker, topic string, p int32, offset int64) []broker.Record {
	t.Helper()
	var out []broker.Record
	for {
		recs, err := b.Fetch(t.Context(), []broker.FetchRequest{{Topic: topic, Partition: p, Offset: offset}}, broker.FetchOptions{})
		require.NoError(t, err)
		if len(recs) == 0 {
			return out
		}
		out = append(out, recs...)
		offset = recs[len(recs)-1].Offset + 1
	}
}

func produce(t *testing.T, b *Broker, topic string, p int32, vals ...string) {
	t.Helper()
	recs := make([]broker.Record, len(vals))
	for i, v := range vals {
		recs[i] = broker.Record{Topic: topic, Partition: p, Key: []byte("k"), Value: []byte(v)}
	}
	require.NoError(t, b.Produce(t.Context(), recs))
}

func TestOptionsValidate(t *testing.T) {
	_, err := Open(t.TempDir(), WithSyncInterval(-1), WithMaxRecordBytes(0), WithFS(nil), WithClock(nil), WithLogger(nil), WithPebbleOptions(nil))
	require.ErrorIs(t, err, broker.ErrInvalidConfig)
	for _, want := range []string{"sync interval", "max record bytes", "file system", "clock", "logger", "pebble options"} {
		require.Contains(t, err.Error(), want)
	}
	_, err = Open("")
	require.ErrorIs(t, err, broker.ErrInvalidConfig)
}

func TestReopenKeepsEverything(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	b, err := Open(dir)
	require.NoError(t, err)
	require.NoError(t, b.CreateTopic(ctx, "a", broker.TopicConfig{Partitions: 2, Cleanup: broker.CleanupCompact}))
	require.NoError(t, b.CreateTopic(ctx, "gone", broker.TopicConfig{Partitions: 1}))
	produce(t, b, "a", 0, "x0", "x1")
	produce(t, b, "a", 1, "y0")
	produce(t, b, "gone", 0, "old")
	require.NoError(t, b.DeleteTopic(ctx, "gone"))
	tp := broker.TopicPartition{Topic: "a", Partition: 1}
	require.NoError(t, b.CommitOffsets(ctx, "g", map[broker.TopicPartition]int64{tp: 1}))
	require.NoError(t, b.Close())
	require.ErrorIs(t, b.Close(), nil, "Close is idempotent")

	b, err = Open(dir)
	require.NoError(t, err)
	defer b.Close()
	topics, err := b.ListTopics(ctx)
	require.NoError(t, err)
	require.Len(t, topics, 1)
	require.Equal(t, broker.TopicInfo{Name: "a", Config: broker.TopicConfig{Partitions: 2, Cleanup: broker.CleanupCompact,
		RetentionTime: broker.DefaultRetentionTime, DeleteRetention: broker.DefaultDeleteRetention}}, topics[0])
	require.Equal(t, []string{"x0", "x1"}, values(fetchAll(t, b, "a", 0, 0)))
	require.Equal(t, []string{"y0"}, values(fetchAll(t, b, "a", 1, 0)))
	got, err := b.FetchOffsets(ctx, "g", []broker.TopicPartition{tp})
	require.NoError(t, err)
	require.Equal(t, map[broker.TopicPartition]int64{tp: 1}, got)

	// Appends continue at the stored next offset; a recreated topic is empty.
	produce(t, b, "a", 0, "x2")
	require.Equal(t, []int64{0, 1, 2}, offsets(fetchAll(t, b, "a", 0, 0)))
	require.NoError(t, b.CreateTopic(ctx, "gone", broker.TopicConfig{Partitions: 1}))
	require.Empty(t, fetchAll(t, b, "gone", 0, 0))
	require.Equal(t, uint64(3), b.mu.topics["gone"].id, "topic ids are never reused")
}

// TestConcurrentProducers checks offsets under concurrent producers: every
// partition holds offsets 0..n-1 exactly once, each call's records of one
// partition are contiguous, and in-place offsets match what Fetch returns.
func TestConcurrentProducers(t *testing.T) {
	for _, mode := range []struct {
		name string
		opts []Option
	}{{"sync", nil}, {"interval", []Option{WithSyncInterval(5 * time.Millisecond)}}} {
		t.Run(mode.name, func(t *testing.T) {
			ctx := t.Context()
			b := open(t, mode.opts...)
			require.NoError(t, b.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: 3}))
			const producers, calls, perCall = 4, 30, 7
			var wg sync.WaitGroup
			got := make([][]broker.Record, producers)
			for w := range producers {
				wg.Go(func() {
					for c := range calls {
						recs := make([]broker.Record, perCall)
						for i := range recs {
							recs[i] = broker.Record{Topic: "t", Partition: int32((c + i) % 3), Value: fmt.Appendf(nil, "%d/%d/%d", w, c, i)}
						}
						if err := b.Produce(ctx, recs); err != nil {
							t.Error(err)
							return
						}
						// Per partition, one call's records are contiguous.
						last := map[int32]int64{}
						for _, r := range recs {
							if prev, ok := last[r.Partition]; ok && r.Offset != prev+1 {
								t.Errorf("call %d/%d: offset %d after %d", w, c, r.Offset, prev)
							}
							last[r.Partition] = r.Offset
						}
						got[w] = append(got[w], recs...)
					}
				})
			}
			wg.Wait()
			total := 0
			for p := range int32(3) {
				recs := fetchAll(t, b, "t", p, 0)
				for i, r := range recs {
					require.Equal(t, int64(i), r.Offset, "partition %d", p)
				}
				total += len(recs)
				offs, err := b.ListOffsets(ctx, "t", p)
				require.NoError(t, err)
				require.Equal(t, broker.Offsets{Earliest: 0, Latest: int64(len(recs))}, offs)
			}
			require.Equal(t, producers*calls*perCall, total)
			// The in-place offsets name the stored records.
			byPos := map[string]string{}
			for p := range int32(3) {
				for _, r := range fetchAll(t, b, "t", p, 0) {
					byPos[fmt.Sprintf("%d@%d", p, r.Offset)] = string(r.Value)
				}
			}
			for _, recs := range got {
				for _, r := range recs {
					require.Equal(t, string(r.Value), byPos[fmt.Sprintf("%d@%d", r.Partition, r.Offset)])
				}
			}
		})
	}
}

func TestLongPollWakeUp(t *testing.T) {
	ctx := t.Context()
	b := open(t)
	require.NoError(t, b.CreateTopic(ctx, "a", broker.TopicConfig{Partitions: 2}))
	require.NoError(t, b.CreateTopic(ctx, "b", broker.TopicConfig{Partitions: 1}))
	for _, reqs := range [][]broker.FetchRequest{
		{{Topic: "a", Partition: 1}}, // one channel: plain select
		{{Topic: "a", Partition: 0}, {Topic: "b"}, {Topic: "a", Partition: 1}}, // several: reflect.Select
	} {
		offs, err := b.ListOffsets(ctx, "a", 1)
		require.NoError(t, err)
		for i := range reqs {
			o, err := b.ListOffsets(ctx, reqs[i].Topic, reqs[i].Partition)
			require.NoError(t, err)
			reqs[i].Offset = o.Latest
		}
		type result struct {
			recs []broker.Record
			err  error
		}
		res := make(chan result, 1)
		go func() {
			recs, err := b.Fetch(ctx, reqs, broker.FetchOptions{MaxWait: time.Minute})
			res <- result{recs, err}
		}()
		// Whether the fetch is already waiting or not, the record is
		// returned: it either sees it at once or is woken by it.
		produce(t, b, "a", 1, "wake")
		r := <-res
		require.NoError(t, r.err)
		require.Equal(t, []string{"wake"}, values(r.recs))
		require.Equal(t, offs.Latest, r.recs[0].Offset)
	}

	// MaxWait passing returns nothing and no error.
	recs, err := b.Fetch(ctx, []broker.FetchRequest{{Topic: "b", Offset: 0}}, broker.FetchOptions{MaxWait: time.Millisecond})
	require.NoError(t, err)
	require.Empty(t, recs)

	// Deleting the topic wakes a waiting fetch with ErrUnknownTopic.
	started := make(chan struct{})
	res := make(chan error, 1)
	go func() {
		close(started)
		_, err := b.Fetch(ctx, []broker.FetchRequest{{Topic: "b", Offset: 0}}, broker.FetchOptions{MaxWait: time.Minute})
		res <- err
	}()
	<-started
	require.NoError(t, b.DeleteTopic(ctx, "b"))
	require.ErrorIs(t, <-res, broker.ErrUnknownTopic)
}

func TestFetchLimits(t *testing.T) {
	ctx := t.Context()
	b := open(t)
	require.NoError(t, b.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: 2}))
	produce(t, b, "t", 0, "aaaa", "bbbb", "cccc")
	produce(t, b, "t", 0, "dddd", "eeee")
	produce(t, b, "t", 1, "ffff")
	req := []broker.FetchRequest{{Topic: "t", Partition: 0, Offset: 1}, {Topic: "t", Partition: 1}}

	// The limits are shared fairly: each partition gets its share first,
	// the rest goes in request order; each partition's records stay
	// together.
	recs, err := b.Fetch(ctx, req, broker.FetchOptions{MaxRecords: 3})
	require.NoError(t, err)
	require.Equal(t, []string{"bbbb", "cccc", "ffff"}, values(recs))
	// key "k" + 4 bytes value = 5 bytes per record.
	recs, err = b.Fetch(ctx, req, broker.FetchOptions{MaxBytes: 11})
	require.NoError(t, err)
	require.Equal(t, []string{"bbbb", "ffff"}, values(recs))
	recs, err = b.Fetch(ctx, req[:1], broker.FetchOptions{MaxBytes: 11})
	require.NoError(t, err)
	require.Equal(t, []string{"bbbb", "cccc"}, values(recs), "one partition has the whole budget")
	recs, err = b.Fetch(ctx, req, broker.FetchOptions{MaxBytes: 1})
	require.NoError(t, err)
	require.Equal(t, []string{"bbbb"}, values(recs), "at least one record")
	recs, err = b.Fetch(ctx, req, broker.FetchOptions{})
	require.NoError(t, err)
	require.Equal(t, []string{"bbbb", "cccc", "dddd", "eeee", "ffff"}, values(recs))
	require.Equal(t, int32(1), recs[4].Partition)
	require.Equal(t, "t", recs[4].Topic)

	// Returned records own their bytes.
	recs[0].Value[0] = 'X'
	recs[0].Key = append(recs[0].Key, "more"...)
	again, err := b.Fetch(ctx, req[:1], broker.FetchOptions{})
	require.NoError(t, err)
	require.Equal(t, "bbbb", string(again[0].Value))
	require.Equal(t, "cccc", string(recs[1].Value))

	_, err = b.Fetch(ctx, []broker.FetchRequest{{Topic: "t", Offset: 6}}, broker.FetchOptions{})
	var oor *broker.OffsetOutOfRangeError
	require.ErrorAs(t, err, &oor)
	require.Equal(t, broker.Offsets{Earliest: 0, Latest: 5}, oor.Offsets)
}

func TestOffsetForTime(t *testing.T) {
	ctx := t.Context()
	b := open(t)
	require.NoError(t, b.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: 1}))
	base := time.UnixMilli(1_000_000)
	var recs []broker.Record
	for i, sec := range []int{10, 30, 20, 40} {
		recs = append(recs, broker.Record{Topic: "t", Value: []byte{byte(i)}, Timestamp: base.Add(time.Duration(sec) * time.Second)})
	}
	require.NoError(t, b.Produce(ctx, recs[:2]))
	require.NoError(t, b.Produce(ctx, recs[2:]))
	for _, tc := range []struct {
		sec  int
		want int64
	}{{0, 0}, {10, 0}, {11, 1}, {25, 1}, {31, 3}, {40, 3}, {41, 4}} {
		off, err := b.OffsetForTime(ctx, "t", 0, base.Add(time.Duration(tc.sec)*time.Second))
		require.NoError(t, err)
		require.Equal(t, tc.want, off, "at %ds", tc.sec)
	}
}

// clock is a settable clock for WithClock.
type clock struct{ now atomic.Int64 }

func (c *clock) Now() time.Time          { return time.UnixMilli(c.now.Load()) }
func (c *clock) Advance(d time.Duration) { c.now.Add(d.Milliseconds()) }

func TestRetention(t *testing.T) {
	ctx := t.Context()
	clk := &clock{}
	clk.now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli())
	b := open(t, WithClock(clk.Now), WithCleanupInterval(-1))
	require.NoError(t, b.CreateTopic(ctx, "time", broker.TopicConfig{Partitions: 1, RetentionTime: time.Hour}))
	require.NoError(t, b.CreateTopic(ctx, "size", broker.TopicConfig{Partitions: 1, RetentionBytes: 200, RetentionTime: -1}))
	require.NoError(t, b.CreateTopic(ctx, "keep", broker.TopicConfig{Partitions: 1, RetentionTime: -1}))

	for i := range 3 { // three batches, 40 minutes apart
		produce(t, b, "time", 0, fmt.Sprintf("t%d-a", i), fmt.Sprintf("t%d-b", i))
		produce(t, b, "keep", 0, fmt.Sprintf("k%d", i))
		clk.Advance(40 * time.Minute)
	}
	big := strings.Repeat("x", 50)
	for range 5 {
		produce(t, b, "size", 0, big) // 93 bytes per batch
	}
	require.NoError(t, b.Cleanup(ctx))

	// Now 120 min: batches written at 0 and 40 min are over an hour old.
	offs, err := b.ListOffsets(ctx, "time", 0)
	require.NoError(t, err)
	require.Equal(t, broker.Offsets{Earliest: 4, Latest: 6}, offs)
	require.Equal(t, []string{"t2-a", "t2-b"}, values(fetchAll(t, b, "time", 0, 4)))
	_, err = b.Fetch(ctx, []broker.FetchRequest{{Topic: "time", Offset: 3}}, broker.FetchOptions{})
	var oor *broker.OffsetOutOfRangeError
	require.ErrorAs(t, err, &oor)

	offs, err = b.ListOffsets(ctx, "size", 0)
	require.NoError(t, err)
	require.Equal(t, int64(5), offs.Latest)
	require.Equal(t, int64(3), offs.Earliest, "only two 93-byte batches fit in 200 bytes")
	require.LessOrEqual(t, b.mu.topics["size"].parts[0].state.bytes, int64(200))

	require.Len(t, fetchAll(t, b, "keep", 0, 0), 3, "negative RetentionTime keeps forever")

	// Everything expires: the log is empty but offsets go on.
	clk.Advance(2 * time.Hour)
	require.NoError(t, b.Cleanup(ctx))
	offs, err = b.ListOffsets(ctx, "time", 0)
	require.NoError(t, err)
	require.Equal(t, broker.Offsets{Earliest: 6, Latest: 6}, offs)
	produce(t, b, "time", 0, "after")
	require.Equal(t, []int64{6}, offsets(fetchAll(t, b, "time", 0, 6)))
}

func TestCompaction(t *testing.T) {
	ctx := t.Context()
	clk := &clock{}
	clk.now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli())
	dir := t.TempDir()
	b, err := Open(dir, WithClock(clk.Now), WithCleanupInterval(-1))
	require.NoError(t, err)
	defer func() { _ = b.Close() }()
	require.NoError(t, b.CreateTopic(ctx, "c", broker.TopicConfig{Partitions: 1, Cleanup: broker.CleanupCompact, DeleteRetention: time.Hour}))
	kv := func(k, v string) broker.Record {
		r := broker.Record{Topic: "c", Key: []byte(k), Value: []byte(v)}
		if v == "<nil>" {
			r.Value = nil
		}
		return r
	}
	require.NoError(t, b.Produce(ctx, []broker.Record{kv("a", "a0"), kv("b", "b0"), kv("c", "c0")}))            // 0-2
	require.NoError(t, b.Produce(ctx, []broker.Record{kv("a", "a1"), kv("d", "d0")}))                           // 3-4
	require.NoError(t, b.Produce(ctx, []broker.Record{kv("b", "<nil>"), {Topic: "c", Value: []byte("nokey")}})) // 5-6
	require.NoError(t, b.Cleanup(ctx))

	recs := fetchAll(t, b, "c", 0, 2)
	require.Equal(t, []int64{2, 3, 4, 5, 6}, offsets(recs))
	require.Equal(t, []string{"c0", "a1", "d0", "<nil>", "nokey"}, values(recs))
	offs, err := b.ListOffsets(ctx, "c", 0)
	require.NoError(t, err)
	require.Equal(t, broker.Offsets{Earliest: 2, Latest: 7}, offs)
	// A fetch inside a gap starts at the next record.
	require.Equal(t, []int64{5, 6}, offsets(fetchAll(t, b, "c", 0, 5)))
	require.NoError(t, b.Produce(ctx, []broker.Record{kv("c", "c1")})) // 7
	recs = fetchAll(t, b, "c", 0, 3)
	require.Equal(t, []int64{3, 4, 5, 6, 7}, offsets(recs))

	// The tombstone outlives DeleteRetention by its timestamp, then goes.
	clk.Advance(2 * time.Hour)
	require.NoError(t, b.Cleanup(ctx))
	recs = fetchAll(t, b, "c", 0, 3)
	require.Equal(t, []int64{3, 4, 6, 7}, offsets(recs))
	require.Equal(t, []string{"a1", "d0", "nokey", "c1"}, values(recs))

	// Compaction is durable and idempotent.
	require.NoError(t, b.Close())
	b, err = Open(dir, WithClock(clk.Now), WithCleanupInterval(-1))
	require.NoError(t, err)
	require.NoError(t, b.Cleanup(ctx))
	require.Equal(t, []int64{3, 4, 6, 7}, offsets(fetchAll(t, b, "c", 0, 3)))
	offs, err = b.ListOffsets(ctx, "c", 0)
	require.NoError(t, err)
	require.Equal(t, broker.Offsets{Earliest: 3, Latest: 8}, offs)
}

// TestCleanupRacesAppends runs compaction while producers append to the
// same partition: no append is lost and the newest value of every key
// survives.
func TestCleanupRacesAppends(t *testing.T) {
	ctx := t.Context()
	b := open(t, WithCleanupInterval(-1), WithSyncInterval(time.Millisecond))
	require.NoError(t, b.CreateTopic(ctx, "c", broker.TopicConfig{Partitions: 1, Cleanup: broker.CleanupCompact}))
	const rounds, keys = 60, 5
	done := make(chan struct{})
	var cleanups atomic.Int64
	go func() {
		defer close(done)
		for range rounds {
			recs := make([]broker.Record, keys)
			for k := range recs {
				recs[k] = broker.Record{Topic: "c", Key: fmt.Appendf(nil, "k%d", k), Value: []byte("v")}
			}
			if err := b.Produce(ctx, recs); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		require.NoError(t, b.Cleanup(ctx))
		cleanups.Add(1)
	}
	require.NoError(t, b.Cleanup(ctx))
	recs := fetchAll(t, b, "c", 0, 295)
	require.Len(t, recs, keys)
	require.Equal(t, []int64{295, 296, 297, 298, 299}, offsets(recs))
	offs, err := b.ListOffsets(ctx, "c", 0)
	require.NoError(t, err)
	require.Equal(t, broker.Offsets{Earliest: 295, Latest: rounds * keys}, offs)
	t.Logf("%d cleanups during the appends", cleanups.Load())
}

func TestLocked(t *testing.T) {
	t.Run("os", func(t *testing.T) {
		dir := t.TempDir()
		b, err := Open(dir)
		require.NoError(t, err)
		_, err = Open(dir)
		require.ErrorIs(t, err, ErrLocked)
		require.Contains(t, err.Error(), dir)
		require.Contains(t, err.Error(), "in use by a running app")
		require.Contains(t, err.Error(), fmt.Sprintf("locked by process %d", os.Getpid()), "the error names the holder")
		require.NoError(t, b.Close())
		b, err = Open(dir)
		require.NoError(t, err, "Close releases the lock")
		require.NoError(t, b.Close())
	})
	t.Run("mem", func(t *testing.T) {
		fs := vfs.NewMem()
		b, err := Open("data", WithFS(fs))
		require.NoError(t, err)
		_, err = Open("data", WithFS(fs))
		require.ErrorIs(t, err, ErrLocked)
		require.NoError(t, b.Close())
		b, err = Open("data", WithFS(fs))
		require.NoError(t, err)
		require.NoError(t, b.Close())
	})
}

func TestMaxRecordBytes(t *testing.T) {
	ctx := t.Context()
	b := open(t, WithMaxRecordBytes(10))
	require.NoError(t, b.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: 1}))
	ok := broker.Record{Topic: "t", Key: []byte("k"), Value: []byte("123456789")}
	big := broker.Record{Topic: "t", Key: []byte("k"), Value: []byte("12345"), Headers: []broker.Header{{Key: "h", Value: []byte("1234")}}}
	err := b.Produce(ctx, []broker.Record{ok, big})
	var tooLarge *broker.RecordTooLargeError
	require.ErrorAs(t, err, &tooLarge)
	require.Equal(t, 11, tooLarge.Size)
	require.Equal(t, 10, tooLarge.Max)
	err = b.Commit(ctx, broker.CommitRequest{Records: []broker.Record{ok, big}, Group: "g",
		Offsets: map[broker.TopicPartition]int64{{Topic: "t"}: 1}})
	require.ErrorIs(t, err, broker.ErrRecordTooLarge)
	offs, err := b.ListOffsets(ctx, "t", 0)
	require.NoError(t, err)
	require.Equal(t, int64(0), offs.Latest, "nothing of a refused call is written")
	got, err := b.FetchOffsets(ctx, "g", []broker.TopicPartition{{Topic: "t"}})
	require.NoError(t, err)
	require.Empty(t, got)
	require.NoError(t, b.Produce(ctx, []broker.Record{ok}))

	// The records of one call are bounded too.
	defer func(old int) { maxCallBytes = old }(maxCallBytes)
	maxCallBytes = 200
	many := make([]broker.Record, 10)
	for i := range many {
		many[i] = ok
	}
	require.ErrorIs(t, b.Produce(ctx, many), broker.ErrRecordTooLarge)
	require.NoError(t, b.Produce(ctx, many[:4]))
}

// TestFencingInGroupCommit sends fenced and valid commits concurrently, so
// that they share writer groups: the fenced ones fail alone.
func TestFencingInGroupCommit(t *testing.T) {
	ctx := t.Context()
	b := open(t)
	require.NoError(t, b.CreateTopic(ctx, "out", broker.TopicConfig{Partitions: 1}))
	m, err := b.JoinGroup(ctx, "g", []string{"out"}, broker.JoinOptions{})
	require.NoError(t, err)
	a := <-m.Assignments()
	var wg sync.WaitGroup
	var okCount, fencedCount atomic.Int64
	for i := range 40 {
		wg.Go(func() {
			gen := a.Generation
			if i%2 == 1 {
				gen++ // a generation that does not exist
			}
			err := b.Commit(ctx, broker.CommitRequest{Group: "g", Generation: gen, MemberID: m.MemberID(),
				Records: []broker.Record{{Topic: "out", Value: []byte("v")}}})
			switch {
			case err == nil:
				okCount.Add(1)
			case errors.Is(err, broker.ErrFenced):
				fencedCount.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	require.Equal(t, int64(20), okCount.Load())
	require.Equal(t, int64(20), fencedCount.Load())
	offs, err := b.ListOffsets(ctx, "out", 0)
	require.NoError(t, err)
	require.Equal(t, int64(20), offs.Latest)
	require.Equal(t, int64(20), int64(len(fetchAll(t, b, "out", 0, 0))))
}

// TestCompactionDirtyRatio checks that the background cleanup compacts a
// partition only once enough new data arrived, while Cleanup always does.
func TestCompactionDirtyRatio(t *testing.T) {
	ctx := t.Context()
	b := open(t, WithCleanupInterval(-1))
	require.NoError(t, b.CreateTopic(ctx, "c", broker.TopicConfig{Partitions: 1, Cleanup: broker.CleanupCompact}))
	put := func(keys ...string) {
		recs := make([]broker.Record, len(keys))
		for i, k := range keys {
			recs[i] = broker.Record{Topic: "c", Key: []byte(k), Value: []byte("value")}
		}
		require.NoError(t, b.Produce(ctx, recs))
	}
	count := func() int {
		offs, err := b.ListOffsets(ctx, "c", 0)
		require.NoError(t, err)
		return len(fetchAll(t, b, "c", 0, offs.Earliest))
	}
	keys := make([]string, 20)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%02d", i)
	}
	put(keys...)
	put(keys...)
	require.NoError(t, b.cleanup(ctx, false), "the first compaction always runs")
	require.Equal(t, 20, count())

	put(keys[:2]...) // 10% new data: not dirty enough
	require.NoError(t, b.cleanup(ctx, false))
	require.Equal(t, 22, count())
	require.NoError(t, b.Cleanup(ctx), "Cleanup compacts regardless")
	require.Equal(t, 20, count())

	put(keys[:12]...) // 60% new data
	require.NoError(t, b.cleanup(ctx, false))
	require.Equal(t, 20, count())
}

// TestBackgroundCleanup runs the cleanup loop on synctest's fake clock: a
// record past its retention is gone one cleanup interval later, with no
// call to Cleanup.
func TestBackgroundCleanup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		b, err := Open("data", WithFS(vfs.NewMem()), WithCleanupInterval(time.Minute))
		require.NoError(t, err)
		defer b.Close()
		require.NoError(t, b.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: 1, RetentionTime: time.Hour}))
		require.NoError(t, b.Produce(ctx, []broker.Record{{Topic: "t", Value: []byte("old"), Timestamp: time.Now().Add(-2 * time.Hour)}}))
		require.NoError(t, b.Produce(ctx, []broker.Record{{Topic: "t", Value: []byte("new")}}))

		time.Sleep(time.Minute + time.Second) // fake time: one cleanup tick
		synctest.Wait()
		offs, err := b.ListOffsets(ctx, "t", 0)
		require.NoError(t, err)
		require.Equal(t, broker.Offsets{Earliest: 1, Latest: 2}, offs)
	})
}

// TestCorruptBatch damages a stored batch behind the broker's back: Fetch,
// OffsetForTime and Cleanup report an error matching broker.ErrCorrupt that
// names the topic, partition and offset, and records before it still read.
func TestCorruptBatch(t *testing.T) {
	ctx := t.Context()
	b := open(t, WithCleanupInterval(-1))
	require.NoError(t, b.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: 2, Cleanup: broker.CleanupCompact}))
	produce(t, b, "t", 1, "a", "b")
	produce(t, b, "t", 1, "c", "d")
	key := recordKey(nil, b.mu.topics["t"].id, 1, 2)
	v, closer, err := b.db.Get(key)
	require.NoError(t, err)
	bad := append([]byte(nil), v...)
	_ = closer.Close()
	bad[len(bad)-1] ^= 0xff
	require.NoError(t, b.db.Set(key, bad, nil))

	recs, err := b.Fetch(ctx, []broker.FetchRequest{{Topic: "t", Partition: 1, Offset: 0}}, broker.FetchOptions{MaxRecords: 2})
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, values(recs))
	_, err = b.Fetch(ctx, []broker.FetchRequest{{Topic: "t", Partition: 1, Offset: 1}}, broker.FetchOptions{})
	require.ErrorIs(t, err, broker.ErrCorrupt)
	var te *broker.TopicError
	require.ErrorAs(t, err, &te)
	require.Equal(t, "t", te.Topic)
	require.Equal(t, int32(1), te.Partition)
	require.Contains(t, err.Error(), "offset 2")
	_, err = b.OffsetForTime(ctx, "t", 1, time.Now().Add(time.Hour))
	require.NoError(t, err, "the header alone says no record is that new")
	_, err = b.OffsetForTime(ctx, "t", 1, time.UnixMilli(0))
	require.NoError(t, err, "the first batch answers")
	require.ErrorIs(t, b.Cleanup(ctx), broker.ErrCorrupt)
}

func TestMetrics(t *testing.T) {
	ctx := t.Context()
	b := open(t, WithCleanupInterval(-1))
	require.NoError(t, b.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: 2, RetentionBytes: 1}))
	produce(t, b, "t", 0, "a", "b")
	produce(t, b, "t", 1, "c")
	require.NoError(t, b.CommitOffsets(ctx, "g", map[broker.TopicPartition]int64{{Topic: "t"}: 1}))
	recs, err := b.Fetch(ctx, []broker.FetchRequest{{Topic: "t", Partition: 0}}, broker.FetchOptions{})
	require.NoError(t, err)
	require.Len(t, recs, 2)
	_, err = b.Fetch(ctx, []broker.FetchRequest{{Topic: "t", Partition: 0, Offset: 2}}, broker.FetchOptions{MaxWait: time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, b.Cleanup(ctx))

	m := b.Metrics()
	require.Equal(t, uint64(3), m.Writes)
	require.Equal(t, uint64(3), m.RecordsAppended)
	require.Positive(t, m.BytesAppended)
	require.GreaterOrEqual(t, m.Commits, uint64(3), "plus the cleanup's")
	require.Equal(t, uint64(2), m.Fetches)
	require.Equal(t, uint64(1), m.FetchWaits)
	require.Equal(t, uint64(2), m.RecordsFetched)
	require.Equal(t, uint64(1), m.CleanupRuns)
	require.Equal(t, m.BytesAppended, m.BytesRemoved, "a 1-byte retention removes every batch")
	require.Positive(t, m.DiskUsage)
	require.Positive(t, m.MemTables)
	require.Positive(t, m.MemTableBytes)
	require.Positive(t, m.WALFiles)
	require.Positive(t, m.WALBytes, "nothing flushed yet")
	require.NoError(t, b.Close())
	m = b.Metrics()
	require.Zero(t, m.DiskUsage)
	require.Zero(t, m.MemTables)
	require.Zero(t, m.WALFiles)
}

// TestFetchFairness checks that a partition with a large backlog does not
// starve the others in one Fetch.
func TestFetchFairness(t *testing.T) {
	ctx := t.Context()
	b := open(t)
	require.NoError(t, b.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: 3}))
	big := make([]string, 1000)
	for i := range big {
		big[i] = fmt.Sprint(i)
	}
	produce(t, b, "t", 0, big...)
	produce(t, b, "t", 1, "x", "y")
	produce(t, b, "t", 2, big[:300]...)
	reqs := []broker.FetchRequest{{Topic: "t", Partition: 0}, {Topic: "t", Partition: 1}, {Topic: "t", Partition: 2}}
	recs, err := b.Fetch(ctx, reqs, broker.FetchOptions{MaxRecords: 300})
	require.NoError(t, err)
	require.Len(t, recs, 300)
	per := map[int32][]int64{}
	for _, r := range recs {
		per[r.Partition] = append(per[r.Partition], r.Offset)
	}
	// Shares of 100 each; partition 1 leaves 98, which go to partition 0
	// (request order).
	require.Len(t, per[0], 198)
	require.Len(t, per[1], 2)
	require.Len(t, per[2], 100)
	for p, offs := range per {
		for i, o := range offs {
			require.Equal(t, int64(i), o, "partition %d: contiguous from 0", p)
		}
	}
	// Partitions come in request order, each contiguous.
	require.Equal(t, int32(0), recs[0].Partition)
	require.Equal(t, int32(1), recs[198].Partition)
	require.Equal(t, int32(2), recs[200].Partition)
}

// TestCompactDelete checks broker.CleanupCompactDelete: the policy survives
// a reopen (topic metadata), retention removes whole old batches even when
// they hold a key's newest record, compaction removes replaced records and
// old tombstones, and an expiring record needs no tombstone.
func TestCompactDelete(t *testing.T) {
	ctx := t.Context()
	clk := &clock{}
	clk.now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli())
	dir := t.TempDir()
	b, err := Open(dir, WithClock(clk.Now), WithCleanupInterval(-1))
	require.NoError(t, err)
	defer func() { _ = b.Close() }()
	cfg := broker.TopicConfig{Partitions: 1, Cleanup: broker.CleanupCompactDelete, RetentionTime: time.Hour, DeleteRetention: 30 * time.Minute}
	require.NoError(t, b.CreateTopic(ctx, "w", cfg))
	kv := func(k, v string) broker.Record {
		r := broker.Record{Topic: "w", Key: []byte(k), Value: []byte(v)}
		if v == "<nil>" {
			r.Value = nil
		}
		return r
	}
	require.NoError(t, b.Produce(ctx, []broker.Record{kv("w0", "1"), kv("w0", "2"), kv("x", "x0")})) // 0-2 at 0 min
	clk.Advance(40 * time.Minute)
	require.NoError(t, b.Produce(ctx, []broker.Record{kv("w1", "1"), kv("x", "<nil>")})) // 3-4 at 40 min
	clk.Advance(40 * time.Minute)
	require.NoError(t, b.Produce(ctx, []broker.Record{kv("w1", "2"), kv("w2", "1")})) // 5-6 at 80 min

	// Reopen: the policy is stored with the topic.
	require.NoError(t, b.Close())
	b, err = Open(dir, WithClock(clk.Now), WithCleanupInterval(-1))
	require.NoError(t, err)
	info, err := b.DescribeTopic(ctx, "w")
	require.NoError(t, err)
	require.Equal(t, broker.CleanupCompactDelete, info.Config.Cleanup)

	// At 80 min: the first batch is over an hour old and goes whole,
	// with w0's newest record; w1's first record is replaced; the
	// tombstone of x (40 min old) is past DeleteRetention.
	require.NoError(t, b.Cleanup(ctx))
	recs := fetchAll(t, b, "w", 0, 5)
	require.Equal(t, []int64{5, 6}, offsets(recs))
	require.Equal(t, []string{"2", "1"}, values(recs))
	offs, err := b.ListOffsets(ctx, "w", 0)
	require.NoError(t, err)
	require.Equal(t, broker.Offsets{Earliest: 5, Latest: 7}, offs)

	// Everything expires by time; offsets go on.
	clk.Advance(2 * time.Hour)
	require.NoError(t, b.cleanup(ctx, false))
	offs, err = b.ListOffsets(ctx, "w", 0)
	require.NoError(t, err)
	require.Equal(t, broker.Offsets{Earliest: 7, Latest: 7}, offs)
	require.Zero(t, b.mu.topics["w"].parts[0].state.bytes)
}

// TestFetchFairnessSecondPass checks the second pass of a Fetch's
// fairness, which hands what the shares left to several partitions: each
// partition's records stay contiguous, in offset order, with their own
// values, and partitions come in request order.
func TestFetchFairnessSecondPass(t *testing.T) {
	ctx := t.Context()
	b := open(t)
	require.NoError(t, b.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: 3}))
	vals := func(p, n int) []string {
		v := make([]string, n)
		for i := range v {
			v[i] = fmt.Sprintf("%d-%d", p, i)
		}
		return v
	}
	produce(t, b, "t", 0, vals(0, 110)...)
	produce(t, b, "t", 1, vals(1, 2)...)
	produce(t, b, "t", 2, vals(2, 300)...)
	reqs := []broker.FetchRequest{{Topic: "t", Partition: 0}, {Topic: "t", Partition: 1}, {Topic: "t", Partition: 2}}
	recs, err := b.Fetch(ctx, reqs, broker.FetchOptions{MaxRecords: 300})
	require.NoError(t, err)
	// Shares of 100: 100, 2 and 100 first; the 98 left go to partition
	// 0 (its last 10) and then partition 2 (88).
	require.Len(t, recs, 300)
	want := []struct{ p, n int }{{0, 110}, {1, 2}, {2, 188}}
	i := 0
	for _, w := range want {
		for o := range w.n {
			r := recs[i]
			require.Equal(t, int32(w.p), r.Partition, "record %d", i)
			require.Equal(t, int64(o), r.Offset, "record %d", i)
			require.Equal(t, fmt.Sprintf("%d-%d", w.p, o), string(r.Value), "record %d", i)
			i++
		}
	}
}

// TestConsumerRecycle checks broker.Recycler: a Poll after Recycle fills
// the recycled slice again, with the right records, and the keys and
// values of recycled records stay as they were.
func TestConsumerRecycle(t *testing.T) {
	ctx := t.Context()
	b := open(t)
	require.NoError(t, b.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: 2}))
	produce(t, b, "t", 0, "a", "b", "c", "d")
	produce(t, b, "t", 1, "e", "f")
	c, err := b.NewConsumer(broker.ConsumerOptions{MaxRecords: 3})
	require.NoError(t, err)
	defer c.Close()
	rc, ok := c.(broker.Recycler)
	require.True(t, ok, "the embedded consumer reuses records")
	// One Assign each, so that partition 0 comes first.
	c.Assign(map[broker.TopicPartition]int64{{Topic: "t", Partition: 0}: 0})
	c.Assign(map[broker.TopicPartition]int64{{Topic: "t", Partition: 1}: 0})

	first, err := c.Poll(ctx, 0)
	require.NoError(t, err)
	require.Len(t, first.Records, 3)
	kept := first.Records[0].Value
	require.Equal(t, "a", string(kept))
	rc.Recycle(first.Records)
	require.Zero(t, first.Records[0], "recycled records are cleared")

	var got []string
	for len(got) < 3 {
		polled, err := c.Poll(ctx, 0)
		require.NoError(t, err)
		require.NotEmpty(t, polled.Records)
		require.Same(t, &first.Records[:1][0], &polled.Records[0], "the recycled slice is filled again")
		for _, r := range polled.Records {
			got = append(got, fmt.Sprintf("%d:%s", r.Partition, r.Value))
		}
		rc.Recycle(polled.Records)
	}
	require.Equal(t, "a", string(kept), "a value kept from a recycled record is unchanged")
	rc.Recycle(nil) // nothing to do
	all := append([]string{"0:a", "0:b", "1:e"}, got...)
	require.ElementsMatch(t, []string{"0:a", "0:b", "0:c", "0:d", "1:e", "1:f"}, all)
}
