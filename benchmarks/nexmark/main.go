// Command nexmark runs the Nexmark queries on Duality, each over a bounded
// input to its end (duality.App.RunToEnd on the embedded broker, state in
// Pebble), checks each query's final output against a plain-Go reference
// computed from the same events, and prints per query:
//
//	result query=q5 system=duality events=1000000 ev_per_s=... ev_per_s_per_core=... allocs_per_event=... rss_mb=... outputs=... check=ok
//
// ev_per_s is the events divided by the wall-clock time of RunToEnd (from
// its start to its return: startup, processing every stage, the end of the
// windows); ev_per_s_per_core divides the events by the CPU time (user +
// system) the process used meanwhile; allocs_per_event the heap
// allocations of the process meanwhile (runtime.MemStats.Mallocs) per
// event; rss_mb is the peak RSS during the run
// (the embedded broker included: it runs in the process); outputs is the
// number of records in the query's output topic. Generating and producing
// the input is not timed. Every query runs in a child process (this program
// re-executed), so that its peak RSS and CPU time are its own.
//
// The stateless queries q0, q1 and q2 also run their ceiling, in a child
// process right after the query's: a plain-Go loop doing the same work
// over the event records it fetches from the same embedded broker, with
// no DSL and no runtime (queries.RunPlain), its output checked against
// the same reference. It prints a result line with system=plain and the
// ratio of the query to it (issue 12's target: at least 0.7). With
// -rounds n, each query and its ceiling run n times, interleaved, and
// the lines give the runs with the median events/s:
//
//	result query=q0 system=plain events=1000000 ev_per_s=... ev_per_s_per_core=... allocs_per_event=... rss_mb=... outputs=... check=ok
//	ratio query=q0 duality/plain=... per_core_duality/plain=... target=0.7 met=yes
//
//	go run ./benchmarks/nexmark                         # every query, 1M events
//	go run ./benchmarks/nexmark -events 200000 -queries q0,q5
//	go run ./benchmarks/nexmark -json /tmp/nexmark      # also write events and outputs as JSON lines
//	go run ./benchmarks/nexmark -queries q4 -cpuprofile /tmp/cpu -memprofile /tmp/mem
//	go tool pprof -sample_index=alloc_objects -base /tmp/mem.q4.before /tmp/mem.q4  # the run's allocations
//
// The generator and the queries are in internal/gen and internal/queries.
// With -json, events.jsonl holds one event per line,
// {"kind":"bid","bid":{...}} (and "person", "auction"), with camelCase
// field names, times in epoch milliseconds and prices in cents, and
// <query>.jsonl the query's final output, one record per line, sorted;
// windowed results carry windowStart and windowEnd (epoch ms, end
// exclusive). A mismatch with the reference, or a record dropped
// as late, makes the command exit 1.
package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/duality-streams/duality/benchmarks/internal/proc"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/duality-streams/duality/benchmarks/nexmark/internal/gen"
	"github.com/duality-streams/duality/benchmarks/nexmark/internal/queries"
)

var (
	events     = flag.Int64("events", 1_000_000, "events of the input")
	queryList  = flag.String("queries", "", "comma-separated queries to run (default: all: q0,q1,q2,q3,q4,q5,q6,q7,q8,q11,q13,q20)")
	jsonDir    = flag.String("json", "", "if set, write the events (events.jsonl) and each query's final output (<query>.jsonl) as JSON lines into this directory")
	seed       = flag.Uint64("seed", 1, "generator seed")
	rate       = flag.Int("rate", 10_000, "events per second of event time")
	partitions = flag.Int("partitions", 2, "partitions of the events topic (and of the topics the queries create)")
	workers    = flag.Int("workers", 0, "duality.Workers (0: GOMAXPROCS)")
	grace      = flag.Duration("grace", 0, "grace of the windows and joins, in event time (default: the input's event-time span plus 10s, so that no record is late)")
	cpuProfile = flag.String("cpuprofile", "", "write a CPU profile of each query's run to this file with the query's name appended")
	memProfile = flag.String("memprofile", "", "write the allocation profile of each query's process to this file with the query's name appended, taken at the end of the run, and the one taken at its start with .before appended (go tool pprof -base f.before f: the run's allocations)")

	noPlain = flag.Bool("noplain", false, "do not run the plain-Go ceilings of q0, q1 and q2")
	rounds  = flag.Int("rounds", 1, "runs of each query (and of its ceiling, interleaved with it); result lines give the run with the median events/s")

	child      = flag.String("child", "", "internal: run this one query and print its result as JSON")
	childPlain = flag.Bool("plain", false, "internal: the child runs the query's plain-Go ceiling")
)

// targets are the per-core targets of issue 12, in events/s per core.
var targets = map[string]float64{"q0": 400e3, "q1": 400e3, "q2": 400e3, "q5": 75e3, "q7": 25e3, "q8": 160e3}

// ceilingTarget is issue 12's target for stateless work: the DSL
// pipeline at least this fraction of its plain-Go ceiling's events/s.
const ceilingTarget = 0.7

func main() {
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	if *child != "" {
		err = runChild(ctx, *child)
	} else {
		err = run(ctx)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nexmark:", err)
		os.Exit(1)
	}
}

// result is what a child reports.
type result struct {
	Query   string        `json:"query"`
	Events  int64         `json:"events"`
	Produce time.Duration `json:"produce"`
	Wall    time.Duration `json:"wall"`
	CPU     time.Duration `json:"cpu"`
	HWM     int64         `json:"hwm"` // peak RSS during the run, bytes
	Outputs int64         `json:"outputs"`
	Rows    int           `json:"rows"`
	Late    int64         `json:"late"`
	Mallocs uint64        `json:"mallocs"` // heap allocations during the run
}

func run(ctx context.Context) error {
	if *events < 1 || *partitions < 1 || *workers < 0 || *rounds < 1 {
		return errors.New("invalid flags: -events, -partitions and -rounds must be at least 1, -workers at least 0")
	}
	var names []string
	if *queryList == "" {
		for _, q := range queries.All() {
			names = append(names, q.Name)
		}
	} else {
		for n := range strings.SplitSeq(*queryList, ",") {
			n = strings.TrimSpace(n)
			if _, ok := queries.ByName(n); !ok {
				return fmt.Errorf("-queries: unknown query %q", n)
			}
			names = append(names, n)
		}
	}
	g, err := gen.New(gen.Config{Seed: *seed, Rate: *rate})
	if err != nil {
		return err
	}
	if *jsonDir != "" {
		if err := writeEvents(g); err != nil {
			return err
		}
	}
	if *grace == 0 {
		// Over a backlog, the tasks that read the events partitions drift
		// apart in event time (as far as tens of seconds over 1M events),
		// so a window or join behind a repartition topic sees records
		// that far behind its stream time: with a grace of the whole
		// input, none is late, as in a batch engine.
		*grace = g.EventSpan(*events) + 10*time.Second
	}
	fmt.Printf("Nexmark on Duality: %d events (seed %d, %d events/s of event time), %d partitions, grace %v, embedded broker, Pebble state, GOMAXPROCS=%d, %d cores, load average %s\n",
		*events, *seed, *rate, *partitions, *grace, runtime.GOMAXPROCS(0), runtime.NumCPU(), loadAvg())
	var failed []string
	for _, name := range names {
		// Rounds of the query and of its ceiling, interleaved: query,
		// ceiling, query, ceiling, ...
		systems := []bool{false}
		if q, _ := queries.ByName(name); q.Plain != nil && !*noPlain {
			systems = append(systems, true)
		}
		runs := make([][]result, len(systems))
	rounds:
		for range *rounds {
			for i, plain := range systems {
				r, err := runCase(ctx, name, plain)
				if err != nil {
					sys := "duality"
					if plain {
						sys = "plain"
					}
					fmt.Fprintf(os.Stderr, "%s (%s): %v\n", name, sys, err)
					fmt.Printf("result query=%s system=%s error=%q\n", name, sys, firstLine(err.Error()))
					failed = append(failed, name+" ("+sys+")")
					runs = nil
					break rounds
				}
				runs[i] = append(runs[i], r)
			}
		}
		if ctx.Err() != nil {
			break
		}
		if runs == nil {
			continue
		}
		r := medianRate(runs[0])
		line := resultLine(name, "duality", r, len(runs[0]))
		if t, ok := targets[name]; ok {
			line += fmt.Sprintf(" target_per_core=%.0f of_target=%.2f", t, r.perCore()/t)
		}
		fmt.Println(line)
		if len(runs) < 2 {
			continue
		}
		p := medianRate(runs[1])
		fmt.Println(resultLine(name, "plain", p, len(runs[1])))
		ratio := r.rate() / p.rate()
		met := "yes"
		if ratio < ceilingTarget {
			met = "no"
		}
		fmt.Printf("ratio query=%s duality/plain=%.2f per_core_duality/plain=%.2f target=%g met=%s\n",
			name, ratio, r.perCore()/p.perCore(), ceilingTarget, met)
	}
	fmt.Printf("load average at the end: %s\n", loadAvg())
	if len(failed) > 0 {
		return fmt.Errorf("failed: %s", strings.Join(failed, ", "))
	}
	return nil
}

func (r result) rate() float64    { return float64(r.Events) / r.Wall.Seconds() }
func (r result) perCore() float64 { return float64(r.Events) / r.CPU.Seconds() }

// resultLine is the result line of the median run r of n runs of a
// query on a system; ev_per_s_per_core is r's own, not a median.
func resultLine(query, system string, r result, n int) string {
	line := fmt.Sprintf("result query=%s system=%s events=%d ev_per_s=%.0f ev_per_s_per_core=%.0f allocs_per_event=%.2f rss_mb=%.0f outputs=%d check=ok",
		query, system, r.Events, r.rate(), r.perCore(), float64(r.Mallocs)/float64(r.Events), float64(r.HWM)/(1<<20), r.Outputs)
	if n > 1 {
		line += fmt.Sprintf(" runs=%d", n)
	}
	return line
}

// medianRate returns the run of rs with the median events/s.
func medianRate(rs []result) result {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b result) int { return cmp.Compare(a.rate(), b.rate()) })
	return s[len(s)/2]
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// runCase runs query name, or its plain-Go ceiling, in a child process.
func runCase(ctx context.Context, name string, plain bool) (result, error) {
	exe, err := os.Executable()
	if err != nil {
		return result{}, err
	}
	cmd := exec.CommandContext(ctx, exe, "-child="+name,
		fmt.Sprintf("-events=%d", *events), fmt.Sprintf("-seed=%d", *seed), fmt.Sprintf("-rate=%d", *rate),
		fmt.Sprintf("-partitions=%d", *partitions), fmt.Sprintf("-workers=%d", *workers),
		"-grace="+grace.String(), "-json="+*jsonDir, fmt.Sprintf("-plain=%v", plain))
	suffix := name
	if plain {
		suffix += ".plain"
	}
	if *cpuProfile != "" {
		cmd.Args = append(cmd.Args, "-cpuprofile="+*cpuProfile+"."+suffix)
	}
	if *memProfile != "" {
		cmd.Args = append(cmd.Args, "-memprofile="+*memProfile+"."+suffix)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, io.MultiWriter(os.Stderr, &stderr)
	if err := cmd.Run(); err != nil {
		return result{}, fmt.Errorf("%w\n%s", err, stderr.String())
	}
	var r result
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		return result{}, fmt.Errorf("bad result %q: %w", stdout.String(), err)
	}
	return r, nil
}

// runChild runs one query in this process, checks its output and prints
// its result as JSON.
func runChild(ctx context.Context, name string) (err error) {
	q, ok := queries.ByName(name)
	if !ok {
		return fmt.Errorf("unknown query %q", name)
	}
	dir, err := os.MkdirTemp("", "duality-nexmark-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg := gen.Config{Seed: *seed, Rate: *rate}
	var prof *os.File
	if *cpuProfile != "" {
		if prof, err = os.Create(*cpuProfile); err != nil {
			return err
		}
		defer prof.Close()
	}
	var hwm int64
	var mem0, mem1 runtime.MemStats
	var profErr error
	runQuery := queries.Run
	if *childPlain {
		runQuery = queries.RunPlain
	}
	res, err := runQuery(ctx, q, queries.RunConfig{
		Dir: dir, Gen: cfg, Events: *events, Partitions: *partitions, Grace: *grace, Workers: *workers,
		BeforeRun: func() {
			// The peak RSS of the run, not of producing the input (Linux:
			// writing 5 to clear_refs resets VmHWM).
			proc.ResetPeak()
			if *memProfile != "" {
				profErr = writeAllocs(*memProfile + ".before")
			}
			runtime.ReadMemStats(&mem0)
			if prof != nil {
				_ = pprof.StartCPUProfile(prof)
			}
		},
		AfterRun: func() {
			pprof.StopCPUProfile()
			runtime.ReadMemStats(&mem1)
			if *memProfile != "" {
				profErr = errors.Join(profErr, writeAllocs(*memProfile))
			}
			var err error
			if hwm, err = proc.Status("VmHWM"); err != nil {
				hwm = -1
			}
		},
	})
	if err != nil {
		return err
	}
	if profErr != nil {
		return profErr
	}
	if res.Late != 0 {
		return fmt.Errorf("%s: %d records dropped as late: raise -grace", name, res.Late)
	}
	g, err := gen.New(cfg)
	if err != nil {
		return err
	}
	if *jsonDir != "" && !*childPlain {
		if err := writeRows(filepath.Join(*jsonDir, name+".jsonl"), res.Rows); err != nil {
			return err
		}
	}
	if err := queries.Check(q, g, *events, res.Rows); err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(result{Query: name, Events: res.Events, Produce: res.Produce,
		Wall: res.Wall, CPU: res.CPU, HWM: hwm, Outputs: res.Outputs, Rows: len(res.Rows), Late: res.Late,
		Mallocs: mem1.Mallocs - mem0.Mallocs})
}

// writeAllocs writes the allocation profile of the process so far to path.
func writeAllocs(path string) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, f.Close()) }()
	return pprof.Lookup("allocs").WriteTo(f, 0)
}

// writeEvents writes the events as JSON lines, in event order.
func writeEvents(g *gen.Generator) (err error) {
	if err := os.MkdirAll(*jsonDir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(*jsonDir, "events.jsonl"))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, f.Close()) }()
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, e := range g.Events(0, *events, 1) {
		if err := enc.Encode(e); err != nil {
			return err
		}
	}
	return w.Flush()
}

// writeRows writes rows as sorted JSON lines (the output of a bounded run
// is a multiset; sorted, two runs compare with diff).
func writeRows(path string, rows []any) (err error) {
	lines := make([]string, len(rows))
	for i, r := range rows {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		lines[i] = string(b)
	}
	slices.Sort(lines)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, f.Close()) }()
	w := bufio.NewWriter(f)
	for _, l := range lines {
		w.WriteString(l)
		w.WriteByte('\n')
	}
	return w.Flush()
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
