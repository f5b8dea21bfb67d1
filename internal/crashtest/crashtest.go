package crashtest

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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

// StateDir returns the directory of the app's state, kept across children
// (see [Env.StateDir]), for a check or for running the app in the parent.
func (x *Test) StateDir() string { return stateDir(x.dir) }

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
// With no kills it runs one child to its end. It returns the number of
// kills made, at least p.MinKills.
func (x *Test) Run(p Plan) (kills int) {
	t := x.t
	t.Helper()
	wipes := 0
	for cycle := 0; ; cycle++ {
		target, delay := int64(-1), time.Duration(0)
		if kills < p.Kills {
			target, delay = p.Schedule(x.rng, kills)
		}
		var variant string
		if p.Variant != nil {
			variant = p.Variant(x.rng)
		}
		if done := x.runChild(target, delay, variant, cmp.Or(p.MaxTime, DefaultMaxTime)); done {
			break
		}
		kills++
		line := fmt.Sprint("cycle ", cycle)
		if variant != "" {
			line += " (" + variant + ")"
		}
		line += fmt.Sprintf(": killed %v after the progress passed %d", delay, target)
		if p.Check != nil {
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
	if p.WipeState {
		t.Logf("killed %d times, deleted the state %d times", kills, wipes)
	} else {
		t.Logf("killed %d times", kills)
	}
	require.GreaterOrEqual(t, kills, p.MinKills, "the children finished before %d kills; make the input larger", p.MinKills)
	return kills
}

// runChild runs the child test in a new process of the test binary, kills
// it delay after it reported progress of at least target (never when
// target < 0), and reports whether it finished. It fails the test if the
// child fails, exits by itself before it is killed, or outlives maxTime.
func (x *Test) runChild(target int64, delay time.Duration, variant string, maxTime time.Duration) (done bool) {
	t := x.t
	t.Helper()
	env, err := json.Marshal(childEnv{Backend: x.backend.Name(), Addr: x.addr, Dir: x.dir, Variant: variant, MaxTime: maxTime})
	require.NoError(t, err)
	cmd := exec.Command(os.Args[0], "-test.run=^"+x.child+"$", "-test.count=1", "-test.timeout=60s")
	cmd.Env = append(os.Environ(), envVar+"="+string(env))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
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
	var kill <-chan time.Time
	deadline := time.NewTimer(maxTime)
	defer deadline.Stop()
	killed := false
	for open := true; open; {
		select {
		case line, ok := <-lines:
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
			require.FailNow(t, "child too slow", "stderr:\n%s", stderr.String())
		}
	}
	err = cmd.Wait()
	if done {
		require.NoError(t, err, "stderr:\n%s", stderr.String())
		return true
	}
	require.True(t, killed, "child exited by itself: %v; stderr:\n%s", err, stderr.String())
	return false
}

// stateDir returns the state directory in the children's directory dir.
func stateDir(dir string) string { return filepath.Join(dir, "state") }
