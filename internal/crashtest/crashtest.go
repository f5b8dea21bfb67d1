package crashtest

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
)

// scale is the -crash.scale flag of the test binaries that import the
// package.
var scale = flag.Int("crash.scale", 1, "multiply the kills of every kill -9 test (e.g. 20 for hundreds of kills)")

// Kills returns n, the kills a crash test makes by default (in CI),
// multiplied by the -crash.scale flag of the test binary:
//
//	go test -run Kill9 -crash.scale 20 -timeout 2h .
//
// runs every kill -9 test with 20 times its kills. A scale below 1 is
// taken as 1.
func Kills(n int) int { return n * max(1, *scale) }

// DefaultMaxTime bounds a child's run when [Plan.MaxTime] is zero.
const DefaultMaxTime = 20 * time.Second

// Test is a crash test in the parent process: its broker, the directory
// its children share, its random source and its children. It is used by
// the test's goroutine only.
type Test struct {
	t       *testing.T
	backend Backend
	addr    string
	dir     string
	child   string // the child's test name
	rng     *rand.Rand
}

// New starts a crash test of t on backend: it starts the broker, makes
// the children's directory and seeds the random source with a random seed,
// which it logs.
func New(t *testing.T, backend Backend) *Test {
	t.Helper()
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	top, _, _ := strings.Cut(t.Name(), "/")
	return &Test{
		t:       t,
		backend: backend,
		addr:    backend.Start(t),
		dir:     t.TempDir(),
		child:   top + "Child",
		rng:     rand.New(rand.NewPCG(seed, seed)),
	}
}

// Rand returns the test's random source, seeded by New: generate the input
// with it.
func (x *Test) Rand() *rand.Rand { return x.rng }

// Addr returns the address of the test's broker (see [Backend]): for
// Kafka, the brokers' addresses, comma-separated.
func (x *Test) Addr() string { return x.addr }

// StateDir returns the directory of the app's state, kept across children
// (see [Env.StateDir]), for a check or for running the app in the parent.
func (x *Test) StateDir() string { return stateDir(x.dir, 0) }

// Open opens a client of the test's broker, failing the test on error.
// The caller closes it before the next child starts.
func (x *Test) Open() broker.Broker {
	x.t.Helper()
	b, err := x.backend.Open(x.addr)
	require.NoError(x.t, err)
	return b
}

// Plan says how [Test.Run] kills its children and what it checks.
type Plan struct {
	// Kills is the number of kills to make; then a child runs to its end.
	Kills int
	// MinKills is the least number of kills the run must make: the test
	// fails if the children finish before (a kill due close to the end can
	// come after the child has finished).
	MinKills int
	// Schedule says when each kill lands; required when Kills > 0.
	Schedule Schedule
	// Variant, if set, picks the variant of each child (see
	// [Env.Variant]), logged with the cycle.
	Variant func(rng *rand.Rand) string
	// Check, if set, checks the invariant a killed child must leave behind,
	// on a client of the broker (closed after it), and returns how many
	// records were committed, for the log.
	Check func(t *testing.T, b broker.Broker) int
	// WipeState deletes the state directory after a kill with probability
	// one half, and after the last kill if it never did.
	WipeState bool
	// MaxTime bounds a child's run; DefaultMaxTime when zero. A child that
	// takes longer fails the test.
	MaxTime time.Duration
	// Companion runs a second instance of the app in the same group for
	// the whole test, in a child of its own that is never killed, with
	// its own state directory ([Env.Instance] 1): when the killed
	// instance dies, the group moves its tasks to the companion, and
	// back when it restarts. Check then runs only at the end, as a check
	// after a kill would race with the companion's commits. The
	// companion must not finish before the kills are made (feed the
	// input with Feed). It needs a broker that several processes share
	// (Kafka).
	Companion bool
	// Feed, if set, runs on a goroutine of the parent while the children
	// run, with a client of the broker of its own (closed after it): it
	// produces input as the children process it, so that kills land
	// while the app is live. killed is closed once the last kill is made:
	// a feed that holds back the end of its input until then cannot run
	// out of input before the kills are made, however slow the machine.
	// Run fails the test if it fails, and waits for it before the check
	// at the end. It needs a broker that several processes share (Kafka).
	Feed func(ctx context.Context, b broker.Broker, killed <-chan struct{}) error
	// Param, if set, is handed to every child ([Env.Param]): what the
	// child cannot know by itself, such as the input size when it
	// depends on the parent's flags.
	Param string
}

// Schedule returns when the kill-th kill (from 0) lands: once the progress
// the child reports reaches target, after delay.
type Schedule func(rng *rand.Rand, kill int) (target int64, delay time.Duration)

// Spread returns a Schedule of kills over total records of progress: the
// k-th of n kills lands once the progress passes a random point of the
// k-th of n+1 equal shares of total, after a random delay below maxDelay,
// so that kills land at random moments of processing and committing
// whatever the machine's speed.
func Spread(total, n int, maxDelay time.Duration) Schedule {
	return func(rng *rand.Rand, k int) (int64, time.Duration) {
		share := total / (n + 1)
		return int64(k*share + rng.IntN(share)), RandDelay(rng, maxDelay)
	}
}

// RandDelay returns a random delay below limit, in whole microseconds.
func RandDelay(rng *rand.Rand, limit time.Duration) time.Duration {
	return time.Duration(rng.Int64N(int64(limit/time.Microsecond))) * time.Microsecond
}

// Run runs children one after the other, killing each with SIGKILL as p
// schedules until it has made p.Kills kills, checking p.Check after every
// kill and wiping the state as p says; the last child runs to its end.
// With no kills it runs one child to its end. With p.Companion a second
// instance runs beside them throughout, and p.Check runs once, after the
// companion has finished too; p.Feed produces input meanwhile. It returns
// the number of kills made, at least p.MinKills.
func (x *Test) Run(p Plan) (kills int) {
	t := x.t
	t.Helper()
	maxTime := cmp.Or(p.MaxTime, DefaultMaxTime)
	var fed chan error
	killed := make(chan struct{})
	var killedOnce sync.Once
	allKilled := func() { killedOnce.Do(func() { close(killed) }) }
	defer allKilled()
	if p.Feed != nil {
		b := x.Open()
		ctx, cancel := context.WithCancel(t.Context())
		fed = make(chan error, 1)
		go func() {
			err := p.Feed(ctx, b, killed)
			fed <- errors.Join(err, b.Close())
		}()
		t.Cleanup(func() {
			cancel()
			if fed != nil {
				<-fed
			}
		})
	}
	var companion *proc
	if p.Companion {
		companion = x.start(childEnv{Instance: 1, MaxTime: maxTime * time.Duration(p.Kills+2), Param: p.Param})
		go companion.drain()
		t.Cleanup(companion.kill) // a test that fails leaves it running
		t.Log("companion started")
	}
	wipes := 0
	for cycle := 0; ; cycle++ {
		target, delay := int64(-1), time.Duration(0)
		if kills < p.Kills {
			target, delay = p.Schedule(x.rng, kills)
		} else {
			allKilled()
		}
		var variant string
		if p.Variant != nil {
			variant = p.Variant(x.rng)
		}
		if done := x.runChild(target, delay, variant, p.Param, maxTime); done {
			break
		}
		if companion != nil {
			companion.requireRunning(t)
		}
		kills++
		line := fmt.Sprint("cycle ", cycle)
		if variant != "" {
			line += " (" + variant + ")"
		}
		line += fmt.Sprintf(": killed %v after the progress passed %d", delay, target)
		if p.Check != nil && companion == nil {
			b := x.Open()
			n := p.Check(t, b)
			require.NoError(t, b.Close())
			line += fmt.Sprintf("; %d committed", n)
		}
		if p.WipeState && (x.rng.IntN(2) == 0 || (kills == p.Kills && wipes == 0)) {
			wipes++
			require.NoError(t, os.RemoveAll(x.StateDir()))
			line += "; state deleted"
		}
		t.Log(line)
	}
	if fed != nil {
		require.NoError(t, <-fed, "feeding the input")
		fed = nil
	}
	if companion != nil {
		companion.wait(t, maxTime)
		t.Log("companion done")
		if p.Check != nil {
			b := x.Open()
			p.Check(t, b)
			require.NoError(t, b.Close())
		}
	}
	if p.WipeState {
		t.Logf("killed %d times, deleted the state %d times", kills, wipes)
	} else {
		t.Logf("killed %d times", kills)
	}
	require.GreaterOrEqual(t, kills, p.MinKills, "the children finished before %d kills; make the input larger", p.MinKills)
	return kills
}

// proc is a child process: the test binary running the child test.
type proc struct {
	cmd    *exec.Cmd
	lines  <-chan string // its standard output, closed at its end
	stderr *bytes.Buffer // read only after the process exited
	done   chan struct{} // closed by drain once the child said it is done
	// exited is closed once cmd.Wait has returned waitErr (see drain).
	exited  chan struct{}
	waitErr error
}

// start starts the child test in a new process of the test binary with
// env (its backend, address and directory filled in).
func (x *Test) start(env childEnv) *proc {
	t := x.t
	t.Helper()
	env.Backend, env.Addr, env.Dir = x.backend.Name(), x.addr, x.dir
	raw, err := json.Marshal(env)
	require.NoError(t, err)
	timeout := "-test.timeout=" + (env.MaxTime + time.Minute).String()
	cmd := exec.Command(os.Args[0], "-test.run=^"+x.child+"$", "-test.count=1", timeout)
	cmd.Env = append(os.Environ(), envVar+"="+string(raw))
	p := &proc{cmd: cmd, stderr: new(bytes.Buffer), done: make(chan struct{}), exited: make(chan struct{})}
	cmd.Stderr = p.stderr
	if debugLevel() > 0 {
		cmd.Stderr = io.MultiWriter(p.stderr, os.Stderr)
	}
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	lines := make(chan string, 4)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	p.lines = lines
	return p
}

// drain reads a companion's output to its end, closing p.done when the
// child says it is done, then waits for the process to exit.
func (p *proc) drain() {
	said := false
	var last string
	for line := range p.lines {
		debugProgress("companion", p.cmd.Process.Pid, line, &last)
		if line == doneLine && !said {
			said = true
			close(p.done)
		}
	}
	p.waitErr = p.cmd.Wait()
	close(p.exited)
}

// requireRunning fails the test if a companion started with drain has
// exited before it was done, or failed.
func (p *proc) requireRunning(t *testing.T) {
	t.Helper()
	select {
	case <-p.exited:
	default:
		return
	}
	select {
	case <-p.done:
		require.NoError(t, p.waitErr, "companion failed; stderr:\n%s", p.stderr.String())
	default:
		require.FailNow(t, "companion exited early", "%v; stderr:\n%s", p.waitErr, p.stderr.String())
	}
}

// wait waits up to limit for a companion started with drain to say it is
// done and exit, and fails the test if it does not or fails.
func (p *proc) wait(t *testing.T, limit time.Duration) {
	t.Helper()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case <-p.exited:
	case <-timer.C:
		p.kill()
		require.FailNow(t, "companion too slow", "stderr:\n%s", p.stderr.String())
	}
	p.requireRunning(t)
}

// kill kills a companion started with drain if it still runs, and waits
// for it to exit.
func (p *proc) kill() {
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.exited
	}
}

// runChild runs the child test in a new process of the test binary, kills
// it delay after it reported progress of at least target (never when
// target < 0), and reports whether it finished. It fails the test if the
// child fails, exits by itself before it is killed, or outlives maxTime.
func (x *Test) runChild(target int64, delay time.Duration, variant, param string, maxTime time.Duration) (done bool) {
	t := x.t
	t.Helper()
	p := x.start(childEnv{Variant: variant, MaxTime: maxTime, Param: param})
	cmd, lines, stderr := p.cmd, p.lines, p.stderr
	var kill <-chan time.Time
	deadline := time.NewTimer(maxTime)
	defer deadline.Stop()
	killed := false
	var last string
	for open := true; open; {
		select {
		case line, ok := <-lines:
			if ok {
				debugProgress("child", cmd.Process.Pid, line, &last)
			}
			switch {
			case !ok:
				open = false
			case strings.HasPrefix(line, progressLine) && target >= 0 && !killed && kill == nil:
				n, err := strconv.ParseInt(strings.TrimPrefix(line, progressLine), 10, 64)
				require.NoError(t, err)
				if n >= target {
					kill = time.After(delay)
				}
			case line == doneLine:
				done, kill = true, nil
			}
		case <-kill:
			_ = cmd.Process.Signal(syscall.SIGKILL)
			killed, kill = true, nil
		case <-deadline.C:
			_ = cmd.Process.Signal(syscall.SIGKILL)
			_ = cmd.Wait()
			require.FailNow(t, "child too slow", "child (pid %d) still running after %v; the groups then:\n%s\nstderr:\n%s",
				cmd.Process.Pid, maxTime, x.describeGroups(), stderr.String())
		}
	}
	err := cmd.Wait()
	if done {
		require.NoError(t, err, "stderr:\n%s", stderr.String())
		return true
	}
	require.True(t, killed, "child exited by itself: %v; stderr:\n%s", err, stderr.String())
	return false
}

// describeGroups describes the consumer groups of the test's broker
// (when it is a broker.GroupAdmin): the state of each, its members (their
// Kafka client ids name the process, see Kafka) and their partitions,
// for the failure message of a child too slow. It is called while no
// child runs.
func (x *Test) describeGroups() string {
	b, err := x.backend.Open(x.addr)
	if err != nil {
		return fmt.Sprintf("(open the broker: %v)", err)
	}
	defer func() { _ = b.Close() }()
	ga, ok := b.(broker.GroupAdmin)
	if !ok {
		return "(the broker does not describe its groups)"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	names, err := ga.ListGroups(ctx)
	if err != nil {
		return fmt.Sprintf("(list the groups: %v)", err)
	}
	var sb strings.Builder
	for _, name := range names {
		d, err := ga.DescribeGroup(ctx, name)
		if err != nil {
			fmt.Fprintf(&sb, "group %s: %v\n", name, err)
			continue
		}
		fmt.Fprintf(&sb, "group %s, %s, %d members\n", name, d.State, len(d.Members))
		for _, m := range d.Members {
			fmt.Fprintf(&sb, "  member %s (client %q, %s): %d partitions %v\n", m.ID, m.ClientID, m.Host, len(m.Partitions), m.Partitions)
		}
	}
	return sb.String()
}

// stateDir returns the state directory of instance in the children's
// directory dir: "state", and "state-<instance>" for a companion.
func stateDir(dir string, instance int) string {
	if instance == 0 {
		return filepath.Join(dir, "state")
	}
	return filepath.Join(dir, "state-"+strconv.Itoa(instance))
}
