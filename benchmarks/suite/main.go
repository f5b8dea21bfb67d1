// Command suite runs Duality's benchmark suite with one command: Nexmark
// (benchmarks/nexmark: every query on the DSL, with the plain-Go ceilings
// of q0, q1 and q2) and the side-by-side with goka
// (benchmarks/goka: goka, Duality on the embedded broker and on Kafka
// with exactly-once and at-least-once, the plain-Go ceilings of W1 and
// W2), and, with -suites, the other programs of benchmarks/. It builds
// each program, runs it, shows its output as it goes, and writes into
// -out:
//
//   - results.txt: the machine, then every program's "result" and
//     "ratio" lines as printed (one measurement or ratio a line, key=value
//     fields), under a "# suite" comment;
//   - results.json: the same, parsed: the machine (CPU model, cores, Go
//     version, load average before and after each program), and per
//     program its arguments, its duration and its lines as objects of
//     their fields;
//   - results.md: the tables of benchmarks/README.md's results: the
//     machine, Nexmark per query beside its ceiling and Flink's published
//     per-core figures, the goka side-by-side and its ratios;
//   - throughput.svg: a plot of throughput per workload and system:
//     records/s of each goka side-by-side workload per system, and events/s
//     per core of each Nexmark query beside its plain-Go ceiling and
//     Flink 2.0's published per-core figure (other hardware);
//   - <suite>.log: each program's whole output.
//
// Run it from this directory (a module of its own, so that its plotting
// dependency stays out of the framework's go.mod):
//
//	go run .            # the full run: 1M Nexmark events, 1M records per goka workload (an hour or more at load)
//	go run . -quick     # under a minute on a 2-core machine: small inputs, one round, no warm-up
//	go run . -suites nexmark,goka,tables,windows -out /tmp/bench
//	go run . -args 'nexmark:-events 200000' -args goka:-quick   # other arguments for a program
//	go run . -render ../results   # write results.txt, results.md and the plot again from results.json
//
// The quick run's figures show that everything works and roughly where
// things stand; its inputs are too small for the ratios to be quoted
// (startup is a large part of each run). It fails if any program fails,
// and every program fails when a result differs from its plain-Go
// reference.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

var (
	quick  = flag.Bool("quick", false, "a run of under a minute on a 2-core machine: small inputs, one round, no warm-up")
	out    = flag.String("out", "", "directory for results.txt, results.json, throughput.svg and the logs (default ../results, ../results/quick with -quick)")
	root   = flag.String("root", "../..", "the root of the Duality repository")
	suites = flag.String("suites", "nexmark,goka", "comma-separated programs of benchmarks/ to run: "+strings.Join(suiteNames(), ", "))
	// argsOf are the arguments -args gives programs, by program.
	argsOf = map[string][]string{}
	render = flag.String("render", "", "run nothing: read results.json in this directory and write its results.txt, results.md and throughput.svg again")
)

func init() {
	flag.Func("args", "`name:arguments`: run program name with these space-separated arguments instead of the full or quick run's (repeatable), e.g. -args 'nexmark:-events 200000' -args goka:-quick",
		func(v string) error {
			name, args, ok := strings.Cut(v, ":")
			if !ok || !slices.Contains(suiteNames(), name) {
				return fmt.Errorf("want name:arguments with name one of %s", strings.Join(suiteNames(), ", "))
			}
			argsOf[name] = strings.Fields(args)
			return nil
		})
}

// suite is one program of benchmarks/ and its arguments.
type suite struct {
	name string
	// dir is the program's directory under the root; module is the
	// directory of its module (where go build runs), relative to the root.
	dir, module string
	full, quick []string // arguments of the full and of the quick run; quick nil: not in a quick run
}

var allSuites = []suite{
	{name: "nexmark", dir: "benchmarks/nexmark", module: ".",
		full:  nil,
		quick: []string{"-events", "30000", "-queries", "q0,q1,q2,q5,q7,q8"}},
	{name: "goka", dir: "benchmarks/goka", module: "benchmarks/goka",
		full:  nil,
		quick: []string{"-records", "20000", "-restore-keys", "20000", "-rounds", "1", "-warmup=false", "-workloads", "W1,W2,W3"}},
	{name: "tables", dir: "benchmarks/tables", module: "."},
	{name: "windows", dir: "benchmarks/windows", module: "."},
	{name: "guarantee", dir: "benchmarks/guarantee", module: "."},
	{name: "foundation", dir: "benchmarks/foundation", module: "."},
}

func suiteNames() []string {
	var names []string
	for _, s := range allSuites {
		names = append(names, s.name)
	}
	return names
}

func main() {
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "suite:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	if *render != "" {
		b, err := os.ReadFile(filepath.Join(*render, "results.json"))
		if err != nil {
			return err
		}
		var res Results
		if err := json.Unmarshal(b, &res); err != nil {
			return fmt.Errorf("%s: %w", filepath.Join(*render, "results.json"), err)
		}
		// Each line's text is what the program printed: parse it again
		// (results.json of older runs lacks the keys' order).
		for i := range res.Suites {
			for j, l := range res.Suites[i].Lines {
				if p, ok := ParseLine(l.Text); ok {
					res.Suites[i].Lines[j] = p
				}
			}
		}
		return writeResults(*render, res)
	}
	start := time.Now()
	if err := checkRoot(*root); err != nil {
		return err
	}
	var chosen []suite
	for n := range strings.SplitSeq(*suites, ",") {
		i := slices.IndexFunc(allSuites, func(s suite) bool { return s.name == strings.TrimSpace(n) })
		if i < 0 {
			return fmt.Errorf("-suites: unknown program %q: want some of %s", n, strings.Join(suiteNames(), ", "))
		}
		if _, set := argsOf[allSuites[i].name]; *quick && allSuites[i].quick == nil && !set {
			return fmt.Errorf("-suites: %s has no quick run: run it without -quick", n)
		}
		chosen = append(chosen, allSuites[i])
	}
	for name := range argsOf {
		if !slices.ContainsFunc(chosen, func(s suite) bool { return s.name == name }) {
			return fmt.Errorf("-args %s: %s is not among -suites %s", name, name, *suites)
		}
	}
	dir := *out
	if dir == "" {
		dir = filepath.Join("..", "results")
		if *quick {
			dir = filepath.Join(dir, "quick")
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// The programs are built into the user's cache directory, where go
	// build leaves an up-to-date binary as it is instead of linking it
	// again (linking the goka program takes tens of seconds on a loaded
	// 2-core machine).
	bin, err := os.UserCacheDir()
	if err != nil {
		bin = os.TempDir()
	}
	bin = filepath.Join(bin, "duality-benchmarks")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return err
	}

	res := Results{Quick: *quick, Started: start.UTC(), Machine: describeMachine(ctx, *root)}
	fmt.Printf("# %s\n", res.Machine)
	// Build every program first: compiling is not the benchmark's.
	for _, s := range chosen {
		build := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(bin, s.name), "./"+relTo(s.module, s.dir))
		build.Dir = filepath.Join(*root, s.module)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build %s: %w", s.dir, err)
		}
	}
	res.BuildSeconds = time.Since(start).Seconds()

	var failed []string
	for _, s := range chosen {
		args := s.full
		if *quick {
			args = s.quick
		}
		if a, ok := argsOf[s.name]; ok {
			args = a
		}
		sr, err := runSuite(ctx, s, filepath.Join(bin, s.name), args, dir)
		res.Suites = append(res.Suites, sr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "suite: %s: %v\n", s.name, err)
			failed = append(failed, s.name)
			if ctx.Err() != nil {
				break
			}
		}
	}
	res.Finished = time.Now().UTC()
	res.Seconds = res.Finished.Sub(start).Seconds()
	res.Machine.LoadEnd = loadAvg()
	if err := writeResults(dir, res); err != nil {
		return err
	}
	fmt.Printf("# %d programs in %.1f s (building %.1f s), load average at the end %s; results in %s\n",
		len(res.Suites), res.Seconds, res.BuildSeconds, res.Machine.LoadEnd, dir)
	if len(failed) > 0 {
		return fmt.Errorf("failed: %s (their logs are in %s)", strings.Join(failed, ", "), dir)
	}
	return nil
}

// relTo is dir relative to module, both relative to the root.
func relTo(module, dir string) string {
	r, err := filepath.Rel(module, dir)
	if err != nil {
		return dir
	}
	return r
}

// checkRoot fails unless dir is the root of Duality's repository.
func checkRoot(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return fmt.Errorf("-root %s: %w", dir, err)
	}
	if !strings.HasPrefix(string(b), "module github.com/duality-streams/duality\n") {
		return fmt.Errorf("-root %s: not the root of github.com/duality-streams/duality", dir)
	}
	return nil
}

// runSuite runs one program with args, in dir's log and on stdout,
// and collects its result and ratio lines.
func runSuite(ctx context.Context, s suite, exe string, args []string, dir string) (SuiteResult, error) {
	sr := SuiteResult{Name: s.name, Args: append([]string{}, args...), LoadStart: loadAvg()}
	fmt.Printf("# %s %s (load average %s)\n", s.dir, strings.Join(args, " "), sr.LoadStart)
	log, err := os.Create(filepath.Join(dir, s.name+".log"))
	if err != nil {
		return sr, err
	}
	defer log.Close()
	cmd := exec.CommandContext(ctx, exe, args...)
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = io.MultiWriter(os.Stderr, log)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return sr, err
	}
	waited := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		pw.Close()
		waited <- err
	}()
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		fmt.Println(line)
		fmt.Fprintln(log, line)
		if l, ok := ParseLine(line); ok {
			sr.Lines = append(sr.Lines, l)
		}
	}
	scanErr := sc.Err()
	if scanErr != nil {
		// Keep draining so the program does not block on a full pipe.
		_, _ = io.Copy(io.Discard, pr)
	}
	err = errors.Join(<-waited, scanErr)
	sr.Seconds = time.Since(start).Seconds()
	sr.LoadEnd = loadAvg()
	if err != nil {
		sr.Error = err.Error()
	}
	return sr, err
}

// Machine describes where a run ran.
type Machine struct {
	CPU       string `json:"cpu"`   // the model name of /proc/cpuinfo
	Cores     int    `json:"cores"` // runtime.NumCPU
	MemoryMB  int64  `json:"memory_mb"`
	OS        string `json:"os"` // GOOS/GOARCH and the kernel release
	Go        string `json:"go"` // the toolchain that built the programs
	Commit    string `json:"commit,omitempty"`
	LoadStart string `json:"load_start"` // load averages (1, 5, 15 min) before the run
	LoadEnd   string `json:"load_end"`   // and after it
}

func (m Machine) String() string {
	return fmt.Sprintf("machine: %s, %d cores, %d MiB, %s, %s, commit %s, load average %s",
		m.CPU, m.Cores, m.MemoryMB, m.OS, m.Go, m.Commit, m.LoadStart)
}

func describeMachine(ctx context.Context, root string) Machine {
	m := Machine{CPU: "unknown", Cores: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH, LoadStart: loadAvg()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			m.MemoryMB = kb >> 10
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.OS += ", Linux " + strings.TrimSpace(string(b))
	}
	m.Go = runtime.Version()
	if b, err := exec.CommandContext(ctx, "go", "env", "GOVERSION").Output(); err == nil {
		m.Go = strings.TrimSpace(string(b))
	}
	if b, err := exec.CommandContext(ctx, "git", "-C", root, "rev-parse", "--short=12", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(b))
		if st, err := exec.CommandContext(ctx, "git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
			m.Commit += "+changes"
		}
	}
	return m
}

// loadAvg is the machine's load averages over 1, 5 and 15 minutes.
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

// writeResults writes results.txt, results.json, results.md and
// throughput.svg into dir.
func writeResults(dir string, res Results) error {
	var txt strings.Builder
	fmt.Fprintf(&txt, "# %s\n", res.Machine)
	fmt.Fprintf(&txt, "# started %s, %.0f s, quick=%v, load average at the end %s\n",
		res.Started.Format(time.RFC3339), res.Seconds, res.Quick, res.Machine.LoadEnd)
	for _, s := range res.Suites {
		fmt.Fprintf(&txt, "# %s %s: %.1f s, load average %s before, %s after\n", s.Name, strings.Join(s.Args, " "), s.Seconds, s.LoadStart, s.LoadEnd)
		for _, l := range s.Lines {
			txt.WriteString(l.Text + "\n")
		}
		if s.Error != "" {
			fmt.Fprintf(&txt, "# %s failed: %s\n", s.Name, s.Error)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "results.txt"), []byte(txt.String()), 0o644); err != nil {
		return err
	}
	j, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(j, '\n'), 0o644); err != nil {
		return err
	}
	if err := writeMarkdown(filepath.Join(dir, "results.md"), res); err != nil {
		return err
	}
	return writePlot(filepath.Join(dir, "throughput.svg"), res)
}
