// Command soak runs an app at a steady load for a long time and samples
// its resources, so that a slow leak shows, every -sample:
//
//   - resident memory (RSS; anonymous and file-backed), threads,
//     goroutines, open files, and the group's lag;
//   - the Go runtime's memory by class (runtime/metrics): live and dead
//     heap objects, free heap kept, heap released to the OS, stacks,
//     other runtime memory, and all it has mapped but not released;
//   - for the Pebble database of the embedded log ("log_") and of the
//     app's state ("state_"): memtables (count and MiB), zombie memtables
//     (flushed, still held by an iterator or kept for reuse), block cache,
//     tables open in the file cache, sstable iterators, write-ahead log
//     files and unflushed MiB, and compaction debt.
//
// Pebble allocates memtables and cached blocks outside the Go heap (with
// cgo), so RSS is about go_mapped_mb + pebble_alloc_mb (both databases'
// memtables, zombies included, and block caches) + the binary's pages
// (rss_file_mb); rest_mb is RSS less those three, which is the C
// allocator's overhead and whatever else the process holds (negative
// when allocated memtable pages are not touched yet).
//
// At the end it reports each series' trend: the peak of each tenth of the
// run, and the slope of a least-squares line through those peaks, per
// hour. A leak is a slope that stays positive however long the run; a
// resource that levels off has peaks that stop rising.
//
//	go run ./benchmarks/soak                      # 30 minutes, 3,000 records/s
//	go run ./benchmarks/soak -duration 2h -rate 10000
//	go run ./benchmarks/soak -heapprofiles /tmp/soak  # then: go tool pprof -base /tmp/soak/heap-00180.pprof /tmp/soak/heap-01800.pprof
//
// The app is a keyed count and a tumbling-window count over 10,000 keys
// on the embedded broker with state in Pebble, the input appended at
// -rate records/s by a producer in the same process. It is not part of
// CI (it runs for -duration); its test runs it for a few seconds to keep
// it working.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/benchmarks/internal/proc"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/store"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
	"github.com/duality-streams/duality/window"
)

func main() {
	cfg := config{}
	flag.DurationVar(&cfg.duration, "duration", 30*time.Minute, "how long the app runs")
	flag.IntVar(&cfg.rate, "rate", 3000, "records appended per second")
	flag.DurationVar(&cfg.sample, "sample", 10*time.Second, "interval between samples")
	flag.IntVar(&cfg.keys, "keys", 10_000, "distinct keys")
	flag.StringVar(&cfg.dir, "dir", "", "data directory (default: a temporary one, removed at the end)")
	flag.StringVar(&cfg.heapProfiles, "heapprofiles", "", "if set, write a heap profile into this directory at the end of each tenth of the run\n(heap-<seconds>.pprof, after a GC); compare two with go tool pprof -base")
	flag.Parse()
	if err := run(context.Background(), cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

type config struct {
	duration, sample time.Duration
	rate, keys       int
	dir              string
	heapProfiles     string
}

// sample is one reading of the process's resources: values[i] is the
// series names[i] (the same names, in the same order, for every sample).
type sample struct {
	at     time.Duration // since the start
	names  []string
	values []float64
}

func (s *sample) add(name string, v float64) {
	s.names = append(s.names, name)
	s.values = append(s.values, v)
}

// pebbleStats are the figures the soak samples of one Pebble database.
type pebbleStats struct {
	memTables, zombieMemTables         int64
	memTableBytes, zombieMemTableBytes uint64
	blockCacheBytes                    int64
	tableCacheTables, tableIterators   int64
	zombieTables, walFiles             int64
	walBytes, compactionDebt           uint64
}

func logStats(m embedded.Metrics) pebbleStats {
	return pebbleStats{m.MemTables, m.ZombieMemTables, m.MemTableBytes, m.ZombieMemTableBytes, m.BlockCacheBytes,
		m.TableCacheTables, m.TableIterators, m.ZombieTables, m.WALFiles, m.WALBytes, m.CompactionDebt}
}

func stateStats(m store.Metrics) pebbleStats {
	return pebbleStats{m.MemTables, m.ZombieMemTables, m.MemTableBytes, m.ZombieMemTableBytes, m.BlockCacheBytes,
		m.TableCacheTables, m.TableIterators, m.ZombieTables, m.WALFiles, m.WALBytes, m.CompactionDebt}
}

// alloc is the memory Pebble allocated outside the Go heap for the
// database: memtables, zombies included, and cached blocks.
func (p pebbleStats) alloc() uint64 {
	return p.memTableBytes + p.zombieMemTableBytes + uint64(p.blockCacheBytes)
}

func run(ctx context.Context, cfg config, out io.Writer) (err error) {
	if cfg.duration <= 0 || cfg.sample <= 0 || cfg.rate < 10 || cfg.keys < 1 {
		return errors.New("-duration and -sample must be positive, -rate at least 10, -keys at least 1")
	}
	if cfg.sample > cfg.duration {
		return errors.New("-sample must not be longer than -duration")
	}
	dir := cfg.dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "duality-soak-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	b, err := embedded.Open(filepath.Join(dir, "log"))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, b.Close()) }()
	for _, t := range []string{"events", "counts", "counts-10s"} {
		if err := b.CreateTopic(ctx, t, broker.TopicConfig{Partitions: 4}); err != nil && !errors.Is(err, broker.ErrTopicExists) {
			return err
		}
	}
	sb := stream.NewBuilder()
	byKey := stream.GroupByKey(stream.From(sb, "events", codec.String(), codec.Int64()))
	table.Count(byKey, "counts").ToStream().To("counts")
	window.Count(byKey, window.Tumbling(10*time.Second, time.Second), "counts-10s").ToStream().To("counts-10s")
	topo, err := sb.Build()
	if err != nil {
		return err
	}
	app, err := duality.New("soak", topo, b, duality.StateDir(filepath.Join(dir, "state")))
	if err != nil {
		return err
	}

	runCtx, stop := context.WithTimeout(ctx, cfg.duration)
	defer stop()
	appErr := make(chan error, 1)
	go func() { appErr <- app.Run(runCtx) }()
	prodErr := make(chan error, 1)
	go func() { prodErr <- produce(runCtx, b, cfg) }()

	fmt.Fprintf(out, "Duality soak: %s at %d records/s over %d keys, a sample every %s, GOMAXPROCS=%d\n",
		cfg.duration, cfg.rate, cfg.keys, cfg.sample, runtime.GOMAXPROCS(0))
	start := time.Now()
	tick := time.NewTicker(cfg.sample)
	defer tick.Stop()
	var samples []sample
	nextProfile := cfg.duration / 10
	for done := false; !done; {
		select {
		case <-runCtx.Done():
			done = true
		case err := <-appErr:
			stop()
			return fmt.Errorf("app stopped before the end: %w", err)
		case err := <-prodErr:
			if err != nil && runCtx.Err() == nil {
				stop()
				return fmt.Errorf("producer: %w", err)
			}
		case <-tick.C:
			s, err := read(runCtx, b, app, time.Since(start))
			if errors.Is(err, duality.ErrStoreNotReady) && runCtx.Err() == nil {
				continue // the app has not opened its state yet
			}
			if err != nil {
				if runCtx.Err() != nil {
					done = true
					break
				}
				return err
			}
			samples = append(samples, s)
			var line strings.Builder
			fmt.Fprintf(&line, "sample t_s=%.0f", s.at.Seconds())
			for i, name := range s.names {
				fmt.Fprintf(&line, " %s=%.1f", name, s.values[i])
			}
			fmt.Fprintln(out, line.String())
			if cfg.heapProfiles != "" && s.at >= nextProfile {
				nextProfile += cfg.duration / 10
				if err := writeHeapProfile(cfg.heapProfiles, s.at); err != nil {
					stop()
					return err
				}
			}
		}
	}
	if err := <-appErr; err != nil {
		return fmt.Errorf("app: %w", err)
	}
	if len(samples) < 2 {
		return errors.New("fewer than two samples: make -duration longer than twice -sample")
	}
	for i, name := range samples[0].names {
		peaks := tenthPeaks(samples, func(s sample) float64 { return s.values[i] })
		fmt.Fprintf(out, "trend metric=%s first_peak=%.1f last_peak=%.1f slope_per_hour=%.2f peaks=%s\n",
			name, peaks[0].v, peaks[len(peaks)-1].v, slopePerHour(peaks), formatPeaks(peaks))
	}
	return nil
}

// writeHeapProfile writes the heap profile of live objects after a GC into
// dir as heap-<seconds>.pprof.
func writeHeapProfile(dir string, at time.Duration) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("heap-%05.0f.pprof", at.Seconds())))
	if err != nil {
		return err
	}
	runtime.GC()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("heap profile: %w", err)
	}
	return f.Close()
}

// produce appends cfg.rate records per second, in batches every 100 ms,
// with the current time as their timestamps, until ctx ends.
func produce(ctx context.Context, b broker.Broker, cfg config) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	perTick := cfg.rate / 10
	batch := make([]broker.Record, perTick)
	ints := codec.Int64()
	n := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		for i := range batch {
			k := []byte(strconv.Itoa(n % cfg.keys))
			v, err := ints.Append(nil, int64(n))
			if err != nil {
				return err
			}
			batch[i] = broker.Record{Topic: "events", Partition: broker.KeyPartition(k, 4), Key: k, Value: v}
			n++
		}
		if err := b.Produce(ctx, batch); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// goMemory are the runtime/metrics memory classes the soak reads, by the
// series they add to.
var goMemory = []struct{ series, name string }{
	{"go_heap_objects_mb", "/memory/classes/heap/objects:bytes"},
	{"go_heap_free_mb", "/memory/classes/heap/free:bytes"},
	{"go_heap_free_mb", "/memory/classes/heap/unused:bytes"},
	{"go_heap_released_mb", "/memory/classes/heap/released:bytes"},
	{"go_stacks_mb", "/memory/classes/heap/stacks:bytes"},
	{"go_stacks_mb", "/memory/classes/os-stacks:bytes"},
	{"go_other_mb", "/memory/classes/metadata/mcache/free:bytes"},
	{"go_other_mb", "/memory/classes/metadata/mcache/inuse:bytes"},
	{"go_other_mb", "/memory/classes/metadata/mspan/free:bytes"},
	{"go_other_mb", "/memory/classes/metadata/mspan/inuse:bytes"},
	{"go_other_mb", "/memory/classes/metadata/other:bytes"},
	{"go_other_mb", "/memory/classes/other:bytes"},
	{"go_other_mb", "/memory/classes/profiling/buckets:bytes"},
	{"go_total_mb", "/memory/classes/total:bytes"},
}

const mib = 1 << 20

// read samples the process's resources, its Pebble databases and the
// app's lag.
func read(ctx context.Context, b *embedded.Broker, app *duality.App, at time.Duration) (sample, error) {
	s := sample{at: at}
	var rss [3]int64
	for i, field := range []string{"VmRSS", "RssAnon", "RssFile"} {
		n, err := proc.Status(field)
		if err != nil {
			return s, fmt.Errorf("read RSS: %w", err)
		}
		rss[i] = n
	}
	s.add("rss_mb", float64(rss[0])/mib)
	s.add("rss_anon_mb", float64(rss[1])/mib)
	s.add("rss_file_mb", float64(rss[2])/mib)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.add("heap_mb", float64(ms.HeapAlloc)/mib)

	rms := make([]metrics.Sample, len(goMemory))
	for i, m := range goMemory {
		rms[i].Name = m.name
	}
	metrics.Read(rms)
	goMB := map[string]float64{}
	for i, m := range goMemory {
		if rms[i].Value.Kind() != metrics.KindUint64 {
			return s, fmt.Errorf("runtime/metrics has no %s", m.name)
		}
		goMB[m.series] += float64(rms[i].Value.Uint64()) / mib
	}
	goMapped := goMB["go_total_mb"] - goMB["go_heap_released_mb"]
	for _, name := range []string{"go_heap_objects_mb", "go_heap_free_mb", "go_heap_released_mb", "go_stacks_mb", "go_other_mb"} {
		s.add(name, goMB[name])
	}
	s.add("go_mapped_mb", goMapped)

	sm, err := app.StateMetrics()
	if err != nil {
		return s, fmt.Errorf("state metrics: %w", err)
	}
	dbs := []struct {
		prefix string
		stats  pebbleStats
	}{{"log_", logStats(b.Metrics())}, {"state_", stateStats(sm)}}
	pebbleAlloc := float64(dbs[0].stats.alloc()+dbs[1].stats.alloc()) / mib
	s.add("pebble_alloc_mb", pebbleAlloc)
	s.add("rest_mb", float64(rss[0])/mib-goMapped-pebbleAlloc-float64(rss[2])/mib)
	for _, db := range dbs {
		p, st := db.prefix, db.stats
		s.add(p+"memtables", float64(st.memTables))
		s.add(p+"memtable_mb", float64(st.memTableBytes)/mib)
		s.add(p+"zombie_memtables", float64(st.zombieMemTables))
		s.add(p+"zombie_memtable_mb", float64(st.zombieMemTableBytes)/mib)
		s.add(p+"block_cache_mb", float64(st.blockCacheBytes)/mib)
		s.add(p+"table_cache_tables", float64(st.tableCacheTables))
		s.add(p+"table_iterators", float64(st.tableIterators))
		s.add(p+"zombie_tables", float64(st.zombieTables))
		s.add(p+"wal_files", float64(st.walFiles))
		s.add(p+"wal_mb", float64(st.walBytes)/mib)
		s.add(p+"compaction_debt_mb", float64(st.compactionDebt)/mib)
	}

	threads, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return s, fmt.Errorf("count threads: %w", err)
	}
	s.add("threads", float64(len(threads)))
	s.add("goroutines", float64(runtime.NumGoroutine()))
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return s, fmt.Errorf("count open files: %w", err)
	}
	s.add("open_files", float64(len(fds)))
	lag, err := broker.GroupLag(ctx, b, "soak", "events")
	if err != nil {
		return s, fmt.Errorf("lag: %w", err)
	}
	s.add("lag", float64(lag))
	return s, nil
}

// peak is the largest value of a metric in one tenth of the run, at the
// middle of that tenth.
type peak struct {
	at time.Duration
	v  float64
}

// tenthPeaks splits samples into ten consecutive groups (fewer when there
// are fewer samples) and returns each group's peak.
func tenthPeaks(samples []sample, get func(sample) float64) []peak {
	groups := min(10, len(samples))
	peaks := make([]peak, groups)
	for g := range groups {
		part := samples[g*len(samples)/groups : (g+1)*len(samples)/groups]
		p := peak{at: (part[0].at + part[len(part)-1].at) / 2, v: math.Inf(-1)}
		for _, s := range part {
			p.v = max(p.v, get(s))
		}
		peaks[g] = p
	}
	return peaks
}

// slopePerHour is the slope of the least-squares line through peaks, in
// the metric's unit per hour.
func slopePerHour(peaks []peak) float64 {
	var sx, sy, sxx, sxy float64
	n := float64(len(peaks))
	for _, p := range peaks {
		x := p.at.Hours()
		sx, sy, sxx, sxy = sx+x, sy+p.v, sxx+x*x, sxy+x*p.v
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}

func formatPeaks(peaks []peak) string {
	var b strings.Builder
	for i, p := range peaks {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatFloat(p.v, 'f', 1, 64))
	}
	return b.String()
}
