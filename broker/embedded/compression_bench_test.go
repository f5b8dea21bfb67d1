package embedded

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
)

// BenchmarkLogCompression measures the block compression of the log's
// sstables (see "Pebble tuning" in the package documentation): b.N
// records appended in batches of 1000 over 4 partitions, with a 4 MiB
// memtable so that flushes and compactions run as they do for a log many
// times larger than the default memtable, the broker closed (flushing
// the rest), reopened and every record fetched back (every block read
// and decompressed once), and closed again. It reports cpu-ns/record,
// the process's CPU time over all of it (the figure to compare on a
// shared machine: flushes and compactions run on Pebble's goroutines),
// and disk-B/record, the sstables' size at the end. Records: the stateless
// benchmark's (8-byte string keys, 8-byte integer values) and
// Nexmark-like bids (JSON of about 150 bytes). Run it with a fixed count,
// e.g. -benchtime=300000x.
func BenchmarkLogCompression(b *testing.B) {
	profiles := []struct {
		name string
		p    *sstable.CompressionProfile
	}{
		{"none", sstable.NoCompression},
		{"snappy", sstable.SnappyCompression},
		{"minlz", sstable.MinLZCompression},
		{"zstd", sstable.ZstdCompression},
	}
	ts := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	data := []struct {
		name string
		gen  func(i int) broker.Record
	}{
		{"ints", func(i int) broker.Record {
			return broker.Record{Key: fmt.Appendf(nil, "k%07d", i*7919%10000), Value: fmt.Appendf(nil, "%08d", i),
				Timestamp: ts.Add(time.Duration(i) * time.Millisecond)}
		}},
		{"bids", func(i int) broker.Record {
			return broker.Record{Key: fmt.Appendf(nil, "%d", 1000+i*31%997),
				Value: fmt.Appendf(nil, `{"auction":%d,"bidder":%d,"price":%d,"channel":"channel-%d","url":"https://www.nexmark.com/item.htm?query=1&channel_id=%d","dateTime":%d}`,
					1000+i*31%997, 2000+i*17%1009, 100+i*7%10007, i%5, i*13%10000, ts.UnixMilli()+int64(i)),
				Timestamp: ts.Add(time.Duration(i) * time.Millisecond)}
		}},
	}
	for _, d := range data {
		for _, c := range profiles {
			b.Run(d.name+"/"+c.name, func(b *testing.B) {
				dir := b.TempDir()
				opts := []Option{WithCleanupInterval(-1), WithPebbleOptions(func(o *pebble.Options) {
					o.MemTableSize = 4 << 20
					for i := range o.Levels {
						o.Levels[i].Compression = func() *sstable.CompressionProfile { return c.p }
					}
				})}
				br, err := Open(dir, opts...)
				require.NoError(b, err)
				ctx := b.Context()
				const partitions = 4
				require.NoError(b, br.CreateTopic(ctx, "log", broker.TopicConfig{Partitions: partitions}))
				recs := make([]broker.Record, b.N)
				for i := range recs {
					recs[i] = d.gen(i)
					recs[i].Topic, recs[i].Partition = "log", int32(i%partitions)
				}
				b.ResetTimer()
				cpu0 := cpuTime()
				for batch := range slices.Chunk(recs, 1000) {
					require.NoError(b, br.Produce(ctx, batch))
				}
				require.NoError(b, br.Close())
				br, err = Open(dir, opts...)
				require.NoError(b, err)
				fetched := 0
				for p := range int32(partitions) {
					for off := int64(0); ; {
						got, err := br.Fetch(ctx, []broker.FetchRequest{{Topic: "log", Partition: p, Offset: off}}, broker.FetchOptions{})
						require.NoError(b, err)
						if len(got) == 0 {
							break
						}
						fetched += len(got)
						off = got[len(got)-1].Offset + 1
					}
				}
				require.NoError(b, br.Close())
				b.StopTimer()
				cpu := cpuTime() - cpu0
				require.Equal(b, b.N, fetched)
				var sst int64
				require.NoError(b, filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
					if err == nil && strings.HasSuffix(path, ".sst") {
						info, ierr := e.Info()
						if ierr != nil {
							return ierr
						}
						sst += info.Size()
					}
					return err
				}))
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/record")
				b.ReportMetric(float64(sst)/float64(b.N), "disk-B/record")
			})
		}
	}
}
