package embedded

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
)

const benchValueSize = 100

func benchRecords(n int, partition int32) []broker.Record {
	recs := make([]broker.Record, n)
	// Random values: compression cannot flatter the numbers.
	value := make([]byte, benchValueSize)
	_, _ = rand.Read(value)
	ts := time.Now()
	for i := range recs {
		recs[i] = broker.Record{Topic: "bench", Partition: partition, Value: value, Timestamp: ts}
	}
	return recs
}

func reportRecords(b *testing.B, records int) {
	secs := b.Elapsed().Seconds()
	b.ReportMetric(float64(records)/secs, "records/s")
	b.ReportMetric(float64(records)*benchValueSize/secs/1e6, "MB/s")
}

// BenchmarkAppend measures Produce of 100-byte values in batches, by one
// producer or several concurrent ones (each to its own partition), with
// sync-per-commit (group commit), the same with the acknowledgement record
// synced before each acknowledgement (WithAckRecordSync), and interval sync.
func BenchmarkAppend(b *testing.B) {
	modes := []struct {
		name string
		opts []Option
	}{
		{"sync", nil},
		{"syncstrict", []Option{WithAckRecordSync(true)}},
		{"interval", []Option{WithSyncInterval(100 * time.Millisecond)}},
	}
	for _, mode := range modes {
		for _, batch := range []int{100, 1000, 10000} {
			for _, producers := range []int{1, 4} {
				b.Run(fmt.Sprintf("%s/batch=%d/producers=%d", mode.name, batch, producers), func(b *testing.B) {
					br := open(b, append(mode.opts, WithCleanupInterval(-1))...)
					require.NoError(b, br.CreateTopic(b.Context(), "bench", broker.TopicConfig{Partitions: int32(producers)}))
					b.ReportAllocs()
					if producers == 1 {
						recs := benchRecords(batch, 0)
						n := 0
						for b.Loop() {
							if err := br.Produce(b.Context(), recs); err != nil {
								b.Fatal(err)
							}
							n += batch
						}
						reportRecords(b, n)
						return
					}
					b.SetParallelism((producers + 1) / 2) // GOMAXPROCS is 2 here
					var next, total int64
					var mu = make(chan struct{}, 1)
					mu <- struct{}{}
					b.RunParallel(func(pb *testing.PB) {
						<-mu
						p := int32(next % int64(producers))
						next++
						mu <- struct{}{}
						recs := benchRecords(batch, p)
						n := 0
						for pb.Next() {
							if err := br.Produce(b.Context(), recs); err != nil {
								b.Error(err)
								return
							}
							n += batch
						}
						<-mu
						total += int64(n)
						mu <- struct{}{}
					})
					reportRecords(b, int(total))
				})
			}
		}
	}
}

// BenchmarkFetch measures sequential Fetch of 100-byte values stored in
// batches of 1000, each iteration reading the next 10000 records.
func BenchmarkFetch(b *testing.B) {
	br := open(b, WithSyncInterval(time.Second), WithCleanupInterval(-1))
	require.NoError(b, br.CreateTopic(b.Context(), "bench", broker.TopicConfig{Partitions: 1}))
	const stored = 1_000_000
	recs := benchRecords(1000, 0)
	for range stored / 1000 {
		require.NoError(b, br.Produce(b.Context(), recs))
	}
	b.ReportAllocs()
	var offset int64
	n := 0
	for b.Loop() {
		got, err := br.Fetch(b.Context(), []broker.FetchRequest{{Topic: "bench", Offset: offset}}, broker.FetchOptions{MaxRecords: 10000})
		if err != nil {
			b.Fatal(err)
		}
		n += len(got)
		offset = got[len(got)-1].Offset + 1
		if offset == stored {
			offset = 0
		}
	}
	reportRecords(b, n)
}

// BenchmarkDeleteRecords measures DeleteRecords of the whole backlog of a
// partition, ten batches of 1000 100-byte records (the appends are not
// timed): one range deletion and the new log start in one Pebble batch,
// synced in sync mode.
func BenchmarkDeleteRecords(b *testing.B) {
	for _, mode := range []struct {
		name string
		opts []Option
	}{
		{"sync", nil},
		{"interval", []Option{WithSyncInterval(100 * time.Millisecond)}},
	} {
		b.Run(mode.name, func(b *testing.B) {
			br := open(b, append(mode.opts, WithCleanupInterval(-1))...)
			require.NoError(b, br.CreateTopic(b.Context(), "bench", broker.TopicConfig{Partitions: 1, RetentionTime: -1}))
			recs := benchRecords(1000, 0)
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				for range 10 {
					if err := br.Produce(b.Context(), recs); err != nil {
						b.Fatal(err)
					}
				}
				end := recs[len(recs)-1].Offset + 1
				b.StartTimer()
				if err := br.DeleteRecords(b.Context(), "bench", 0, end); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAppendDiskGuard measures the cost of the disk space checks
// (WithDiskReserve) on Produce of batches of 100 100-byte records by one
// producer: guard=on is the default, guard=off disables the checks. Run
// the two interleaved and compare medians: these machines are noisy.
func BenchmarkAppendDiskGuard(b *testing.B) {
	for _, mode := range []struct {
		name string
		opts []Option
	}{
		{"sync", nil},
		{"interval", []Option{WithSyncInterval(100 * time.Millisecond)}},
	} {
		for _, guard := range []bool{true, false} {
			b.Run(fmt.Sprintf("%s/guard=%s", mode.name, map[bool]string{true: "on", false: "off"}[guard]), func(b *testing.B) {
				opts := append(mode.opts, WithCleanupInterval(-1))
				if !guard {
					opts = append(opts, WithDiskReserve(-1))
				}
				br := open(b, opts...)
				require.Equal(b, guard, br.space.Enabled())
				require.NoError(b, br.CreateTopic(b.Context(), "bench", broker.TopicConfig{Partitions: 1}))
				recs := benchRecords(100, 0)
				b.ReportAllocs()
				n := 0
				for b.Loop() {
					if err := br.Produce(b.Context(), recs); err != nil {
						b.Fatal(err)
					}
					n += len(recs)
				}
				reportRecords(b, n)
			})
		}
	}
}

// BenchmarkPipeline measures the log's share of a stateless pipeline, the
// goka benchmark's W1 on the embedded broker with the work itself taken
// out: b.N input records (8-byte keys and values, produced in batches of
// 5000 by key over 4 partitions, not timed) read by two workers, each
// polling two partitions with a consumer and handing the records back
// (broker.Recycler), and two thirds of them written by key to an output
// topic, committed with the input offsets through a committer every
// 100,000 input records per worker, as Duality's runtime does by default
// (sync mode: every commit waits for its fsync). Output values are slices
// of a buffer each worker reuses after each commit, so that the figures
// are the log's: cpu-ns/record is the process's CPU time (the goroutines
// of the workers, the writer, Pebble and the GC) per input record, the
// figure to compare on a shared machine. Run it with a fixed count, e.g.
// -benchtime=1000000x.
func BenchmarkPipeline(b *testing.B) {
	br := open(b, WithCleanupInterval(-1))
	ctx := b.Context()
	const (
		partitions  = 4
		workers     = 2
		uncommitted = 100_000
	)
	for _, t := range []string{"in", "out"} {
		require.NoError(b, br.CreateTopic(ctx, t, broker.TopicConfig{Partitions: partitions}))
	}
	ts := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	batch := make([]broker.Record, 0, 5000)
	for i := range b.N {
		batch = append(batch, broker.Record{Topic: "in", Partition: broker.PartitionByKey,
			Key: fmt.Appendf(nil, "k%07d", i%10000*7919%10000), Value: binary.BigEndian.AppendUint64(nil, uint64(i)),
			Timestamp: ts.Add(time.Duration(i) * time.Millisecond)})
		if len(batch) == cap(batch) || i == b.N-1 {
			require.NoError(b, br.Produce(ctx, batch))
			batch = batch[:0]
		}
	}
	ends := make(map[broker.TopicPartition]int64)
	for p := range int32(partitions) {
		o, err := br.ListOffsets(ctx, "in", p)
		require.NoError(b, err)
		ends[broker.TopicPartition{Topic: "in", Partition: p}] = o.Latest
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Go(func() { errs[w] = pipelineWorker(ctx, br, w, workers, partitions, uncommitted, ends) })
	}
	wg.Wait()
	b.StopTimer()
	cpu := cpuTime() - cpu0
	for _, err := range errs {
		require.NoError(b, err)
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/record")
}

// pipelineWorker is worker w of BenchmarkPipeline: it reads partitions w,
// w+workers, ... of "in" to their ends.
func pipelineWorker(ctx context.Context, br *Broker, w, workers, partitions, uncommitted int, ends map[broker.TopicPartition]int64) error {
	c, err := br.NewConsumer(broker.ConsumerOptions{})
	if err != nil {
		return err
	}
	defer c.Close()
	com, err := br.NewCommitter(ctx, fmt.Sprintf("bench-%d", w))
	if err != nil {
		return err
	}
	defer com.Close()
	next := map[broker.TopicPartition]int64{}
	for p := w; p < partitions; p += workers {
		next[broker.TopicPartition{Topic: "in", Partition: int32(p)}] = 0
	}
	c.Assign(maps.Clone(next))
	out := make([]broker.Record, 0, uncommitted+DefaultFetchMaxRecords)
	vals := make([]byte, 0, 8*cap(out))
	n := 0
	for {
		polled, err := c.Poll(ctx, time.Second)
		if err != nil {
			return err
		}
		for i := range polled.Records {
			r := &polled.Records[i]
			if v := binary.BigEndian.Uint64(r.Value); v%3 != 0 {
				vals = binary.BigEndian.AppendUint64(vals, 2*v+1)
				out = append(out, broker.Record{Topic: "out", Partition: broker.PartitionByKey,
					Key: r.Key, Value: vals[len(vals)-8:], Timestamp: r.Timestamp})
			}
			if i == len(polled.Records)-1 || polled.Records[i+1].Partition != r.Partition {
				next[broker.TopicPartition{Topic: r.Topic, Partition: r.Partition}] = r.Offset + 1
			}
		}
		n += len(polled.Records)
		c.(broker.Recycler).Recycle(polled.Records)
		done := true
		for tp, off := range next {
			done = done && off >= ends[tp]
		}
		if done || n >= uncommitted {
			if err := com.Commit(ctx, broker.CommitRequest{Records: out, Group: "bench", Offsets: maps.Clone(next)}); err != nil {
				return err
			}
			clear(out)
			out, vals, n = out[:0], vals[:0], 0
		}
		if done {
			return nil
		}
	}
}
