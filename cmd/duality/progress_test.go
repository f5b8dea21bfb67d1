package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// progressRecords is how many records the progress tests move: enough
// for several produce batches.
const progressRecords = 5000

// progressInput is progressRecords key<tab>value lines.
func progressInput() string {
	var b strings.Builder
	for i := range progressRecords {
		fmt.Fprintf(&b, "k%d\tvalue %d\n", i, i)
	}
	return b.String()
}

// TestProgressTerminal runs produce (from a file) and consume (to a file)
// in a tmux pane, so that standard error is a terminal, and reads the
// screen: each leaves its full bar with counts and 100%, then its summary.
func TestProgressTerminal(t *testing.T) {
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Skip("tmux is not installed: the progress bar needs a terminal to be seen")
	}
	be := embeddedBackend(t)
	ok(t, "", be.args("topics", "create", "t", "-p", "2")...)
	ok(t, "", be.args("topics", "create", "t2", "-p", "2")...)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.txt"), filepath.Join(dir, "out.jsonl")
	copyDir := filepath.Join(dir, "copy")
	bad := filepath.Join(dir, "bad.txt") // a bad line after enough for a bar
	require.NoError(t, os.WriteFile(bad, []byte(progressInput()+"no separator\n"), 0o644))
	require.NoError(t, os.WriteFile(in, []byte(progressInput()), 0o644))
	quote := func(args []string) string {
		q := make([]string, len(args))
		for i, a := range args {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		return strings.Join(q, " ")
	}
	script := filepath.Join(dir, "run.sh")
	require.NoError(t, os.WriteFile(script, []byte(fmt.Sprintf(
		"%s %s < %s\n%s %s > %s\ncat %s | %s %s\n%s %s < %s\n%s %s\n%s %s < %s\necho progress-test-done $?\nread x\n",
		quote([]string{binary}), quote(be.args("produce", "t")), quote([]string{in}),
		quote([]string{binary}), quote(be.args("consume", "t")), quote([]string{out}),
		quote([]string{in}), quote([]string{binary}), quote(be.args("produce", "t")),
		quote([]string{binary}), quote(be.args("replay", "--to", "t2")), quote([]string{out}),
		quote([]string{binary}), quote(be.args("mirror", "t", "--to-dir", copyDir)),
		quote([]string{binary}), quote(be.args("produce", "t2")), quote([]string{bad}))), 0o644))

	socket := fmt.Sprintf("duality-progress-%d-%d", os.Getpid(), time.Now().UnixNano())
	run := func(args ...string) string {
		cmd := exec.Command(tmux, append([]string{"-L", socket}, args...)...)
		cmd.Env = append(os.Environ(), "TERM=xterm-256color")
		b, err := cmd.CombinedOutput()
		require.NoError(t, err, "tmux %q: %s", args, b)
		return string(b)
	}
	run("-f", "/dev/null", "new-session", "-d", "-x", "120", "-y", "30", "sh", script)
	t.Cleanup(func() { _ = exec.Command(tmux, "-L", socket, "kill-server").Run() })

	var screen string
	deadline := time.Now().Add(waitBound)
	for !strings.Contains(screen, "progress-test-done") {
		require.True(t, time.Now().Before(deadline), "the pane never finished:\n%s", screen)
		time.Sleep(50 * time.Millisecond) // polling the screen: nothing to wait on
		screen = run("capture-pane", "-p")
	}
	require.Contains(t, screen, "progress-test-done 1", screen) // the bad file's produce failed
	require.Equal(t, 2, strings.Count(screen, fmt.Sprintf("produced %d records to t", progressRecords)), screen)
	require.Contains(t, screen, fmt.Sprintf("consumed %d records from t", progressRecords), screen)
	lines := strings.Split(screen, "\n")
	bar := func(prefix string) string {
		for _, l := range lines {
			if strings.HasPrefix(l, prefix) {
				return l
			}
		}
		t.Fatalf("no line starting %q on the screen:\n%s", prefix, screen)
		return ""
	}
	produce := bar("produce t")
	require.Contains(t, produce, "100%", screen)
	size := len(progressInput())
	kB := fmt.Sprintf("%.0f", float64(size)/1e3)
	require.Contains(t, produce, "("+kB+"/"+kB+" kB", "the bytes of the file read, of its size")
	consume := bar("consume t")
	require.Contains(t, consume, "100%", screen)
	require.Contains(t, consume, fmt.Sprintf("(%d/%d,", progressRecords, progressRecords), "records read, of those listed at the start")

	// From a pipe the size is unknown: a counter with its rate.
	var piped string
	for _, l := range lines {
		if strings.Contains(l, "produce t (") { // after the spinner
			piped = l
		}
	}
	require.Contains(t, piped, fmt.Sprintf("(%d/-,", progressRecords), screen)
	require.Contains(t, piped, "records/s", screen)

	// replay reads a file: the bar shows its share read.
	replay := bar("replay ")
	require.Contains(t, replay, "100%", screen)
	require.Contains(t, screen, fmt.Sprintf("replayed %d records: t2 %d", progressRecords, progressRecords), screen)
	// mirror counts the records of the source partitions it copies.
	require.Contains(t, screen, "created topic t on the destination: 2 partitions, cleanup delete", screen)
	mirror := bar("mirror t")
	require.Contains(t, mirror, "100%", screen)
	require.Contains(t, mirror, fmt.Sprintf("(%d/%d,", 2*progressRecords, 2*progressRecords), screen)
	require.Contains(t, screen, fmt.Sprintf("mirrored %d records: t %d", 2*progressRecords, 2*progressRecords), screen)

	// A failure leaves its bar and writes the error on a line of its own.
	failed := bar("produce t2")
	require.NotContains(t, failed, "duality:", screen)
	require.Contains(t, screen, fmt.Sprintf("\nduality: line %d: no separator", progressRecords+1), screen)

	// The records went to the file, the bar stayed on the terminal.
	data, err := os.ReadFile(out)
	require.NoError(t, err)
	require.Len(t, parseConsumed(t, string(data)), progressRecords)
}

// TestProgressPlain: without a terminal, produce and consume write only
// their one summary line on standard error, and --quiet not even that.
func TestProgressPlain(t *testing.T) {
	be := embeddedBackend(t)
	ok(t, "", be.args("topics", "create", "t", "-p", "2")...)
	r := runDuality(t, progressInput(), be.args("produce", "t")...)
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, fmt.Sprintf("produced %d records to t\n", progressRecords), r.stderr)
	r = runDuality(t, "", be.args("consume", "t", "--max", "10")...)
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, "consumed 10 records from t\n", r.stderr)
	require.Len(t, parseConsumed(t, r.stdout), 10)
	r = runDuality(t, "", be.args("consume", "t", "-q")...)
	require.Equal(t, 0, r.code, r.stderr)
	require.Empty(t, r.stderr)
	require.Len(t, parseConsumed(t, r.stdout), progressRecords)
	ten := ok(t, "", be.args("consume", "t", "--max", "10", "-q")...)

	ok(t, "", be.args("topics", "create", "t2")...)
	r = runDuality(t, ten, be.args("replay", "--to", "t2")...)
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, "replayed 10 records: t2 10\n", r.stderr)
	r = runDuality(t, ten, be.args("replay", "--to", "t2", "-q")...)
	require.Equal(t, 0, r.code, r.stderr)
	require.Empty(t, r.stderr)

	copyDir := filepath.Join(t.TempDir(), "copy")
	r = runDuality(t, "", be.args("mirror", "t", "--to-dir", copyDir)...)
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, fmt.Sprintf("created topic t on the destination: 2 partitions, cleanup delete\nmirrored %d records: t %d\n",
		progressRecords, progressRecords), r.stderr)
	r = runDuality(t, "", be.args("mirror", "t", "t2", "--to-dir", copyDir, "-q")...)
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, "created topic t2 on the destination: 1 partition, cleanup delete\n", r.stderr, "-q leaves the notes")
}
