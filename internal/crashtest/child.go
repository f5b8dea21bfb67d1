package crashtest

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/duality-streams/duality/broker"
)

// envVar is the environment variable through which the parent hands a
// child its childEnv (JSON); a child test skips when it is not set.
const envVar = "DUALITY_CRASHTEST"

// The lines a child writes on its standard output.
const (
	progressLine = "progress "
	doneLine     = "done"
)

// childEnv is what the parent tells a child.
type childEnv struct {
	Backend  string        // the backend's Name
	Addr     string        // the broker's address
	Dir      string        // the directory the children share
	Variant  string        // Plan.Variant's pick, or ""
	MaxTime  time.Duration // the child's time bound
	Instance int           // 0, or 1 for a companion (Plan.Companion)
	Param    string        // Plan.Param
}

// Env is what a child's app gets.
type Env struct {
	// Broker is a client of the test's broker, opened by the harness
	// before Child.App and closed after the app has stopped.
	Broker broker.Broker
	// Dir is the directory the test's children share.
	Dir string
	// StateDir is the app's state directory, Dir/state (Dir/state-1 for
	// a companion): a Plan can have Dir/state deleted after kills.
	StateDir string
	// Instance is 0 for the child the parent kills, 1 for a companion
	// (Plan.Companion).
	Instance int
	// Variant is the variant the parent picked for this child
	// (Plan.Variant), or "".
	Variant string
	// Param is the test's Plan.Param, or "".
	Param string
}

// App is an app a child runs: Run blocks until ctx is canceled or the app
// fails (*duality.App is one).
type App interface {
	Run(ctx context.Context) error
}

// Progress is how far a child has come.
type Progress struct {
	// N is the progress the parent compares with its kill targets, e.g.
	// the committed input records.
	N int64
	// Done says the child has done its work: the harness stops the app.
	Done bool
}

// Child is the child process's side of a crash test.
type Child struct {
	// App builds the app on env.Broker, with its state in env.StateDir.
	App func(env *Env) (App, error)
	// Poll reports the child's progress while the app runs (e.g. from
	// GroupOffsets); an error stops the child, which fails the test.
	Poll func(ctx context.Context, env *Env) (Progress, error)
	// PollEvery is the time between polls; 5 ms when zero.
	PollEvery time.Duration
}

// RunChild runs c in the child process of the crash test started by the
// parent test (t's name without "Child"), and skips t unless that parent
// started it. The child builds the app, runs it and polls its progress
// until it is done, then stops it and returns; on any failure it writes
// the error to its standard error and exits with status 3.
func RunChild(t *testing.T, c Child) {
	t.Helper()
	raw := os.Getenv(envVar)
	if raw == "" {
		t.Skipf("child process of %s; runs only when re-executed by it", strings.TrimSuffix(t.Name(), "Child"))
	}
	if err := runChild(t.Context(), raw, c); err != nil {
		fmt.Fprintf(os.Stderr, "crash child: %v\n", err)
		os.Exit(3)
	}
	fmt.Println(doneLine) // then return: os.Exit(0) inside a test is refused
}

// runChild opens the broker the parent describes in raw, runs c's app
// until c.Poll says it is done, and returns the app's error.
func runChild(ctx context.Context, raw string, c Child) (err error) {
	var ce childEnv
	if err := json.Unmarshal([]byte(raw), &ce); err != nil {
		return fmt.Errorf("%s: %w", envVar, err)
	}
	backend, err := backendNamed(ce.Backend)
	if err != nil {
		return err
	}
	b, err := backend.Open(ce.Addr)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, b.Close()) }()
	env := &Env{Broker: b, Dir: ce.Dir, StateDir: stateDir(ce.Dir, ce.Instance), Variant: ce.Variant, Instance: ce.Instance, Param: ce.Param}
	app, err := c.App(env)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, ce.MaxTime)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- app.Run(runCtx) }()
	tick := time.NewTicker(cmp.Or(c.PollEvery, 5*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case err := <-errc:
			return fmt.Errorf("app stopped early: %w", err)
		case <-tick.C:
		}
		p, err := c.Poll(ctx, env)
		if err != nil {
			stop()
			return errors.Join(err, <-errc)
		}
		fmt.Printf("%s%d\n", progressLine, p.N)
		if p.Done {
			stop()
			return <-errc
		}
	}
}
