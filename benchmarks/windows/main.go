// Command windows measures Duality's windowed aggregations on this
// machine, end to end through the real runtime (duality.New and Run) on
// the embedded broker, with state in Pebble (duality.StateDir).
//
// Cases: a windowed count per key (window.Count over stream.GroupByKey)
// with tumbling windows of 10 s and with hopping windows of 10 s every
// 2 s (5 windows per record), each emitting every update (the default),
// the newest update per window and commit (window.CacheUpdates) and only
// final results (window.EmitOnWindowClose), over 1M input records
// of 1000 keys (10 records per key and tumbling window) with event times
// 1 ms apart (1000 s of event time), grace 5 s. It reports records/s from the start of producing the input to the
// commit of its last offset, output and changelog records per input
// record, late records, and the peak RSS of the process, and the cost
// ratio of hopping to tumbling (from the medians of the same run).
//
//	go run ./benchmarks/windows
//	go run ./benchmarks/windows -rounds 5 -records 200000
//
// Every case runs in a child process (this program re-executed with
// -child) so that its peak RSS (VmHWM) is its own; the RSS includes the
// embedded broker, which runs in the same process. Cases are interleaved
// round by round and medians reported, because machines are noisy.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/duality-streams/duality/benchmarks/internal/proc"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/window"
)

var (
	records    = flag.Int("records", 1_000_000, "input records of a case")
	keys       = flag.Int("keys", 1000, "distinct keys")
	rounds     = flag.Int("rounds", 3, "interleaved rounds")
	partitions = flag.Int("partitions", 4, "partitions per topic")
	batchSize  = flag.Int("batch", 1000, "records per Produce call")
	cpuProfile = flag.String("cpuprofile", "", "write a CPU profile of each case to this file with the case's name appended")

	// Set by the parent for a child process.
	child    = flag.String("child", "", "internal: run one case (tumbling or hopping) and print its result as JSON")
	caseEmit = flag.String("case-emit", "updates", "internal: emit strategy: updates, cached or final")
)

const (
	appID       = "bench"
	inputTopic  = "input"
	outputTopic = "counts"
	storeName   = "counts"
	changelog   = appID + "-" + storeName + "-changelog"
	size        = 10 * time.Second
	advance     = 2 * time.Second
	grace       = 5 * time.Second
)

func main() {
	flag.Parse()
	var err error
	if *child != "" {
		err = runChild()
	} else {
		err = run()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "windows:", err)
		os.Exit(1)
	}
}

// result is what a child reports about its case.
type result struct {
	Records int64         `json:"records"`
	Dur     time.Duration `json:"dur"`
	Output  int64         `json:"output"`
	Log     int64         `json:"changelog"`
	Late    int64         `json:"late"`
	HWM     int64         `json:"hwm"` // peak RSS in bytes (VmHWM)
}

func (r result) rate() float64 { return float64(r.Records) / r.Dur.Seconds() }

type spec struct {
	name string
	kind string
	emit string
}

var specs = []spec{
	{"tumbling-updates", "tumbling", "updates"},
	{"hopping-updates", "hopping", "updates"},
	{"tumbling-cached", "tumbling", "cached"},
	{"hopping-cached", "hopping", "cached"},
	{"tumbling-final", "tumbling", "final"},
	{"hopping-final", "hopping", "final"},
}

func run() error {
	if *records < 1 || *keys < 1 || *rounds < 1 || *partitions < 1 || *batchSize < 1 {
		return errors.New("invalid flags: all counts must be >= 1")
	}
	fmt.Printf("Duality windows benchmarks: %d records, %d keys, event times 1 ms apart, %d partitions, Pebble state, embedded broker, GOMAXPROCS=%d, %d cores\n\n",
		*records, *keys, *partitions, runtime.GOMAXPROCS(0), runtime.NumCPU())
	results := map[string][]result{}
	for round := range *rounds {
		for _, s := range specs {
			r, err := runCase(s)
			if err != nil {
				return err
			}
			results[s.name] = append(results[s.name], r)
			fmt.Fprintf(os.Stderr, "round %d %-18s %9.0f records/s  peak RSS %s\n", round+1, s.name, r.rate(), mib(r.HWM))
			if r.Late != 0 {
				return fmt.Errorf("case %s: %d late records: the input was not produced in event-time order", s.name, r.Late)
			}
		}
	}
	fmt.Fprintln(os.Stderr)
	fmt.Printf("Windowed count per key (window.Count over GroupByKey), tumbling %v and hopping %v every %v, grace %v, end to end:\n", size, size, advance, grace)
	med := map[string]result{}
	for _, s := range specs {
		rs := results[s.name]
		m := medianBy(rs, result.rate)
		med[s.name] = m
		hwm := medianBy(rs, func(r result) float64 { return float64(r.HWM) })
		fmt.Printf("  %-18s %9.0f records/s  output/input %.3f  changelog/input %.3f  late %d  peak RSS %s  (runs: %s)\n",
			s.name, m.rate(), float64(m.Output)/float64(m.Records), float64(m.Log)/float64(m.Records), m.Late, mib(hwm.HWM), rates(rs))
	}
	for _, mode := range []string{"updates", "cached", "final"} {
		t, h := med["tumbling-"+mode], med["hopping-"+mode]
		fmt.Printf("  hopping / tumbling cost (%s): %.2fx time per record\n", mode, t.rate()/h.rate())
	}
	return nil
}

func runCase(s spec) (result, error) {
	exe, err := os.Executable()
	if err != nil {
		return result{}, err
	}
	cmd := exec.Command(exe,
		fmt.Sprintf("-records=%d", *records), fmt.Sprintf("-keys=%d", *keys),
		fmt.Sprintf("-partitions=%d", *partitions), fmt.Sprintf("-batch=%d", *batchSize),
		"-child="+s.kind, "-case-emit="+s.emit)
	if *cpuProfile != "" {
		cmd.Args = append(cmd.Args, "-cpuprofile="+*cpuProfile+"."+s.name)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, io.MultiWriter(os.Stderr, &stderr)
	if err := cmd.Run(); err != nil {
		return result{}, fmt.Errorf("case %s: %w\n%s", s.name, err, stderr.String())
	}
	var r result
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		return result{}, fmt.Errorf("case %s: bad result %q: %w", s.name, stdout.String(), err)
	}
	return r, nil
}

func medianBy(rs []result, f func(result) float64) result {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b result) int {
		switch {
		case f(a) < f(b):
			return -1
		case f(a) > f(b):
			return 1
		}
		return 0
	})
	return s[len(s)/2]
}

func rates(rs []result) string {
	var out []string
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%.0fk", r.rate()/1e3))
	}
	return strings.Join(out, ", ") + " records/s"
}

func mib(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }

// runChild runs one case in this process and prints its result as JSON.
func runChild() (err error) {
	dir, err := os.MkdirTemp("", "duality-windows-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b, err := embedded.Open(filepath.Join(dir, "broker"), embedded.WithCleanupInterval(-1))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, b.Close()) }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, topic := range []string{inputTopic, outputTopic} {
		if err := b.CreateTopic(ctx, topic, broker.TopicConfig{Partitions: int32(*partitions)}); err != nil {
			return err
		}
	}
	var w window.Windows
	switch *child {
	case "tumbling":
		w = window.Tumbling(size, grace)
	case "hopping":
		w = window.Hopping(size, advance, grace)
	default:
		return fmt.Errorf("-child %q: want tumbling or hopping", *child)
	}
	stats := new(window.Stats)
	opts := []stream.Option{window.WithStats(stats)}
	switch *caseEmit {
	case "updates":
	case "cached":
		opts = append(opts, window.CacheUpdates())
	case "final":
		opts = append(opts, window.EmitOnWindowClose())
	default:
		return fmt.Errorf("-case-emit %q: want updates, cached or final", *caseEmit)
	}
	sb := stream.NewBuilder()
	g := stream.GroupByKey(stream.From(sb, inputTopic, codec.String(), codec.Bytes()))
	window.Count(g, w, storeName, opts...).ToStream().To(outputTopic)
	topo, err := sb.Build()
	if err != nil {
		return err
	}
	app, err := duality.New(appID, topo, b, duality.StateDir(filepath.Join(dir, "state")))
	if err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	errc := make(chan error, 1)
	start := time.Now()
	go func() { errc <- app.Run(runCtx) }()
	if err := produce(ctx, b, *records, *keys); err != nil {
		stop()
		return errors.Join(err, <-errc)
	}
	if err := waitCommitted(ctx, b, errc, int64(*records)); err != nil {
		stop()
		return errors.Join(err, <-errc)
	}
	r := result{Records: int64(*records), Dur: time.Since(start), Late: stats.LateRecords()}
	stop()
	if err := <-errc; err != nil {
		return err
	}
	if r.Output, err = endOffsets(ctx, b, outputTopic); err != nil {
		return err
	}
	if r.Log, err = endOffsets(ctx, b, changelog); err != nil {
		return err
	}
	if r.HWM, err = proc.Status("VmHWM"); err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(r)
}

// produce appends n records over keys distinct keys, partitioned by key;
// record i has event time base + i ms. One producer appends them in order
// (concurrent producers would drift apart by more than the grace period
// on a loaded machine, making records late).
func produce(ctx context.Context, b broker.Broker, n, keys int) error {
	base := time.Now().Add(-24 * time.Hour).Truncate(time.Hour)
	value := []byte("v")
	batch := make([]broker.Record, 0, *batchSize)
	for i := range n {
		batch = append(batch, broker.Record{Topic: inputTopic, Partition: broker.PartitionByKey,
			Key: fmt.Appendf(nil, "key-%08d", (i%keys)*7919%keys), Value: value, Timestamp: base.Add(time.Duration(i) * time.Millisecond)})
		if len(batch) == *batchSize || i == n-1 {
			if err := b.Produce(ctx, batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	return nil
}

// waitCommitted returns once the app has committed the offsets of all n
// input records; its output and changelog records are committed in the
// same atomic step.
func waitCommitted(ctx context.Context, b broker.Broker, errc <-chan error, n int64) error {
	tps := make([]broker.TopicPartition, *partitions)
	for p := range tps {
		tps[p] = broker.TopicPartition{Topic: inputTopic, Partition: int32(p)}
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		committed, err := b.FetchOffsets(ctx, appID, tps)
		if err != nil {
			return err
		}
		var sum int64
		for _, off := range committed {
			sum += off
		}
		if sum == n {
			return nil
		}
		select {
		case err := <-errc:
			return fmt.Errorf("app stopped early: %v", err)
		case <-tick.C:
		}
	}
}

func endOffsets(ctx context.Context, b broker.Broker, topic string) (int64, error) {
	info, err := b.DescribeTopic(ctx, topic)
	if err != nil {
		return 0, err
	}
	var total int64
	for p := range info.Config.Partitions {
		o, err := b.ListOffsets(ctx, topic, p)
		if err != nil {
			return 0, err
		}
		total += o.Latest
	}
	return total, nil
}
