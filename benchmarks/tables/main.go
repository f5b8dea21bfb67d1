// Command tables measures Duality's tables and state on this machine, end
// to end through the real runtime (duality.New and Run) on the embedded
// broker, with state in Pebble (duality.StateDir).
//
// Keyed count: table.Count over stream.GroupByKey, its changes written to
// an output topic, for 1M input records over 10k and over 1M distinct
// keys, with the record cache on (the default) and off: records/s from the
// start of producing the input to the commit of its last offset (with its
// output and changelog records), changelog and output records written per
// input record (read from the topics' end offsets on the broker; a case
// fails if the app's metrics disagree), and the peak RSS of the process.
//
// Restore: a 1M-key count store rebuilt from its changelog into an empty
// state directory and into memory, in records/s, against the target of
// 1,000,000 records/s.
//
// Memory, with -keys10m: the peak RSS of counting 10M distinct keys, which
// must stay under 1 GiB.
//
//	go run ./benchmarks/tables
//	go run ./benchmarks/tables -rounds 5 -only count
//	go run ./benchmarks/tables -keys10m -memprofile /tmp/heap.pprof
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
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/store"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
)

var (
	records     = flag.Int("records", 1_000_000, "input records of a count case")
	keysFlag    = flag.String("keys", "10000,1000000", "comma-separated distinct key counts of the count cases")
	restoreKeys = flag.Int("restore-keys", 1_000_000, "keys of the store rebuilt by the restore cases")
	rounds      = flag.Int("rounds", 3, "interleaved rounds")
	partitions  = flag.Int("partitions", 4, "partitions per topic")
	valueSize   = flag.Int("value", 16, "input value size in bytes")
	batchSize   = flag.Int("batch", 1000, "records per Produce call")
	producers   = flag.Int("producers", 2, "concurrent producers of the input")
	only        = flag.String("only", "", "run only one suite: count or restore")
	cacheModes  = flag.String("cache", "on,off", "record cache settings of the count cases: on, off or both (on,off)")
	keys10m     = flag.Bool("keys10m", false, "instead of the other cases, count 10M records over 10M distinct keys once and check that the peak RSS stays under 1 GiB")
	cpuProfile  = flag.String("cpuprofile", "", "write a CPU profile of each case to this file with the case's name appended")
	memProfile  = flag.String("memprofile", "", "write a heap profile of each case, taken when its RSS peaked, to this file with the case's name appended")
	keep        = flag.Bool("keep", false, "keep the data directories of the cases (printed)")
	stateCache  = flag.Int64("state-cache-mib", 0, "block cache size in MiB of the state's Pebble (store.WithBlockCacheSize; 0: the store's default)")

	// Set by the parent for a child process.
	child     = flag.String("child", "", "internal: run one case in this process (count or restore) and print its result as JSON")
	caseKeys  = flag.Int("case-keys", 0, "internal: distinct keys of the case")
	caseState = flag.String("case-state", "pebble", "internal: state of a restore case (pebble or memory)")
	caseCache = flag.Bool("case-cache", true, "internal: record cache of a count case (default size, or off)")
)

const (
	appID       = "bench"
	inputTopic  = "input"
	outputTopic = "counts"
	storeName   = "counts"
	changelog   = appID + "-" + storeName + "-changelog"
	gib         = 1 << 30
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
		fmt.Fprintln(os.Stderr, "tables:", err)
		os.Exit(1)
	}
}

// result is what a child reports about its case.
type result struct {
	Case     string        `json:"case"`
	Records  int64         `json:"records"`            // input records, or changelog records restored
	Dur      time.Duration `json:"dur"`                // end to end, or restoration
	CPU      time.Duration `json:"cpu"`                // user+system CPU time of the process over Dur
	Produce  time.Duration `json:"produce,omitempty"`  // producing the input (count cases)
	Output   int64         `json:"output,omitempty"`   // records in the output topic
	Log      int64         `json:"changelog"`          // records in the changelog topic
	HWM      int64         `json:"hwm"`                // peak RSS in bytes (VmHWM)
	Heap     uint64        `json:"heap"`               // Go heap in use at the end
	GoSys    uint64        `json:"gosys"`              // memory obtained by the Go runtime
	StateDir int64         `json:"statedir,omitempty"` // bytes in the state directory at the end
	Dir      string        `json:"dir,omitempty"`      // data directory, with -keep
}

func (r result) rate() float64 { return float64(r.Records) / r.Dur.Seconds() }

// cpuPerRecord is the CPU time per record in µs: less sensitive than the
// rate to other processes competing for the cores.
func (r result) cpuPerRecord() float64 { return float64(r.CPU.Microseconds()) / float64(r.Records) }

// spec is a case the parent runs in a child.
type spec struct {
	name string
	args []string
}

func run() error {
	keys, err := parseKeys(*keysFlag)
	if err != nil {
		return err
	}
	if *cacheModes != "on,off" && *cacheModes != "on" && *cacheModes != "off" {
		return fmt.Errorf("-cache %q: want on, off or on,off", *cacheModes)
	}
	if *stateCache < 0 {
		return errors.New("-state-cache-mib: must not be negative")
	}
	if *records < *partitions || *rounds < 1 || *partitions < 1 || *valueSize < 1 || *batchSize < 1 || *producers < 1 || *restoreKeys < *partitions {
		return errors.New("invalid flags: all counts must be >= 1, -records and -restore-keys >= -partitions")
	}
	cache := "default block cache"
	if *stateCache > 0 {
		cache = fmt.Sprintf("block cache %d MiB", *stateCache)
	}
	fmt.Printf("Duality tables benchmarks: %d partitions, %d-byte values, Pebble state (%s), embedded broker (fsync per commit), GOMAXPROCS=%d, %d cores\n\n",
		*partitions, *valueSize, cache, runtime.GOMAXPROCS(0), runtime.NumCPU())
	if *keys10m {
		return run10M()
	}
	var specs []spec
	if *only == "" || *only == "count" {
		for _, k := range keys {
			specs = append(specs, countSpecs(k, *records)...)
		}
	}
	if *only == "" || *only == "restore" {
		for _, st := range []string{"pebble", "memory"} {
			specs = append(specs, spec{name: "restore-" + st, args: []string{"-child=restore", "-case-state=" + st}})
		}
	}
	if len(specs) == 0 {
		return fmt.Errorf("-only %q: want count or restore", *only)
	}
	results := map[string][]result{}
	for round := range *rounds {
		for _, s := range specs {
			r, err := runCase(s, round)
			if err != nil {
				return err
			}
			results[s.name] = append(results[s.name], r)
			fmt.Fprintf(os.Stderr, "round %d %-26s %10.0f records/s  peak RSS %s\n", round+1, s.name, r.rate(), mib(r.HWM))
		}
	}
	fmt.Fprintln(os.Stderr)
	if *only == "" || *only == "count" {
		reportCount(keys, results)
	}
	if *only == "" || *only == "restore" {
		reportRestore(results)
	}
	return nil
}

func parseKeys(s string) ([]int, error) {
	var keys []int
	for f := range strings.SplitSeq(s, ",") {
		k, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || k < 1 {
			return nil, fmt.Errorf("-keys %q: want positive integers separated by commas", s)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// countSpecs returns the count cases for keys distinct keys: with the
// record cache on (its default size) and off.
func countSpecs(keys, n int) []spec {
	var specs []spec
	for cache := range strings.SplitSeq(*cacheModes, ",") {
		specs = append(specs, spec{
			name: fmt.Sprintf("count-%s-keys-cache-%s", short(keys), cache),
			args: []string{"-child=count", fmt.Sprintf("-case-keys=%d", keys), fmt.Sprintf("-records=%d", n), fmt.Sprintf("-case-cache=%v", cache == "on")},
		})
	}
	return specs
}

// runCase runs s in a child process and returns its result.
func runCase(s spec, round int) (result, error) {
	exe, err := os.Executable()
	if err != nil {
		return result{}, err
	}
	args := append([]string{
		fmt.Sprintf("-partitions=%d", *partitions), fmt.Sprintf("-value=%d", *valueSize),
		fmt.Sprintf("-batch=%d", *batchSize), fmt.Sprintf("-producers=%d", *producers),
		fmt.Sprintf("-restore-keys=%d", *restoreKeys), fmt.Sprintf("-keep=%v", *keep),
		fmt.Sprintf("-state-cache-mib=%d", *stateCache),
	}, s.args...)
	suffix := fmt.Sprintf(".%s.%d", s.name, round+1)
	if *cpuProfile != "" {
		args = append(args, "-cpuprofile="+*cpuProfile+suffix)
	}
	if *memProfile != "" {
		args = append(args, "-memprofile="+*memProfile+suffix)
	}
	cmd := exec.Command(exe, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, io.MultiWriter(os.Stderr, &stderr)
	if err := cmd.Run(); err != nil {
		return result{}, fmt.Errorf("case %s: %w\n%s", s.name, err, stderr.String())
	}
	var r result
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		return result{}, fmt.Errorf("case %s: bad result %q: %w", s.name, stdout.String(), err)
	}
	if r.Dir != "" {
		fmt.Fprintf(os.Stderr, "case %s kept its data in %s\n", s.name, r.Dir)
	}
	return r, nil
}

// medianBy returns the result with the median of f.
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

func median(rs []result) result { return medianBy(rs, result.rate) }

func rates(rs []result) string {
	var out []string
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%.0fk", r.rate()/1e3))
	}
	return strings.Join(out, ", ")
}

func mib(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }

func short(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return strconv.Itoa(n)
}

func reportCount(keys []int, results map[string][]result) {
	fmt.Printf("Keyed count (table.Count over GroupByKey, changes to an output topic), %d input records produced while the app runs, end to end:\n", *records)
	for _, k := range keys {
		var meds []result
		for _, s := range countSpecs(k, *records) {
			rs := results[s.name]
			m := median(rs)
			meds = append(meds, m)
			hwm := medianBy(rs, func(r result) float64 { return float64(r.HWM) })
			cpu := medianBy(rs, func(r result) float64 { return r.cpuPerRecord() })
			fmt.Printf("  %-28s %8.0f records/s  CPU %5.2f µs/record  changelog/input %.3f  output/input %.3f  peak RSS %s  (runs: %s records/s; the producers finished after %v)\n",
				s.name, m.rate(), cpu.cpuPerRecord(), float64(m.Log)/float64(m.Records), float64(m.Output)/float64(m.Records),
				mib(hwm.HWM), rates(rs), m.Produce.Round(time.Millisecond))
		}
		if len(meds) != 2 {
			continue
		}
		on, off := meds[0], meds[1]
		fmt.Printf("  %-28s records/s %.2fx, changelog records %.3fx (medians)\n",
			fmt.Sprintf("%s keys, cache on / off:", short(k)), on.rate()/off.rate(), float64(on.Log)/float64(off.Log))
	}
	fmt.Println()
}

func reportRestore(results map[string][]result) {
	fmt.Printf("Restore: a %d-key count store rebuilt from its changelog (%d partitions) before the app processes input:\n", *restoreKeys, *partitions)
	for _, st := range []string{"pebble", "memory"} {
		rs := results["restore-"+st]
		m := median(rs)
		met := "met"
		if m.rate() < 1e6 {
			met = "NOT met"
		}
		cpu := medianBy(rs, func(r result) float64 { return r.cpuPerRecord() })
		fmt.Printf("  %-22s %9.0f records/s  CPU %4.2f µs/record  (%d records in %v; runs: %s records/s)  target 1,000,000 records/s: %s\n",
			"into "+st, m.rate(), cpu.cpuPerRecord(), m.Records, m.Dur.Round(time.Millisecond), rates(rs), met)
	}
	fmt.Println()
}

func run10M() error {
	const n = 10_000_000
	start := time.Now()
	r, err := runCase(spec{name: "count-10M-keys", args: []string{"-child=count", fmt.Sprintf("-case-keys=%d", n), fmt.Sprintf("-records=%d", n)}}, 0) // record cache on, default size
	if err != nil {
		return err
	}
	verdict := "under 1 GiB: met"
	if r.HWM >= gib {
		verdict = "1 GiB or more: NOT met"
	}
	fmt.Printf("Memory: counting %d records over %d distinct keys (Pebble state, record cache of the default size):\n", n, n)
	fmt.Printf("  peak RSS %s (%s)  Go heap in use at the end %s, Go runtime total %s, state directory %s\n",
		mib(r.HWM), verdict, mib(int64(r.Heap)), mib(int64(r.GoSys)), mib(r.StateDir))
	fmt.Printf("  %.0f records/s end to end, CPU %.2f µs/record, changelog/input %.3f, output/input %.3f; the case took %v\n",
		r.rate(), r.cpuPerRecord(), float64(r.Log)/float64(r.Records), float64(r.Output)/float64(r.Records), time.Since(start).Round(time.Second))
	return nil
}

// runChild runs one case in this process and prints its result as JSON.
func runChild() (err error) {
	dir, err := os.MkdirTemp("", "duality-tables-")
	if err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}
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
	stopPeak := watchPeak(*memProfile)
	var r result
	switch *child {
	case "count":
		r, err = countCase(ctx, b, dir)
	case "restore":
		r, err = restoreCase(ctx, b, dir)
	default:
		err = fmt.Errorf("-child %q: want count or restore", *child)
	}
	stopPeak()
	if err != nil {
		return err
	}
	if r.Log, err = endOffsets(ctx, b, changelog); err != nil {
		return err
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r.Heap, r.GoSys = ms.HeapInuse, ms.Sys
	if r.HWM, err = proc.Status("VmHWM"); err != nil {
		return err
	}
	if r.StateDir, err = dirSize(filepath.Join(dir, "state")); err != nil {
		return err
	}
	if *keep {
		r.Dir = dir
	}
	return json.NewEncoder(os.Stdout).Encode(r)
}

// stateDir is the StateDir option of the cases: Pebble state under dir,
// with the block cache size of -state-cache-mib.
func stateDir(dir string) duality.Option {
	var opts []store.Option
	if *stateCache > 0 {
		opts = append(opts, store.WithBlockCacheSize(*stateCache<<20))
	}
	return duality.StateDir(filepath.Join(dir, "state"), opts...)
}

// profileCPU starts the CPU profile of the case's measured part, when
// asked for, and returns the function that stops it.
func profileCPU() (stop func(), err error) {
	if *cpuProfile == "" {
		return func() {}, nil
	}
	f, err := os.Create(*cpuProfile)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// topology is the count every case runs: the input grouped by its key,
// counted into the store "counts", its changes written to "counts".
func topology() (*stream.Topology, error) {
	sb := stream.NewBuilder()
	in := stream.From(sb, inputTopic, codec.String(), codec.Bytes())
	g := stream.GroupByKey(in)
	table.Count(g, storeName).ToStream().To(outputTopic)
	return sb.Build()
}

// key returns the key of input record i: keys distinct keys, visited in a
// scrambled order (i*7919 mod keys; 7919 is prime and divides none of the
// key counts used) so the store sees them out of order.
func key(dst []byte, i, keys int) []byte {
	return fmt.Appendf(dst, "key-%08d", (i%keys)*7919%keys)
}

// countCase runs the count app while the input is produced, and returns
// once the group's committed offsets reach the end of the input.
func countCase(ctx context.Context, b *embedded.Broker, dir string) (result, error) {
	n, keys := *records, *caseKeys
	if keys < 1 || keys%7919 == 0 {
		return result{}, fmt.Errorf("-case-keys %d: want a positive count not divisible by 7919", keys)
	}
	topo, err := topology()
	if err != nil {
		return result{}, err
	}
	opts := []duality.Option{stateDir(dir)}
	if !*caseCache {
		opts = append(opts, duality.CacheMaxBytes(0))
	}
	app, err := duality.New(appID, topo, b, opts...)
	if err != nil {
		return result{}, err
	}
	stopProfile, err := profileCPU()
	if err != nil {
		return result{}, err
	}
	defer stopProfile()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	errc := make(chan error, 1)
	start, cpu0 := time.Now(), proc.CPUTime()
	go func() { errc <- app.Run(runCtx) }()
	produced := make(chan error, 1)
	var produceDur atomic.Int64
	go func() {
		err := produce(ctx, b, n, keys)
		produceDur.Store(int64(time.Since(start)))
		produced <- err
	}()
	if err := <-produced; err != nil {
		stop()
		return result{}, errors.Join(err, <-errc)
	}
	if err := waitCommitted(ctx, b, errc, int64(n)); err != nil {
		stop()
		return result{}, errors.Join(err, <-errc)
	}
	d, cpu := time.Since(start), proc.CPUTime()-cpu0
	stop()
	if err := <-errc; err != nil {
		return result{}, err
	}
	out, err := endOffsets(ctx, b, outputTopic)
	if err != nil {
		return result{}, err
	}
	// The figures come from the broker; the app's metrics must agree.
	logged, err := endOffsets(ctx, b, changelog)
	if err != nil {
		return result{}, err
	}
	if m := app.Metrics(); m.ChangelogRecords != uint64(logged) || m.RecordsProduced != uint64(logged+out) {
		return result{}, fmt.Errorf("the app's metrics count %d changelog and %d produced records, the broker holds %d and %d",
			m.ChangelogRecords, m.RecordsProduced, logged, logged+out)
	}
	return result{Case: "count", Records: int64(n), Dur: d, CPU: cpu, Produce: time.Duration(produceDur.Load()), Output: out}, nil
}

// produce appends n input records over keys distinct keys with the
// configured number of producers, partitioned by key.
func produce(ctx context.Context, b broker.Broker, n, keys int) error {
	value := bytes.Repeat([]byte{'v'}, *valueSize)
	var wg sync.WaitGroup
	errs := make(chan error, *producers)
	for w := range *producers {
		wg.Go(func() {
			batch := make([]broker.Record, 0, *batchSize)
			for i := w; i < n; i += *producers {
				batch = append(batch, broker.Record{Topic: inputTopic, Partition: broker.PartitionByKey, Key: key(nil, i, keys), Value: value})
				if len(batch) == *batchSize {
					if err := b.Produce(ctx, batch); err != nil {
						errs <- err
						return
					}
					batch = batch[:0]
				}
			}
			if len(batch) > 0 {
				if err := b.Produce(ctx, batch); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// waitCommitted returns once the app has committed the offsets of all n
// input records; on the embedded broker its output and changelog records
// are committed in the same atomic step.
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

// restoreCase writes the changelog a count of restoreKeys distinct keys
// leaves behind (each key once, with an int64 count, partitioned by key
// like the count's own changelog records), then starts the count app on
// empty state and times it from Run until every changelog partition
// reported the end of its restoration through the OnRestore hook.
func restoreCase(ctx context.Context, b *embedded.Broker, dir string) (result, error) {
	n := *restoreKeys
	if err := b.CreateTopic(ctx, changelog, broker.TopicConfig{Partitions: int32(*partitions), Cleanup: broker.CleanupCompact}); err != nil {
		return result{}, err
	}
	value, err := codec.Int64().Append(nil, 1)
	if err != nil {
		return result{}, err
	}
	for i := 0; i < n; i += *batchSize {
		batch := make([]broker.Record, 0, *batchSize)
		for j := i; j < min(n, i+*batchSize); j++ {
			batch = append(batch, broker.Record{Topic: changelog, Partition: broker.PartitionByKey, Key: key(nil, j, n), Value: value})
		}
		if err := b.Produce(ctx, batch); err != nil {
			return result{}, err
		}
	}
	var parts int
	for p := range int32(*partitions) {
		offs, err := b.ListOffsets(ctx, changelog, p)
		if err != nil {
			return result{}, err
		}
		if offs.Latest > offs.Earliest {
			parts++
		}
	}
	topo, err := topology()
	if err != nil {
		return result{}, err
	}
	var restored atomic.Int64
	var finished atomic.Int64
	done := make(chan struct{})
	opts := []duality.Option{duality.OnRestore(func(p duality.RestoreProgress) {
		if p.Done {
			restored.Add(p.Restored)
			if finished.Add(1) == int64(parts) {
				close(done)
			}
		}
	})}
	switch *caseState {
	case "pebble":
		opts = append(opts, stateDir(dir))
	case "memory":
	default:
		return result{}, fmt.Errorf("-case-state %q: want pebble or memory", *caseState)
	}
	app, err := duality.New(appID, topo, b, opts...)
	if err != nil {
		return result{}, err
	}
	stopProfile, err := profileCPU()
	if err != nil {
		return result{}, err
	}
	defer stopProfile()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	errc := make(chan error, 1)
	start, cpu0 := time.Now(), proc.CPUTime()
	go func() { errc <- app.Run(runCtx) }()
	select {
	case <-done:
	case err := <-errc:
		return result{}, fmt.Errorf("app stopped during the restoration: %v", err)
	}
	d, cpu := time.Since(start), proc.CPUTime()-cpu0
	stop()
	if err := <-errc; err != nil {
		return result{}, err
	}
	if got := restored.Load(); got != int64(n) {
		return result{}, fmt.Errorf("restored %d records, want %d", got, n)
	}
	return result{Case: "restore", Records: restored.Load(), Dur: d, CPU: cpu}, nil
}

// endOffsets returns the sum of topic's end offsets: the number of records
// ever appended to it.
func endOffsets(ctx context.Context, b broker.Broker, topic string) (int64, error) {
	var sum int64
	for p := range int32(*partitions) {
		offs, err := b.ListOffsets(ctx, topic, p)
		if err != nil {
			return 0, fmt.Errorf("end offsets of %s: %w", topic, err)
		}
		sum += offs.Latest
	}
	return sum, nil
}

// watchPeak samples the RSS every 200 ms and, with a profile path, writes
// a heap profile each time the RSS exceeds the last profiled peak by 5%,
// so the file ends up holding the heap near the process's peak. The
// returned function stops the sampling and waits for it.
func watchPeak(path string) (stop func()) {
	if path == "" {
		return func() {}
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		var profiled int64
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
			}
			rss, err := proc.Status("VmRSS")
			if err != nil || rss < profiled+profiled/20 {
				continue
			}
			profiled = rss
			if f, err := os.Create(path); err == nil {
				_ = pprof.Lookup("heap").WriteTo(f, 0)
				f.Close()
			}
			fmt.Fprintf(os.Stderr, "heap profile at RSS %s written to %s\n", mib(rss), path)
		}
	})
	return func() { close(quit); wg.Wait() }
}

// dirSize returns the bytes of the files under dir (0 if it is missing).
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	return n, err
}
