package embedded

import (
	"crypto/rand"
	"fmt"
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
