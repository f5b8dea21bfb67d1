package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
)

// to returns the flags that name be as mirror's destination.
func (be backend) to() []string {
	return []string{"--to-" + strings.TrimPrefix(be.flags[0], "--"), be.flags[1]}
}

// mirrorArgs is be's flags, mirror, args and the destination's flags.
func mirrorArgs(src, dst backend, args ...string) []string {
	return append(src.args(append([]string{"mirror"}, args...)...), dst.to()...)
}

// copied is what a mirror must keep of a record: all but its offset.
type copied struct {
	Topic     string
	Partition int32
	Key       []byte
	Value     []byte
	Headers   []broker.Header
	Millis    int64
}

// readCopied reads topics of be, partitions in order, each in offset
// order, without their offsets, dropping prefix from their topics.
func readCopied(t *testing.T, be backend, prefix string, topics ...string) []copied {
	t.Helper()
	b, closeBroker := be.open(t)
	defer closeBroker()
	var names []string
	for _, topic := range topics {
		names = append(names, prefix+topic)
	}
	recs, err := broker.ReadAll(t.Context(), b, names...)
	require.NoError(t, err)
	out := make([]copied, len(recs))
	for i, r := range recs {
		out[i] = copied{Topic: strings.TrimPrefix(r.Topic, prefix), Partition: r.Partition, Key: r.Key, Value: r.Value,
			Headers: r.Headers, Millis: r.Timestamp.UnixMilli()}
	}
	return out
}

// produceSource writes n records to each partition of topic on b, in
// Produce calls of about 10 records (many small batches), with keys,
// values, headers and timestamps that differ; tag tells runs apart. Every
// fifth record has no key (unless the topic is compacted: Kafka refuses
// those), every seventh an empty value.
func produceSource(t *testing.T, b broker.Broker, topic string, partitions int32, n int, tag string) {
	t.Helper()
	info, err := b.DescribeTopic(t.Context(), topic)
	require.NoError(t, err)
	keyless := info.Config.Cleanup == broker.CleanupDelete
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	var batch []broker.Record
	for i := range n {
		for p := range partitions {
			r := broker.Record{Topic: topic, Partition: p,
				Key:       fmt.Appendf(nil, "k%d", i%17),
				Value:     fmt.Appendf(nil, "%s-%d-%d", tag, p, i),
				Timestamp: base.Add(time.Duration(i) * time.Millisecond),
				Headers:   []broker.Header{{Key: "run", Value: []byte(tag)}, {Key: "i", Value: fmt.Append(nil, i)}},
			}
			if i%5 == 0 && keyless {
				r.Key = nil
			}
			if i%7 == 0 {
				r.Value = []byte{}
			}
			batch = append(batch, r)
		}
		if len(batch) >= 10 || i == n-1 {
			require.NoError(t, b.Produce(t.Context(), batch))
			batch = batch[:0]
		}
	}
}

// mirrorPairs are the directions a mirror is tested in.
func mirrorPairs(t *testing.T, fn func(t *testing.T, src, dst backend)) {
	pairs := []struct {
		name     string
		src, dst func(*testing.T) backend
	}{
		{"embedded-to-kafka", embeddedBackend, kafkaBackend},
		{"kafka-to-embedded", kafkaBackend, embeddedBackend},
		{"embedded-to-embedded", embeddedBackend, embeddedBackend},
		{"kafka-to-kafka", kafkaBackend, kafkaBackend},
	}
	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) { fn(t, p.src(t), p.dst(t)) })
	}
}

// TestMirror copies a topic of three partitions and a compacted one with
// tombstones (compacted on an embedded source, so its offsets have
// gaps), in every direction, and checks that the destination holds the
// records of the source in order with their keys, values, headers and
// timestamps, that the topics were created like the source's, that a
// second run copies nothing and a third only the records produced since,
// and that records the source deleted before they were copied are
// skipped and reported.
func TestMirror(t *testing.T) {
	mirrorPairs(t, func(t *testing.T, src, dst backend) {
		b, closeBroker := src.open(t)
		ctx := t.Context()
		require.NoError(t, b.CreateTopic(ctx, "orders", broker.TopicConfig{Partitions: 3, RetentionTime: -1}))
		require.NoError(t, b.CreateTopic(ctx, "users", broker.TopicConfig{Partitions: 2, Cleanup: broker.CleanupCompact,
			DeleteRetention: time.Hour}))
		require.NoError(t, b.CreateTopic(ctx, "ignored", broker.TopicConfig{Partitions: 1}))
		produceSource(t, b, "orders", 3, 40, "first")
		produceSource(t, b, "users", 2, 40, "first")
		var tombstones []broker.Record
		for i := range 5 {
			tombstones = append(tombstones, broker.Record{Topic: "users", Partition: int32(i % 2), Key: fmt.Appendf(nil, "k%d", i)})
		}
		require.NoError(t, b.Produce(ctx, tombstones))
		if eb, ok := b.(*embedded.Broker); ok {
			require.NoError(t, eb.Cleanup(ctx)) // compaction: gaps in the offsets of users
		}
		closeBroker()

		r := runDuality(t, "", mirrorArgs(src, dst, "--pattern", "orders|users")...)
		require.Equal(t, 0, r.code, r.stderr)
		want := readCopied(t, src, "", "orders", "users")
		require.Contains(t, r.stderr, "created topic orders on the destination: 3 partitions, cleanup delete\n")
		require.Contains(t, r.stderr, "created topic users on the destination: 2 partitions, cleanup compact\n")
		orders := 120
		require.Contains(t, r.stderr, fmt.Sprintf("mirrored %d records: orders %d, users %d\n", len(want), orders, len(want)-orders))
		require.Equal(t, want, readCopied(t, dst, "", "orders", "users"))
		var nils, empties int
		for _, c := range want {
			if c.Value == nil {
				nils++
			} else if len(c.Value) == 0 {
				empties++
			}
		}
		require.Equal(t, 5, nils, "the tombstones are copied as tombstones")
		require.NotZero(t, empties)

		d, closeDst := dst.open(t)
		infos, err := d.ListTopics(ctx)
		require.NoError(t, err)
		closeDst()
		require.Len(t, infos, 2, "only the topics matching the pattern")
		require.Equal(t, int32(3), infos[0].Config.Partitions)
		require.Equal(t, broker.CleanupDelete, infos[0].Config.Cleanup)
		require.Negative(t, infos[0].Config.RetentionTime, "kept forever, as on the source")
		require.Equal(t, broker.CleanupCompact, infos[1].Config.Cleanup)
		require.Equal(t, time.Hour, infos[1].Config.DeleteRetention)

		// Up to date: nothing to copy.
		r = runDuality(t, "", mirrorArgs(src, dst, "orders", "users")...)
		require.Equal(t, 0, r.code, r.stderr)
		require.Equal(t, "mirrored 0 records: the destination was up to date\n", r.stderr)

		// New records, some of them deleted from the source before a
		// mirror copies them.
		b, closeBroker = src.open(t)
		produceSource(t, b, "orders", 3, 10, "second")
		require.NoError(t, b.DeleteRecords(ctx, "orders", 1, 40+4))
		closeBroker()
		r = runDuality(t, "", mirrorArgs(src, dst, "orders")...)
		require.Equal(t, 0, r.code, r.stderr)
		require.Contains(t, r.stderr, "orders/1: offsets 40 to 43 were deleted from the source (retention, compaction or DeleteRecords) before they were copied: skipped\n")
		require.Contains(t, r.stderr, "mirrored 26 records: orders 26\n")
		got := readCopied(t, dst, "", "orders")
		now := readCopied(t, src, "", "orders") // partition 1 lost its first 44
		var head []copied
		for _, c := range want {
			if c.Topic == "orders" && c.Partition == 1 {
				head = append(head, c)
			}
		}
		var wantOrders []copied
		for _, c := range now {
			if c.Partition == 1 && len(head) > 0 {
				wantOrders = append(wantOrders, head...)
				head = nil
			}
			wantOrders = append(wantOrders, c)
		}
		require.Equal(t, wantOrders, got)

		r = runDuality(t, "", mirrorArgs(src, dst, "orders")...)
		require.Equal(t, 0, r.code, r.stderr)
		require.Equal(t, "mirrored 0 records: the destination was up to date\n", r.stderr, "the skip was reported once")
	})
}

// TestMirrorGroups copies a group's committed offsets with --groups,
// translated: the destination record at a translated offset is the one
// the group was at on the source, and an offset at the end stays at the
// end.
func TestMirrorGroups(t *testing.T) {
	mirrorPairs(t, func(t *testing.T, src, dst backend) {
		ctx := t.Context()
		in := func(p int32) broker.TopicPartition { return broker.TopicPartition{Topic: "in", Partition: p} }
		b, closeBroker := src.open(t)
		require.NoError(t, b.CreateTopic(ctx, "in", broker.TopicConfig{Partitions: 3}))
		produceSource(t, b, "in", 3, 30, "g")
		require.NoError(t, b.CommitOffsets(ctx, "app", map[broker.TopicPartition]int64{in(0): 10, in(1): 30}))
		closeBroker()

		r := runDuality(t, "", mirrorArgs(src, dst, "in", "--groups", "app,nobody")...)
		require.Equal(t, 0, r.code, r.stderr)
		require.Contains(t, r.stderr, "group nobody has no committed offsets in the mirrored topics: nothing to copy\n")
		require.Contains(t, r.stderr, "copied the offsets of group app: 2 partitions\n")
		d, closeDst := dst.open(t)
		offs, err := d.FetchOffsets(ctx, "app", []broker.TopicPartition{in(0), in(1), in(2)})
		require.NoError(t, err)
		require.Len(t, offs, 2, "partition 2 had no offset")
		recs, err := broker.Read(ctx, d, map[broker.TopicPartition]int64{in(0): offs[in(0)]})
		require.NoError(t, err)
		require.Equal(t, "g-0-10", string(recs[0].Value), "the record the group was at")
		end, err := d.ListOffsets(ctx, "in", 1)
		require.NoError(t, err)
		require.Equal(t, end.Latest, offs[in(1)], "a group at the end stays at the end")
		closeDst()

		// A later run cannot translate an offset an earlier run copied.
		r = runDuality(t, "", mirrorArgs(src, dst, "in", "--groups", "app")...)
		require.Equal(t, 0, r.code, r.stderr)
		require.Contains(t, r.stderr, "group app: offset 10 of in/0 was copied by an earlier run: not translated")
		require.Contains(t, r.stderr, "copied the offsets of group app: 1 partition\n")
	})
}

// TestMirrorPrefix copies a topic within one Kafka cluster under a
// prefix, and refuses to copy it onto itself.
func TestMirrorPrefix(t *testing.T) {
	be := kafkaBackend(t)
	b, closeBroker := be.open(t)
	require.NoError(t, b.CreateTopic(t.Context(), "t", broker.TopicConfig{Partitions: 2}))
	produceSource(t, b, "t", 2, 15, "x")
	closeBroker()
	r := runDuality(t, "", mirrorArgs(be, be, "t")...)
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, "--to-brokers is the source cluster: give --prefix")
	ok(t, "", mirrorArgs(be, be, "t", "--prefix", "backup.")...)
	require.Equal(t, readCopied(t, be, "", "t"), readCopied(t, be, "backup.", "t"))
}

func TestMirrorErrors(t *testing.T) {
	src, dst := embeddedBackend(t), embeddedBackend(t)
	ok(t, "", src.args("topics", "create", "orders", "-p", "3")...)
	ok(t, "", src.args("topics", "create", "users")...)
	ok(t, "a\t1\nb\t2\n", src.args("produce", "orders")...)
	ok(t, "", dst.args("topics", "create", "orders", "-p", "2")...)

	cases := []struct {
		name string
		args []string
		code int
		say  string
	}{
		{"no destination", src.args("mirror", "orders"), 2, "mirror needs a destination"},
		{"two destinations", append(src.args("mirror", "orders", "--to-brokers", "h:1"), dst.to()...), 2, "exclude each other"},
		{"no topics", mirrorArgs(src, dst), 2, "mirror needs topics"},
		{"topics and --all", mirrorArgs(src, dst, "orders", "--all"), 2, "one of them"},
		{"bad pattern", mirrorArgs(src, dst, "--pattern", "("), 2, `--pattern "("`},
		{"follow on a directory", mirrorArgs(src, dst, "--all", "--follow"), 2, "--follow needs --brokers"},
		{"same directory", append(src.args("mirror", "orders", "--to-dir"), src.flags[1]), 2, "is the source directory"},
		{"bad batch", mirrorArgs(src, dst, "orders", "--batch-records", "0"), 2, "--batch-records 0"},
		{"bad replication", mirrorArgs(src, dst, "orders", "--replication-factor", "0"), 2, "--replication-factor 0"},
		{"own group", mirrorArgs(src, dst, "orders", "--groups", "duality-mirror"), 2, "is the mirror's own --progress-group"},
		{"bad destination brokers", src.args("mirror", "orders", "--to-brokers", "nohost"), 2, `--to-brokers: "nohost" is not host:port`},
		{"unknown topic", mirrorArgs(src, dst, "nope"), 1, `topic "nope": broker: unknown topic`},
		{"no match", mirrorArgs(src, dst, "--pattern", "nope.*"), 1, `no topic of the source matches --pattern "nope.*"`},
		{"fewer partitions", mirrorArgs(src, dst, "users", "orders"), 1,
			"destination topic orders has 2 partitions, fewer than the 3 of source topic orders"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := runDuality(t, "", c.args...)
			require.Equal(t, c.code, r.code, "stderr: %s", r.stderr)
			require.Contains(t, r.stderr, c.say)
			require.True(t, strings.HasPrefix(r.stderr, "duality: "), "one error line: %q", r.stderr)
			require.Empty(t, r.stdout)
		})
	}
	// The refusal came before anything was created or copied.
	require.Equal(t, "orders\n", listTopicNames(t, dst))
	require.Empty(t, readCopied(t, dst, "", "orders"))

	// A destination whose progress is ahead of the source: another source.
	other := embeddedBackend(t)
	ok(t, "", other.args("topics", "create", "users")...)
	ok(t, "a\t1\nb\t2\n", src.args("produce", "users")...)
	ok(t, "", mirrorArgs(src, dst, "users")...)
	r := runDuality(t, "", mirrorArgs(other, dst, "users")...)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "group duality-mirror on the destination says users/0 was copied up to offset 2, but the source partition ends at 0: is it another source?")
	ok(t, "", mirrorArgs(other, dst, "users", "--progress-group", "from-other")...)
}

func listTopicNames(t *testing.T, be backend) string {
	t.Helper()
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(ok(t, "", be.args("topics", "list")...)), "\n")[1:] {
		names = append(names, strings.Fields(line)[0])
	}
	return strings.Join(names, "\n") + "\n"
}

// killableMirror is a mirror run as a child process that a kfake control
// function may kill with SIGKILL.
type killableMirror struct {
	cmd    *exec.Cmd
	proc   atomic.Pointer[os.Process]
	stderr lockedBuffer
	killed atomic.Bool
}

// newMirror prepares a mirror with args; start starts it.
func newMirror(args ...string) *killableMirror {
	m := &killableMirror{cmd: exec.Command(binary, args...)}
	m.cmd.Stderr = &m.stderr
	return m
}

func (m *killableMirror) start(t *testing.T) {
	t.Helper()
	require.NoError(t, m.cmd.Start())
	m.proc.Store(m.cmd.Process)
}

// kill kills the mirror with SIGKILL, at once, whatever it is doing.
func (m *killableMirror) kill() {
	if p := m.proc.Load(); p != nil && !m.killed.Swap(true) {
		_ = p.Kill()
	}
}

// wait waits for the mirror's end and reports whether it was killed.
func (m *killableMirror) wait(t *testing.T) bool {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- m.cmd.Wait() }()
	select {
	case err := <-done:
		if m.killed.Load() {
			require.Error(t, err)
			return true
		}
		require.NoError(t, err, m.stderr.String())
		return false
	case <-time.After(waitBound):
		m.kill()
		<-done
		t.Fatalf("the mirror did not end: %s", m.stderr.String())
		return false
	}
}

// killAt makes c kill m when it receives the n-th request of key (before
// it handles it, which it then does as usual).
func killAt(c *kfake.Cluster, m *killableMirror, key kmsg.Key, n int) {
	var seen int
	c.ControlKey(int16(key), func(kmsg.Request) (kmsg.Response, error, bool) {
		seen++
		if seen < n {
			c.KeepControl()
			return nil, nil, false
		}
		m.kill()
		return nil, nil, false
	})
}

// TestMirrorKill kills mirrors with SIGKILL mid-copy, at requests a
// kfake cluster sees, and restarts them: the destination ends up with
// every record of the source once, in order, with its key, value,
// headers and timestamp.
func TestMirrorKill(t *testing.T) {
	const perPartition = 300
	check := func(t *testing.T, src, dst backend) {
		t.Helper()
		want := readCopied(t, src, "", "orders")
		require.Len(t, want, 3*perPartition)
		require.Equal(t, want, readCopied(t, dst, "", "orders"))
	}
	partial := func(t *testing.T, dst backend) {
		t.Helper()
		b, closeBroker := dst.open(t)
		_, err := b.DescribeTopic(t.Context(), "orders")
		closeBroker()
		require.NoError(t, err, "killed after the topic was created")
		n := len(readCopied(t, dst, "", "orders"))
		require.Greater(t, n, 0, "killed mid-copy, after some commits")
		require.Less(t, n, 3*perPartition, "killed mid-copy, before the last commit")
		t.Logf("killed with %d of %d records copied", n, 3*perPartition)
	}

	t.Run("embedded-to-kafka", func(t *testing.T) {
		src := embeddedBackend(t)
		dst, cluster := newKafkaBackend(t)
		b, closeBroker := src.open(t)
		require.NoError(t, b.CreateTopic(t.Context(), "orders", broker.TopicConfig{Partitions: 3}))
		produceSource(t, b, "orders", 3, perPartition, "k")
		closeBroker()
		args := mirrorArgs(src, dst, "orders", "--batch-records", "40")
		// Killed while a transaction is open: its records written,
		// not committed.
		m := newMirror(args...)
		killAt(cluster, m, kmsg.Produce, 6)
		m.start(t)
		require.True(t, m.wait(t), "killed")
		partial(t, dst)
		// Killed once it asked to commit a transaction, which the
		// cluster then commits.
		m = newMirror(args...)
		killAt(cluster, m, kmsg.EndTxn, 5)
		m.start(t)
		require.True(t, m.wait(t), "killed")
		partial(t, dst)
		m = newMirror(args...)
		m.start(t)
		require.False(t, m.wait(t))
		require.Contains(t, m.stderr.String(), "mirrored ")
		check(t, src, dst)
	})

	t.Run("kafka-to-embedded", func(t *testing.T) {
		src, cluster := newKafkaBackend(t)
		dst := embeddedBackend(t)
		b, closeBroker := src.open(t)
		require.NoError(t, b.CreateTopic(t.Context(), "orders", broker.TopicConfig{Partitions: 3}))
		produceSource(t, b, "orders", 3, perPartition, "e")
		closeBroker()
		// Small fetches: one holds a few of the source's batches.
		args := mirrorArgs(src, dst, "orders", "--batch-bytes", "1500")
		for _, at := range []int{5, 3} {
			m := newMirror(args...)
			killAt(cluster, m, kmsg.Fetch, at)
			m.start(t)
			require.True(t, m.wait(t), "killed")
			partial(t, dst)
		}
		m := newMirror(args...)
		m.start(t)
		require.False(t, m.wait(t))
		check(t, src, dst)
	})
}

// TestMirrorFollow: mirror --follow copies records produced after it
// started, and ends with exit code 0 on SIGINT.
func TestMirrorFollow(t *testing.T) {
	src, dst := kafkaBackend(t), kafkaBackend(t)
	ok(t, "", src.args("topics", "create", "t", "-p", "2")...)
	ok(t, "a\t1\nb\t2\n", src.args("produce", "t")...)

	ctx, cancel := context.WithTimeout(t.Context(), waitBound)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, mirrorArgs(src, dst, "--all", "--follow")...)
	pipe, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	// Its first line says it created the topic: it is copying now.
	lines := bufio.NewScanner(pipe)
	require.True(t, lines.Scan(), "a line: %v", lines.Err())
	require.Equal(t, "created topic t on the destination: 2 partitions, cleanup delete", lines.Text())
	rest := make(chan string, 1)
	go func() {
		var b strings.Builder
		for lines.Scan() {
			b.WriteString(lines.Text() + "\n")
		}
		rest <- b.String()
	}()

	b, closeSrc := src.open(t)
	defer closeSrc()
	require.NoError(t, b.Produce(ctx, []broker.Record{
		{Topic: "t", Partition: 1, Key: []byte("c"), Value: []byte("3")},
		{Topic: "t", Partition: 0, Key: []byte("d"), Value: []byte("4")},
	}))
	// consume --follow on the destination waits for the four records.
	out := ok(t, "", dst.args("consume", "t", "--follow", "--max", "4")...)
	require.Equal(t, []string{`"1"`, `"2"`, `"3"`, `"4"`}, valuesSorted(parseConsumed(t, out)))
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	tail := <-rest // the pipe is read to its end before Wait
	require.NoError(t, cmd.Wait(), "interrupting a follow is its normal end: %s", tail)
	require.Equal(t, "mirrored 4 records: t 4\n", tail)

	require.NoError(t, b.Produce(ctx, []broker.Record{{Topic: "t", Partition: 0, Key: []byte("e"), Value: []byte("5")}}))
	r := runDuality(t, "", mirrorArgs(src, dst, "t")...)
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, "mirrored 1 record: t 1\n", r.stderr, "it resumes where the follow stopped")
	require.Equal(t, readCopied(t, src, "", "t"), readCopied(t, dst, "", "t"))
}
