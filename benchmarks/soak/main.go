// Command soak runs an app at a steady load for a long time and samples
// its resources, so that a slow leak shows: resident memory (RSS), the Go
// heap, goroutines, open files, and the group's lag, every -sample. At
// the end it reports each resource's trend: the peak of each tenth of the
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
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/benchmarks/internal/proc"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/codec"
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

// sample is one reading of the process's resources.
type sample struct {
	at         time.Duration // since the start
	rssMB      float64
	heapMB     float64
	goroutines int
	files      int
	lag        int64
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
			s, err := read(runCtx, b, time.Since(start))
			if err != nil {
				if runCtx.Err() != nil {
					done = true
					break
				}
				return err
			}
			samples = append(samples, s)
			fmt.Fprintf(out, "sample t_s=%.0f rss_mb=%.1f heap_mb=%.1f goroutines=%d open_files=%d lag=%d\n",
				s.at.Seconds(), s.rssMB, s.heapMB, s.goroutines, s.files, s.lag)
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
	for _, m := range []struct {
		name string
		get  func(sample) float64
	}{
		{"rss_mb", func(s sample) float64 { return s.rssMB }},
		{"heap_mb", func(s sample) float64 { return s.heapMB }},
		{"goroutines", func(s sample) float64 { return float64(s.goroutines) }},
		{"open_files", func(s sample) float64 { return float64(s.files) }},
		{"lag", func(s sample) float64 { return float64(s.lag) }},
	} {
		peaks := tenthPeaks(samples, m.get)
		fmt.Fprintf(out, "trend metric=%s first_peak=%.1f last_peak=%.1f slope_per_hour=%.2f peaks=%s\n",
			m.name, peaks[0].v, peaks[len(peaks)-1].v, slopePerHour(peaks), formatPeaks(peaks))
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

// read samples the process's resources and the app's lag.
func read(ctx context.Context, b broker.Broker, at time.Duration) (sample, error) {
	s := sample{at: at, goroutines: runtime.NumGoroutine()}
	rss, err := proc.Status("VmRSS")
	if err != nil {
		return s, fmt.Errorf("read RSS: %w", err)
	}
	s.rssMB = float64(rss) / (1 << 20)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.heapMB = float64(ms.HeapAlloc) / (1 << 20)
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return s, fmt.Errorf("count open files: %w", err)
	}
	s.files = len(fds)
	if s.lag, err = broker.GroupLag(ctx, b, "soak", "events"); err != nil {
		return s, fmt.Errorf("lag: %w", err)
	}
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
