// Command bigrecord measures the peak memory (RSS) of an app that
// processes one very large record on the embedded broker, against the
// same app processing a small record: the difference, divided by the
// record's size, says how many copies of the record the process holds
// at its peak.
//
//	go run ./benchmarks/bigrecord
//	go run ./benchmarks/bigrecord -mib 100 -rounds 3
//
// Every measurement runs in a child process of its own (this command
// started again with -phase), so that each peak is the child's alone:
// one child produces the record into a fresh data directory, another
// runs the app over it to the end (RunToEnd) and reports its peak RSS
// (getrusage's maxrss) then and after closing the broker; it then reopens
// the broker and checks the output, which is not counted. Two apps are measured: echo (a stream copied to
// an output topic) and table (the record kept in a table with a state
// store, so it also goes through the store's batch and its changelog).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
)

var (
	mib        = flag.Int("mib", 100, "size of the large record's value in MiB")
	rounds     = flag.Int("rounds", 3, "interleaved rounds (small, large) per app")
	apps       = flag.String("apps", "echo,table", "apps to measure: echo, table")
	phase      = flag.String("phase", "", "internal: the child's phase (produce or run)")
	dir        = flag.String("dir", "", "internal: the child's data directory")
	size       = flag.Int("size", 0, "internal: the record's value size in bytes")
	app        = flag.String("app", "", "internal: the app the child runs")
	memProfile = flag.String("memprofile", "", "write the large runs' allocation profile to this file")
)

func main() {
	flag.Parse()
	var err error
	switch *phase {
	case "":
		err = parent()
	case "produce":
		err = produce()
	case "run":
		err = runApp()
	default:
		err = fmt.Errorf("unknown -phase %q", *phase)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bigrecord:", err)
		os.Exit(1)
	}
}

// limit is the broker's record limit: the large record and some room.
func limit(valueSize int) int { return max(embedded.DefaultMaxRecordBytes, valueSize+1<<20) }

func openBroker(d string, valueSize int) (*embedded.Broker, error) {
	return embedded.Open(filepath.Join(d, "log"), embedded.WithMaxRecordBytes(limit(valueSize)), embedded.WithCleanupInterval(-1))
}

// produce writes one record with a value of -size bytes to topic "in".
func produce() error {
	ctx := context.Background()
	b, err := openBroker(*dir, *size)
	if err != nil {
		return err
	}
	if err := b.CreateTopic(ctx, "in", broker.TopicConfig{Partitions: 1}); err != nil {
		b.Close()
		return err
	}
	v := make([]byte, *size)
	for i := range v {
		v[i] = byte('a' + i%26)
	}
	err = b.Produce(ctx, []broker.Record{{Topic: "in", Key: []byte("big"), Value: v}})
	return errors.Join(err, b.Close())
}

// runApp runs the -app over topic "in" to the end, closes the broker and
// checks the output. It prints its peak RSS after the run and after the
// broker's Close, before the check, whose reading of the output is the
// benchmark's, not the app's.
func runApp() error {
	ctx := context.Background()
	b, err := openBroker(*dir, *size)
	if err != nil {
		return err
	}
	closed := false
	defer func() {
		if !closed {
			b.Close()
		}
	}()
	if err := b.CreateTopic(ctx, "out", broker.TopicConfig{Partitions: 1}); err != nil {
		return err
	}
	sb := stream.NewBuilder()
	var opts []duality.Option
	switch *app {
	case "echo":
		stream.From(sb, "in", codec.Bytes(), codec.Bytes()).To("out")
	case "table":
		table.From(sb, "in", codec.Bytes(), codec.Bytes(), "kept").ToStream().To("out")
		opts = append(opts, duality.StateDir(filepath.Join(*dir, "state")))
	default:
		return fmt.Errorf("unknown -app %q", *app)
	}
	topo, err := sb.Build()
	if err != nil {
		return err
	}
	a, err := duality.New("bigrecord", topo, b, opts...)
	if err != nil {
		return err
	}
	if err := a.RunToEnd(ctx); err != nil {
		return err
	}
	// The peak until here is the processing's; the broker's Close,
	// which flushes the log's memtables to files, comes after.
	kib, err := peakKiB()
	if err != nil {
		return err
	}
	fmt.Printf("processing_peak_kib=%d\n", kib)
	if *memProfile != "" {
		f, err := os.Create(*memProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		runtime.GC() // the profile is as of the last GC
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			return err
		}
	}
	closed = true
	if err := b.Close(); err != nil {
		return err
	}
	if kib, err = peakKiB(); err != nil {
		return err
	}
	fmt.Printf("close_peak_kib=%d\n", kib)
	if b, err = openBroker(*dir, *size); err != nil {
		return err
	}
	defer b.Close()
	recs, err := broker.ReadAll(ctx, b, "out")
	if err != nil {
		return err
	}
	if len(recs) != 1 || len(recs[0].Value) != *size {
		return fmt.Errorf("output: %d records, want one of %d bytes", len(recs), *size)
	}
	return nil
}

// peakKiB returns the peak RSS of this process so far in KiB.
func peakKiB() (int64, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return ru.Maxrss, nil // KiB on Linux
}

// peaks are the peak RSS of a run child in MiB: while the app processed
// (until RunToEnd returned) and until the broker's Close returned.
type peaks struct{ processing, total float64 }

// child runs this command with args and returns its peak RSS and its
// standard output.
func child(args ...string) (peak float64, stdout string, err error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, "", err
	}
	cmd := exec.Command(exe, args...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if err := cmd.Run(); err != nil {
		return 0, "", fmt.Errorf("%s: %w", strings.Join(args, " "), err)
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0, "", errors.New("no rusage for the child")
	}
	return float64(ru.Maxrss) / 1024, out.String(), nil // KiB on Linux
}

// measure produces one record of valueSize bytes in a fresh directory,
// runs app over it and returns the run's peaks.
func measure(app string, valueSize int) (peaks, error) {
	d, err := os.MkdirTemp("", "duality-bigrecord-")
	if err != nil {
		return peaks{}, err
	}
	defer os.RemoveAll(d)
	sz := strconv.Itoa(valueSize)
	if _, _, err := child("-phase", "produce", "-dir", d, "-size", sz); err != nil {
		return peaks{}, err
	}
	args := []string{"-phase", "run", "-dir", d, "-size", sz, "-app", app}
	if *memProfile != "" && valueSize > 1<<20 {
		args = append(args, "-memprofile", *memProfile+"."+app)
	}
	_, out, err := child(args...)
	if err != nil {
		return peaks{}, err
	}
	var proc, closed int64
	if _, err := fmt.Sscanf(out, "processing_peak_kib=%d\nclose_peak_kib=%d", &proc, &closed); err != nil {
		return peaks{}, fmt.Errorf("run child printed %q: %w", out, err)
	}
	return peaks{processing: float64(proc) / 1024, total: float64(closed) / 1024}, nil
}

func median(ps []peaks, get func(peaks) float64) float64 {
	var s []float64
	for _, p := range ps {
		s = append(s, get(p))
	}
	slices.Sort(s)
	return s[len(s)/2]
}

func parent() error {
	if *mib < 1 || *rounds < 1 {
		return errors.New("-mib and -rounds must be >= 1")
	}
	bigSize := *mib << 20
	const smallSize = 1 << 10
	fmt.Printf("Duality bigrecord: peak RSS of an app processing one %d MiB record vs one 1 KiB record, %d rounds, embedded broker\n", *mib, *rounds)
	for _, app := range strings.Split(*apps, ",") {
		var small, big []peaks
		for range *rounds {
			s, err := measure(app, smallSize)
			if err != nil {
				return err
			}
			l, err := measure(app, bigSize)
			if err != nil {
				return err
			}
			small, big = append(small, s), append(big, l)
		}
		for _, ph := range []struct {
			name string
			get  func(peaks) float64
		}{{"processing", func(p peaks) float64 { return p.processing }}, {"with_close", func(p peaks) float64 { return p.total }}} {
			s, l := median(small, ph.get), median(big, ph.get)
			fmt.Printf("result app=%s phase=%s record_mib=%d baseline_rss_mb=%.0f peak_rss_mb=%.0f copies=%.2f\n",
				app, ph.name, *mib, s, l, (l-s)/float64(*mib))
		}
	}
	return nil
}
