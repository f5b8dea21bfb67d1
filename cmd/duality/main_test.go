package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/broker/kafka"
)

// waitBound bounds every wait for the binary or the cluster; never a
// synchronisation delay.
const waitBound = 30 * time.Second

// binary is the duality command built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "duality-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "duality")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is what one run of the binary left.
type result struct {
	stdout, stderr string
	code           int
}

// duality runs the binary with args and stdin and returns its output and
// exit code. It fails the test if the binary panicked.
func runDuality(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitBound)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("run duality %q: %v", args, err)
	}
	require.NotContains(t, r.stderr, "panic", "duality %q", args)
	require.NotContains(t, r.stderr, "goroutine ", "duality %q", args)
	return r
}

// ok runs the binary and requires exit code 0; it returns stdout.
func ok(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	r := runDuality(t, stdin, args...)
	require.Equal(t, 0, r.code, "duality %q: %s", args, r.stderr)
	return r.stdout
}

// backend is one log the tests run against: its global flags, and a
// broker.Broker on it for the test's own checks. open returns a Broker
// and a func that closes it (an embedded directory is locked while it is
// open).
type backend struct {
	name  string
	flags []string
	open  func(t *testing.T) (broker.Broker, func())
}

func embeddedBackend(t *testing.T) backend {
	dir := filepath.Join(t.TempDir(), "data")
	return backend{
		name:  "embedded",
		flags: []string{"--dir", dir},
		open: func(t *testing.T) (broker.Broker, func()) {
			b, err := embedded.Open(dir, embedded.WithCleanupInterval(-1))
			require.NoError(t, err)
			return b, func() { require.NoError(t, b.Close()) }
		},
	}
}

func kafkaBackend(t *testing.T) backend {
	be, _ := newKafkaBackend(t)
	return be
}

// newKafkaBackend is kafkaBackend with its kfake cluster, for tests that
// control the requests it handles.
func newKafkaBackend(t *testing.T) (backend, *kfake.Cluster) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	addrs := c.ListenAddrs()
	return backend{
		name:  "kafka",
		flags: []string{"--brokers", strings.Join(addrs, ",")},
		open: func(t *testing.T) (broker.Broker, func()) {
			ctx, cancel := context.WithTimeout(t.Context(), waitBound)
			defer cancel()
			b, err := kafka.New(ctx, addrs)
			require.NoError(t, err)
			return b, func() { require.NoError(t, b.Close()) }
		},
	}, c
}

// forEachBackend runs fn against a fresh embedded directory and a fresh
// kfake cluster.
func forEachBackend(t *testing.T, fn func(t *testing.T, be backend)) {
	for _, mk := range []func(*testing.T) backend{embeddedBackend, kafkaBackend} {
		be := mk(t)
		t.Run(be.name, func(t *testing.T) { fn(t, be) })
	}
}

// args joins the backend's flags and a command.
func (be backend) args(cmd ...string) []string {
	return append(append([]string{}, be.flags...), cmd...)
}

// consumed is one parsed line of consume's output.
type consumed struct {
	Topic       string          `json:"topic"`
	Partition   int32           `json:"partition"`
	Offset      int64           `json:"offset"`
	Timestamp   time.Time       `json:"timestamp"`
	Key         json.RawMessage `json:"key"`
	Value       json.RawMessage `json:"value"`
	ValueError  string          `json:"value_error"`
	ValueBase64 string          `json:"value_base64"`
	Headers     []struct {
		Key   string  `json:"key"`
		Value *string `json:"value"`
	} `json:"headers"`
}

func parseConsumed(t *testing.T, out string) []consumed {
	t.Helper()
	var recs []consumed
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var r consumed
		require.NoError(t, json.Unmarshal(sc.Bytes(), &r), "line %q", sc.Text())
		recs = append(recs, r)
	}
	return recs
}

// values returns the raw JSON values of recs as strings.
func values(recs []consumed) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Value)
	}
	return out
}

func TestTopics(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		require.Contains(t, ok(t, "", be.args("topics", "create", "orders", "--partitions", "3")...), "created topic orders with 3 partitions")
		ok(t, "", be.args("topics", "create", "users", "--cleanup", "compact", "--retention", "forever")...)

		var list []topicJSON
		require.NoError(t, json.Unmarshal([]byte(ok(t, "", be.args("topics", "list", "-o", "json")...)), &list))
		require.Len(t, list, 2)
		require.Equal(t, topicJSON{Name: "orders", Partitions: 3, Cleanup: "delete", RetentionMs: (7 * 24 * time.Hour).Milliseconds(),
			RetentionBytes: -1, DeleteRetentionMs: (24 * time.Hour).Milliseconds()}, list[0])
		require.Equal(t, "users", list[1].Name)
		require.Equal(t, "compact", list[1].Cleanup)
		require.Equal(t, int64(-1), list[1].RetentionMs)

		text := ok(t, "", be.args("topics", "list")...)
		require.Regexp(t, `(?m)^orders\s+3\s+delete\s+168h0m0s\s+unlimited$`, text)
		require.Regexp(t, `(?m)^users\s+1\s+compact\s+forever\s+unlimited$`, text)

		ok(t, "k1\tv1\nk2\tv2\nk3\tv3\n", be.args("produce", "orders", "--partition", "2")...)
		var described []topicJSON
		require.NoError(t, json.Unmarshal([]byte(ok(t, "", be.args("topics", "describe", "orders", "-o", "json")...)), &described))
		require.Equal(t, []partitionOffsets{{0, 0, 0}, {1, 0, 0}, {2, 0, 3}}, described[0].Offsets)
		text = ok(t, "", be.args("topics", "describe", "orders")...)
		require.Contains(t, text, "cleanup.policy:    delete")
		require.Regexp(t, `(?m)^2\s+0\s+3$`, text)

		r := runDuality(t, "", be.args("topics", "create", "orders")...)
		require.Equal(t, 1, r.code)
		require.Contains(t, r.stderr, "already exists")

		r = runDuality(t, "", be.args("topics", "delete", "users", "nope")...)
		require.Equal(t, 1, r.code, "an unknown topic among them deletes nothing")
		require.Contains(t, r.stderr, `"nope"`)
		require.Contains(t, ok(t, "", be.args("topics", "delete", "users")...), "deleted topic users")
		require.NoError(t, json.Unmarshal([]byte(ok(t, "", be.args("topics", "list", "-o", "json")...)), &list))
		require.Len(t, list, 1)
		require.Equal(t, "orders", list[0].Name)
	})
}

func TestProduceConsume(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		ok(t, "", be.args("topics", "create", "t", "-p", "2")...)

		// key<tab>value to partition 1; a header on every record.
		r := runDuality(t, "a\tone\nb\ttwo\n\nc\tthree\n", be.args("produce", "t", "-p", "1", "-H", "src=cli")...)
		require.Equal(t, 0, r.code, r.stderr)
		require.Equal(t, "produced 3 records to t\n", r.stderr)
		// JSON lines: own partition, headers in order, timestamps, a tombstone.
		lines := strings.Join([]string{
			`{"key":"d","value":"four","partition":0,"timestamp":"2026-03-01T12:00:00.123Z","headers":[{"key":"h","value":"1"},{"key":"h","value":"2"}]}`,
			`{"key":"e","value":null,"partition":0,"timestamp":1772366460000}`,
			`{"key":"f","value":"six","partition":0,"headers":{"x":"y"}}`,
		}, "\n")
		ok(t, lines, be.args("produce", "t", "-f", "json")...)

		recs := parseConsumed(t, ok(t, "", be.args("consume", "t")...))
		require.Len(t, recs, 6)
		byPart := map[int32][]consumed{}
		for _, r := range recs {
			byPart[r.Partition] = append(byPart[r.Partition], r)
		}
		require.Equal(t, []string{`"one"`, `"two"`, `"three"`}, values(byPart[1]))
		require.Equal(t, []string{`"four"`, `null`, `"six"`}, values(byPart[0]))
		require.Equal(t, `"a"`, string(byPart[1][0].Key))
		require.Len(t, byPart[1][0].Headers, 1)
		require.Equal(t, "src", byPart[1][0].Headers[0].Key)
		require.Equal(t, "cli", *byPart[1][0].Headers[0].Value)
		d := byPart[0][0]
		require.Equal(t, int64(0), d.Offset)
		require.True(t, d.Timestamp.Equal(time.Date(2026, 3, 1, 12, 0, 0, 123e6, time.UTC)), "%v", d.Timestamp)
		require.Len(t, d.Headers, 2)
		require.Equal(t, []string{"1", "2"}, []string{*d.Headers[0].Value, *d.Headers[1].Value})
		require.Equal(t, time.UnixMilli(1772366460000).UTC(), byPart[0][1].Timestamp.UTC())

		// Where to start, and how many.
		require.Equal(t, []string{`"two"`, `"three"`}, values(parseConsumed(t, ok(t, "", be.args("consume", "t", "-p", "1", "--from", "1")...))))
		require.Equal(t, []string{`"three"`}, values(parseConsumed(t, ok(t, "", be.args("consume", "t", "-p", "1", "--from", "-1")...))))
		require.Empty(t, ok(t, "", be.args("consume", "t", "--from", "end")...))
		require.Len(t, parseConsumed(t, ok(t, "", be.args("consume", "t", "--max", "4")...)), 4)
		fromTime := parseConsumed(t, ok(t, "", be.args("consume", "t", "-p", "0", "--from", "2026-03-01T12:00:00.124Z")...))
		require.Equal(t, []string{`null`, `"six"`}, values(fromTime), "the first record at or after the time")
	})
}

// TestCodecs produces with each codec and reads back with it: the bytes
// are the package codec's, so an app's codec reads them too.
func TestCodecs(t *testing.T) {
	be := embeddedBackend(t)
	ok(t, "", be.args("topics", "create", "c")...)
	cases := []struct {
		codec, in, want string
	}{
		{"string", `"héllo"`, `"héllo"`},
		{"bytes", `"AAEC/w=="`, `"AAEC/w=="`},
		{"int64", `-42`, `-42`},
		{"int64", `"9007199254740993"`, `9007199254740993`},
		{"json", `{"b": [1, 2.5], "a": null}`, `{"b":[1,2.5],"a":null}`},
		{"msgpack", `{"n": 7, "f": 1.5, "s": "x", "l": [true, null]}`, `{"f":1.5,"l":[true,null],"n":7,"s":"x"}`},
	}
	for i, c := range cases {
		line := fmt.Sprintf(`{"key": %d, "value": %s}`, i, c.in)
		ok(t, line, be.args("produce", "c", "-f", "json", "--key-codec", "int64", "--value-codec", c.codec)...)
		out := ok(t, "", be.args("consume", "c", "--from", fmt.Sprint(i), "-n", "1", "--key-codec", "int64", "--value-codec", c.codec)...)
		recs := parseConsumed(t, out)
		require.Len(t, recs, 1)
		require.Equal(t, fmt.Sprint(i), string(recs[0].Key))
		require.JSONEq(t, c.want, string(recs[0].Value), "codec %s", c.codec)
	}
	// A value its codec cannot decode is shown with its bytes; the
	// others still are.
	out := ok(t, "", be.args("consume", "c", "--value-codec", "int64", "--key-codec", "int64")...)
	recs := parseConsumed(t, out)
	require.Len(t, recs, len(cases))
	require.Equal(t, "null", string(recs[0].Value))
	require.Contains(t, recs[0].ValueError, "int64 codec")
	require.Equal(t, "aMOpbGxv", recs[0].ValueBase64)
	require.Equal(t, "-42", string(recs[2].Value))
}

func TestErrors(t *testing.T) {
	be := embeddedBackend(t)
	ok(t, "", be.args("topics", "create", "t", "-p", "2")...)
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, []byte("x"), 0o644))
	empty := t.TempDir()
	damaged := filepath.Join(t.TempDir(), "damaged")
	ok(t, "", "--dir", damaged, "topics", "create", "x")
	require.NoError(t, os.WriteFile(filepath.Join(damaged, "duality.identity"), []byte("garbage"), 0o644))

	cases := []struct {
		name  string
		stdin string
		args  []string
		code  int
		say   string
	}{
		{"no log", "", []string{"topics", "list"}, 2, "use --dir DIR"},
		{"both logs", "", []string{"--dir", "d", "--brokers", "h:1", "topics", "list"}, 2, "exclude each other"},
		{"unknown flag", "", be.args("topics", "list", "--bogus"), 2, "unknown flag: --bogus"},
		{"unknown command", "", be.args("frobnicate"), 2, `unknown command "frobnicate"`},
		{"unknown subcommand", "", be.args("topics", "frob"), 2, `unknown subcommand "frob"`},
		{"missing argument", "", be.args("consume"), 2, "accepts 1 arg"},
		{"bad partitions", "", be.args("topics", "create", "u", "-p", "0"), 2, "--partitions 0"},
		{"bad topic name", "", be.args("topics", "create", "a/b"), 2, "invalid topic name"},
		{"bad codec", "", be.args("consume", "t", "--value-codec", "avro"), 2, `--value-codec "avro"`},
		{"bad from", "", be.args("consume", "t", "--from", "yesterday"), 2, `--from "yesterday"`},
		{"offset without partition", "", be.args("consume", "t", "--from", "3"), 2, "add --partition"},
		{"offset out of range", "", be.args("consume", "t", "-p", "0", "--from", "3"), 1, "holds offsets 0 to -1"},
		{"follow on a directory", "", be.args("consume", "t", "--follow"), 2, "--follow needs --brokers"},
		{"bad output", "", be.args("topics", "list", "-o", "yaml"), 2, `--output "yaml"`},
		{"bad brokers", "", []string{"--brokers", "nohost", "topics", "list"}, 2, `"nohost" is not host:port`},
		{"no cluster", "", []string{"--brokers", "127.0.0.1:1", "--timeout", "300ms", "topics", "list"}, 1, "does not answer"},
		{"unknown topic", "", be.args("consume", "nope"), 1, `topic "nope": broker: unknown topic`},
		{"partition out of range", "a\tb\n", be.args("produce", "t", "-p", "5"), 1, "has partitions 0 to 1"},
		{"unknown group", "", be.args("groups", "describe", "g"), 1, "unknown group"},
		{"missing directory", "", []string{"--dir", filepath.Join(empty, "nope"), "topics", "list"}, 1, "does not exist"},
		{"file as directory", "", []string{"--dir", file, "topics", "list"}, 1, "is not a directory"},
		{"not a data directory", "", []string{"--dir", empty, "topics", "list"}, 1, "is not a Duality data directory"},
		{"damaged directory", "", []string{"--dir", damaged, "topics", "list"}, 1, "identity"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := runDuality(t, c.stdin, c.args...)
			require.Equal(t, c.code, r.code, "stderr: %s", r.stderr)
			require.Contains(t, r.stderr, c.say)
			require.True(t, strings.HasPrefix(r.stderr, "duality: "), "one error line: %q", r.stderr)
			require.Empty(t, r.stdout)
		})
	}
	entries, err := os.ReadDir(empty)
	require.NoError(t, err)
	require.Empty(t, entries, "a refused directory is left untouched")
}

// TestBadInputLine: a line that cannot be read stops produce with its line
// number, after the lines before it and before any after it.
func TestBadInputLine(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		ok(t, "", be.args("topics", "create", "t")...)
		for _, c := range []struct{ format, input, say string }{
			{"kv", "a\t1\nb\t2\nno separator\nc\t3\n", `line 3: no separator "\t"`},
			{"json", `{"key":"a","value":"1"}` + "\n" + `{"key":"b","value":"2"}` + "\n" + `{"key":"x","vaule":"typo"}` + "\n" + `{"key":"c","value":"3"}`, `line 3: not a JSON object`},
		} {
			r := runDuality(t, c.input, be.args("produce", "t", "-f", c.format)...)
			require.Equal(t, 1, r.code)
			require.Contains(t, r.stderr, c.say)
			require.Contains(t, r.stderr, "2 records before it produced, none after it")
		}
		require.Equal(t, []string{`"1"`, `"2"`, `"1"`, `"2"`}, values(parseConsumed(t, ok(t, "", be.args("consume", "t")...))))
	})
}

// TestLocked: a data directory a running app holds is refused, naming the
// app's process, and left as it was.
func TestLocked(t *testing.T) {
	be := embeddedBackend(t)
	ok(t, "", be.args("topics", "create", "t")...)
	_, closeBroker := be.open(t) // as a running app does
	r := runDuality(t, "", be.args("topics", "list")...)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "in use by a running app")
	require.Contains(t, r.stderr, fmt.Sprintf("locked by process %d", os.Getpid()))
	closeBroker()
	require.Contains(t, ok(t, "", be.args("topics", "list")...), "t ")
}

// TestFollow: consume --follow prints records produced after it started,
// stops at --max, and ends with exit code 0 on SIGINT.
func TestFollow(t *testing.T) {
	be := kafkaBackend(t)
	ok(t, "", be.args("topics", "create", "t", "-p", "2")...)
	ok(t, "a\t1\n", be.args("produce", "t")...)

	ctx, cancel := context.WithTimeout(t.Context(), waitBound)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, be.args("consume", "t", "--follow")...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr lockedBuffer // written by exec's goroutine while the test reads lines
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	lines := bufio.NewScanner(stdout)
	next := func() consumed {
		t.Helper()
		require.True(t, lines.Scan(), "a line: %v %s", lines.Err(), stderr.String())
		var r consumed
		require.NoError(t, json.Unmarshal(lines.Bytes(), &r))
		return r
	}
	require.Equal(t, `"1"`, string(next().Value))
	// It is following now: records produced from here on reach it.
	b, closeBroker := be.open(t)
	defer closeBroker()
	require.NoError(t, b.Produce(t.Context(), []broker.Record{
		{Topic: "t", Partition: 1, Key: []byte("b"), Value: []byte("2")},
		{Topic: "t", Partition: 1, Key: []byte("c"), Value: []byte("3")},
	}))
	require.Equal(t, `"2"`, string(next().Value))
	require.Equal(t, `"3"`, string(next().Value))
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	require.NoError(t, cmd.Wait(), "interrupting a follow is its normal end: %s", stderr.String())

	// --max ends a follow by itself.
	out := ok(t, "", be.args("consume", "t", "--follow", "--max", "3")...)
	require.Equal(t, []string{`"1"`, `"2"`, `"3"`}, valuesSorted(parseConsumed(t, out)))
}

func valuesSorted(recs []consumed) []string {
	v := values(recs)
	slices.Sort(v)
	return v
}

// lockedBuffer is a bytes.Buffer safe for one writer and concurrent
// readers of String.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
