// Package exampletest runs an example's command in a child process, as a
// user runs it, so that tests see its exit code and what it prints, and
// catch a command that hangs.
//
// The child is the example's own test binary: the example's TestMain calls
// [Main], which runs the command's main function instead of the tests when
// [Run] started the process.
package exampletest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// envMain tells a test binary started by Run to run main instead of tests.
const envMain = "DUALITY_EXAMPLE_RUN_MAIN"

// Main is an example's TestMain: in a process started by [Run] it calls
// main, which exits non-zero on failure, and exits 0 when main returns;
// otherwise it runs the tests.
func Main(m *testing.M, main func()) {
	if os.Getenv(envMain) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Result is how a command run by [Run] ended.
type Result struct {
	Stdout, Stderr string
	// ExitCode is the process's exit status.
	ExitCode int
}

// Run runs the example's command with args (os.Args[1:] of the command) in
// a child process and returns how it ended. It fails t if the command does
// not exit within timeout (it is killed then: a command must never hang) or
// cannot be started.
func Run(t testing.TB, timeout time.Duration, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), envMain+"=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second // output pipes held open by a stray child
	err := cmd.Run()
	res := Result{Stdout: stdout.String(), Stderr: stderr.String()}
	if ctx.Err() != nil {
		t.Fatalf("%v did not exit within %v (killed): it hangs\nstdout:\n%s\nstderr:\n%s", args, timeout, res.Stdout, res.Stderr)
	}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		res.ExitCode = exit.ExitCode()
	case err != nil:
		t.Fatalf("run %v: %v", args, err)
	}
	return res
}

// KafkaCluster starts a kfake cluster (franz-go's in-process Kafka test
// cluster) of three brokers on 127.0.0.1 for the test and returns its
// addresses as -brokers takes them, so that a command started by [Run]
// runs on a Kafka cluster served by another process. The cluster stops
// at the end of the test.
func KafkaCluster(t testing.TB) string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return strings.Join(c.ListenAddrs(), ",")
}
