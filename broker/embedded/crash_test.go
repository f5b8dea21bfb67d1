package embedded_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
)

// The crash test re-executes the test binary as a child process
// (TestCrashChild, selected by crashEnv) that writes into a data directory
// and prints one line per acknowledged call. The parent kills it with
// SIGKILL at a random point, reopens the directory and checks that every
// acknowledged record is there exactly once, that no call is visible in
// part, that offsets are contiguous from 0, and that group offsets and the
// records of their commit are present together. The child modes (see
// crashMode) also kill it during retention and compaction and while it
// deletes and recreates topics; in interval-sync mode what is lost must be
// the newest and recent.
//
// TestCrashChild also serves the corruption and fault tests ("verify",
// "errorfs", "enospc" jobs, see runJobs) and TestBadLocked ("lock").

const (
	crashEnv      = "DUALITY_CRASH_CHILD"   // "<mode> <interval> <cycle or first job> <dir>"
	crashBatchEnv = "DUALITY_CRASH_BATCHES" // crashMode.batches, when not 0
	crashTopic    = "log"                   // produce mode: 3 partitions, one producer each
	crashNoise    = "noise"                 // commit mode: a concurrent producer
	crashIn       = "in"                    // commit mode: group offsets only
	crashOutA     = "out-a"                 // commit mode: 2 partitions
	crashOutB     = "out-b"                 // commit mode: 1 partition
	crashGroup    = "g"
	crashChildMax = 30 * time.Second // a child left alone exits after this

	// crashSyncInterval is the children's WithSyncInterval in interval
	// mode; intervalLossBound bounds how old a lost acknowledgement may be
	// (the interval plus generous scheduling slack on a loaded machine).
	crashSyncInterval = 20 * time.Millisecond
	intervalLossBound = 1500 * time.Millisecond
)

// crashMode is one kind of child run.
type crashMode struct {
	// kind is "produce" (three producers; "paced": at most one batch per
	// producer every 2 ms), "commit" (Commit with group
	// offsets, and a producer), "cleanup" (producers to a compacted and
	// a size-retained topic while Cleanup runs in a loop), "topics"
	// (topics deleted and recreated under the same names) or "purge" (a
	// producer while DeleteRecords runs in a loop).
	kind     string
	interval bool // WithSyncInterval, else sync before ack
	// batches, for "produce" only, makes the run deterministic in size:
	// each producer stops after this many batches (their sizes drawn from
	// a fixed seed) and the child waits to be killed. 0: no limit, random
	// sizes; the child writes until it is killed, so how much it writes
	// depends on the machine's load.
	batches int
}

func (m crashMode) String() string {
	if m.interval {
		return m.kind + "-interval"
	}
	return m.kind + "-sync"
}

func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("kills child processes; skipped under -short")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("DUALITY_CRASH_SEED"); s != "" {
		var err error
		seed, err = strconv.ParseUint(s, 10, 64)
		require.NoError(t, err)
	}
	t.Logf("seed %d (DUALITY_CRASH_SEED=%d repeats the kill points; process timing still varies)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	for _, tc := range []struct {
		mode   crashMode
		cycles int
		// runFor, when set, kills each child that long after its first
		// acknowledgement instead of after a random number of them.
		runFor time.Duration
	}{
		{crashMode{kind: "produce"}, 5, 0},
		{crashMode{kind: "commit"}, 5, 0},
		{crashMode{kind: "cleanup"}, 4, 0},
		{crashMode{kind: "topics"}, 4, 0},
		{crashMode{kind: "purge"}, 3, 0},
		{crashMode{kind: "produce", interval: true}, 2, 0},
		{crashMode{kind: "commit", interval: true}, 2, 0},
		// Long enough for the interval syncs to matter: what is lost must
		// be recent (see intervalLossBound).
		{crashMode{kind: "paced", interval: true}, 1, 2500 * time.Millisecond},
	} {
		name := tc.mode.String()
		if tc.runFor > 0 {
			name += "-" + tc.runFor.String()
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			st := newCrashState()
			total := 0
			for cycle := range tc.cycles {
				// Kill after 0 (right after start, possibly inside Open) to 150 acks.
				killAfter := rng.IntN(151)
				if cycle == 0 && killAfter < 10 {
					killAfter += 10 // let the first cycle create its topics
				}
				if tc.runFor > 0 {
					killAfter = -1
				}
				acks := runCrashChild(t, tc.mode, cycle, dir, killAfter, tc.runFor, st)
				total += acks
				t.Logf("cycle %d: killed after %d acks (asked %d)", cycle, acks, killAfter)
				verifyCrashDir(t, tc.mode, dir, st)
			}
			require.Positive(t, total, "the children acknowledged nothing: the test tested nothing")
		})
	}
}

// crashState is what the parent knows from acknowledgements, accumulated
// over the cycles of one data directory.
type crashState struct {
	batches map[string]ackedBatch // by batch id
	commits map[int64]ackedCommit // by commit sequence number
	// topicEvents are the "topics" mode's intent and acknowledgement
	// lines, per topic name, in output order.
	topicEvents map[string][]topicEvent
	// ackedAt is when the parent read each batch's or commit's (by
	// commitID) acknowledgement; now is the time of the line being parsed,
	// killedAt the time of the last SIGKILL.
	ackedAt       map[string]time.Time
	now, killedAt time.Time
	// purged is the highest acknowledged DeleteRecords offset of the
	// "purge" mode.
	purged int64
}

// topicEvent is one line of the "topics" mode about a topic: what ("creating",
// "created", "deleting", "deleted", "offset") and the incarnation (the
// iteration that created it).
type topicEvent struct {
	what string
	inc  int
}

func newCrashState() *crashState {
	return &crashState{batches: map[string]ackedBatch{}, commits: map[int64]ackedCommit{}, ackedAt: map[string]time.Time{}}
}

// ackedBatch is one acknowledged call's records in one partition.
type ackedBatch struct {
	topic     string
	partition int32
	first     int64
	n         int
}

// ackedCommit is one acknowledged Commit: a batch in out-a and one in out-b.
type ackedCommit struct{ a, b ackedBatch }

// runCrashChild runs one child until it has printed killAfter
// acknowledgements (at once when killAfter is 0; when killAfter is -1,
// until runFor after the first one), kills it with SIGKILL, records every
// acknowledgement it printed into st and returns their number.
func runCrashChild(t *testing.T, mode crashMode, cycle int, dir string, killAfter int, runFor time.Duration, st *crashState) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1", "-test.timeout=60s")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %t %d %s", crashEnv, mode.kind, mode.interval, cycle, dir))
	if mode.batches > 0 {
		require.Equal(t, "produce", mode.kind, "a batch limit is for produce mode")
		require.Equal(t, 3*mode.batches, killAfter, "a bounded child is killed after its last acknowledgement")
		cmd.Env = append(cmd.Env, fmt.Sprintf("%s=%d", crashBatchEnv, mode.batches))
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())

	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()

	acks := 0
	var timer <-chan time.Time
	handle := func(line string) {
		t.Helper()
		st.now = time.Now()
		if acked := parseAck(t, line, st); acked {
			acks++
			if acks == 1 && runFor > 0 {
				timer = time.After(runFor)
			}
		}
	}
	killed := false
	kill := func() {
		if !killed {
			killed = true
			_ = cmd.Process.Signal(syscall.SIGKILL)
			st.killedAt = time.Now()
		}
	}
	if killAfter == 0 {
		kill()
	}
	deadline := time.After(crashChildMax)
	for !killed {
		select {
		case line, ok := <-lines:
			if !ok {
				_ = cmd.Wait()
				require.FailNow(t, "child exited before it was killed", "stderr:\n%s", stderr.String())
			}
			handle(line)
			if killAfter >= 0 && acks >= killAfter {
				kill()
			}
		case <-timer:
			kill()
		case <-deadline:
			kill()
			require.FailNow(t, "child too slow", "%d acks in %v; stderr:\n%s", acks, crashChildMax, stderr.String())
		}
	}
	// Every line the child wrote before it died is an acknowledgement too.
	for line := range lines {
		handle(line)
	}
	err = cmd.Wait()
	var exitErr *exec.ExitError
	require.ErrorAs(t, err, &exitErr)
	ws, ok := exitErr.Sys().(syscall.WaitStatus)
	require.True(t, ok)
	require.True(t, ws.Signaled() && ws.Signal() == syscall.SIGKILL, "child ended by %v, not SIGKILL; stderr:\n%s", err, stderr.String())
	return acks
}

// parseAck records one child output line into st and reports whether it was
// an acknowledgement.
func parseAck(t *testing.T, line string, st *crashState) bool {
	t.Helper()
	f := strings.Fields(line)
	switch {
	case len(f) == 6 && f[0] == "ack":
		b := ackedBatch{topic: f[1], partition: int32(atoi(t, f[2])), first: int64(atoi(t, f[3])), n: atoi(t, f[4])}
		_, dup := st.batches[f[5]]
		require.False(t, dup, "batch id %s acknowledged twice", f[5])
		st.batches[f[5]] = b
		st.ackedAt[f[5]] = st.now
		return true
	case len(f) == 7 && f[0] == "commit":
		seq := int64(atoi(t, f[1]))
		c := ackedCommit{
			a: ackedBatch{topic: crashOutA, partition: int32(atoi(t, f[2])), first: int64(atoi(t, f[3])), n: atoi(t, f[4])},
			b: ackedBatch{topic: crashOutB, partition: 0, first: int64(atoi(t, f[5])), n: atoi(t, f[6])},
		}
		_, dup := st.commits[seq]
		require.False(t, dup, "commit %d acknowledged twice", seq)
		st.commits[seq] = c
		st.ackedAt[commitID(seq)] = st.now
		return true
	case len(f) == 3 && slices.Contains([]string{"creating", "created", "deleting", "deleted", "offset"}, f[0]):
		if st.topicEvents == nil {
			st.topicEvents = map[string][]topicEvent{}
		}
		st.topicEvents[f[1]] = append(st.topicEvents[f[1]], topicEvent{f[0], atoi(t, f[2])})
		return f[0] != "creating" && f[0] != "deleting"
	case len(f) == 4 && f[0] == "purged":
		st.purged = max(st.purged, int64(atoi(t, f[3])))
		return true
	case line == "ready":
		return false
	}
	require.FailNow(t, "unexpected child output", "%q", line)
	return false
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	require.NoError(t, err, "parse %q", s)
	return n
}

// verifyCrashDir reopens dir and checks it against what was acknowledged.
func verifyCrashDir(t *testing.T, mode crashMode, dir string, st *crashState) {
	t.Helper()
	b, err := embedded.Open(dir, embedded.WithCleanupInterval(-1))
	require.NoError(t, err, "reopen after SIGKILL")
	defer func() { require.NoError(t, b.Close()) }()

	switch mode.kind {
	case "cleanup":
		verifyCleanup(t, b, st)
		return
	case "topics":
		verifyTopics(t, b, st)
		return
	case "purge":
		verifyPurge(t, b, st)
		return
	}
	produced := crashTopic
	partitions := int32(3)
	if mode.kind == "commit" {
		produced, partitions = crashNoise, 1
	}
	found := map[string]ackedBatch{}
	if _, err := b.DescribeTopic(t.Context(), produced); errors.Is(err, broker.ErrUnknownTopic) {
		for _, a := range st.batches {
			require.NotEqual(t, produced, a.topic, "topic %s is gone but batches were acknowledged", produced)
		}
	} else {
		require.NoError(t, err)
		for p := range partitions {
			readBatches(t, b, produced, p, found)
		}
	}
	var lost []string
	for id, a := range st.batches {
		got, ok := found[id]
		if !ok && mode.interval {
			lost = append(lost, id)
			continue
		}
		require.True(t, ok, "acknowledged batch %s (%+v) is lost", id, a)
		require.Equal(t, a, got, "acknowledged batch %s moved", id)
	}
	if len(lost) > 0 {
		// Interval sync acknowledges before the log reaches the OS (Pebble
		// buffers up to a 32 KiB block in process memory), so a process
		// crash may lose acknowledged batches, but only the newest ones of
		// a partition: what survives is a prefix. The lost ones are
		// forgotten, as the next child reuses their offsets.
		for _, id := range lost {
			a := st.batches[id]
			age := st.killedAt.Sub(st.ackedAt[id])
			require.Less(t, age, intervalLossBound, "interval sync: batch %s acknowledged %v before the kill is lost: the log was not synced", id, age)
			for id2, f := range found {
				require.False(t, f.topic == a.topic && f.partition == a.partition && f.first > a.first,
					"interval sync: acknowledged batch %s at %d lost but the later batch %s at %d survived", id, a.first, id2, f.first)
			}
			delete(st.batches, id)
		}
		t.Logf("interval sync: kill -9 lost %d acknowledged batches (the newest of their partitions)", len(lost))
	}
	if mode.kind == "commit" {
		verifyCommits(t, b, st, mode.interval)
	}
}

// verifyCommits checks the commit-mode topics: the group offset says which
// commits happened (sequence numbers 0..O-1, each commit storing seq+1), and
// exactly those commits' records are present, whole, in both output topics.
func verifyCommits(t *testing.T, b *embedded.Broker, st *crashState, interval bool) {
	t.Helper()
	var lastAcked int64 = -1
	for seq := range st.commits {
		lastAcked = max(lastAcked, seq)
	}
	if _, err := b.DescribeTopic(t.Context(), crashOutB); errors.Is(err, broker.ErrUnknownTopic) {
		require.Equal(t, int64(-1), lastAcked, "topics are gone but commits were acknowledged")
		return
	}
	tps := []broker.TopicPartition{{Topic: crashIn, Partition: 0}, {Topic: crashIn, Partition: 1}}
	offs, err := b.FetchOffsets(t.Context(), crashGroup, tps)
	require.NoError(t, err)
	stored := offs[tps[0]]
	require.Equal(t, offs[tps[0]], offs[tps[1]], "the offsets of one commit are stored together: %v", offs)
	if interval && stored < lastAcked+1 {
		// See verifyCrashDir: the newest acknowledged commits may be lost
		// as a whole; the next child reuses their sequence numbers.
		t.Logf("interval sync: kill -9 lost acknowledged commits %d..%d", stored, lastAcked)
		for seq := stored; seq <= lastAcked; seq++ {
			if _, ok := st.commits[seq]; ok {
				age := st.killedAt.Sub(st.ackedAt[commitID(seq)])
				require.Less(t, age, intervalLossBound, "interval sync: commit %d acknowledged %v before the kill is lost: the log was not synced", seq, age)
			}
			delete(st.commits, seq)
		}
		lastAcked = stored - 1
	}
	require.GreaterOrEqual(t, stored, lastAcked+1, "an acknowledged commit's offsets are lost")

	foundA, foundB := map[string]ackedBatch{}, map[string]ackedBatch{}
	readBatches(t, b, crashOutA, 0, foundA)
	readBatches(t, b, crashOutA, 1, foundA)
	readBatches(t, b, crashOutB, 0, foundB)
	var want, seqA, seqB []string
	for seq := range stored {
		want = append(want, commitID(seq))
	}
	for id := range foundA {
		seqA = append(seqA, id)
	}
	for id := range foundB {
		seqB = append(seqB, id)
	}
	slices.Sort(want)
	slices.Sort(seqA)
	slices.Sort(seqB)
	require.Equal(t, want, seqA, "out-a holds exactly the records of the commits whose offsets are stored")
	require.Equal(t, want, seqB, "out-b holds exactly the records of the commits whose offsets are stored")
	for seq, c := range st.commits {
		if seq >= stored {
			continue // lost under interval sync, forgotten above
		}
		require.Equal(t, c.a, foundA[commitID(seq)], "acknowledged commit %d in out-a", seq)
		require.Equal(t, c.b, foundB[commitID(seq)], "acknowledged commit %d in out-b", seq)
	}
}

func commitID(seq int64) string { return "s" + strconv.FormatInt(seq, 10) }

// readBatches reads topic/partition from offset 0 to its end and adds every
// batch it holds to found. It fails on a gap in offsets, a batch seen twice,
// a batch not whole (a partial call) or a record whose content is wrong.
func readBatches(t *testing.T, b broker.Broker, topic string, partition int32, found map[string]ackedBatch) {
	t.Helper()
	checkBatches(t, readPartition(t, b, topic, partition), topic, partition, found)
}

// checkBatches is readBatches on the records of topic/partition from offset 0.
func checkBatches(t *testing.T, recs []broker.Record, topic string, partition int32, found map[string]ackedBatch) {
	t.Helper()
	checkBatchesFrom(t, recs, 0, topic, partition, found)
}

// checkBatchesFrom is checkBatches for records from offset from on.
func checkBatchesFrom(t *testing.T, recs []broker.Record, from int64, topic string, partition int32, found map[string]ackedBatch) {
	t.Helper()
	for i, r := range recs {
		require.Equal(t, from+int64(i), r.Offset, "%s/%d: offsets are contiguous from %d", topic, partition, from)
	}
	for i := 0; i < len(recs); {
		id, j, n := parseBatchRecord(t, recs[i])
		require.Equal(t, 0, j, "%s/%d offset %d: record %d of batch %s without its start (partial batch)", topic, partition, recs[i].Offset, j, id)
		require.LessOrEqual(t, i+n, len(recs), "%s/%d offset %d: batch %s has %d of its %d records (partial batch)", topic, partition, recs[i].Offset, id, len(recs)-i, n)
		for k := 1; k < n; k++ {
			id2, j2, n2 := parseBatchRecord(t, recs[i+k])
			require.Equal(t, []any{id, k, n}, []any{id2, j2, n2}, "%s/%d offset %d: batch %s interrupted (partial batch)", topic, partition, recs[i+k].Offset, id)
		}
		_, dup := found[id]
		require.False(t, dup, "batch %s is stored twice", id)
		found[id] = ackedBatch{topic: topic, partition: partition, first: recs[i].Offset, n: n}
		i += n
	}
}

// readPartition returns every record of topic/partition, checking that the
// log starts at offset 0 and that offsets are contiguous.
func readPartition(t *testing.T, b broker.Broker, topic string, partition int32) []broker.Record {
	t.Helper()
	offs, err := b.ListOffsets(t.Context(), topic, partition)
	require.NoError(t, err)
	require.Equal(t, int64(0), offs.Earliest, "%s/%d: nothing was deleted", topic, partition)
	out, err := broker.Read(t.Context(), b, map[broker.TopicPartition]int64{{Topic: topic, Partition: partition}: 0})
	require.NoError(t, err)
	for i, r := range out {
		require.Equal(t, int64(i), r.Offset, "%s/%d: offsets are contiguous", topic, partition)
	}
	require.Len(t, out, int(offs.Latest), "%s/%d: every offset below latest holds a record", topic, partition)
	return out
}

// batchRecords returns the n records of batch id for topic/partition. Each
// record says which batch it belongs to, its index and the batch size, and
// carries a key, a header and a padding derived from them.
func batchRecords(topic string, partition int32, id string, n int) []broker.Record {
	recs := make([]broker.Record, n)
	for j := range recs {
		recs[j] = broker.Record{
			Topic:     topic,
			Partition: partition,
			Key:       []byte(id),
			Value:     fmt.Appendf(nil, "%s/%d/%d/%s", id, j, n, batchPad(id, j)),
			Headers:   []broker.Header{{Key: "j", Value: []byte(strconv.Itoa(j))}},
		}
	}
	return recs
}

func batchPad(id string, j int) string {
	return strings.Repeat("x", (len(id)*31+j*17)%97)
}

// parseBatchRecord checks r's content and returns its batch id, index and
// batch size.
func parseBatchRecord(t *testing.T, r broker.Record) (id string, j, n int) {
	t.Helper()
	id, j, n = parseBatchValue(t, r)
	require.Equal(t, id, string(r.Key), "%s/%d offset %d: key", r.Topic, r.Partition, r.Offset)
	return id, j, n
}

// parseBatchValue is parseBatchRecord without the key check.
func parseBatchValue(t *testing.T, r broker.Record) (id string, j, n int) {
	t.Helper()
	f := strings.SplitN(string(r.Value), "/", 4)
	require.Len(t, f, 4, "%s/%d offset %d: malformed value %q", r.Topic, r.Partition, r.Offset, r.Value)
	id, j, n = f[0], atoi(t, f[1]), atoi(t, f[2])
	require.Equal(t, batchPad(id, j), f[3], "%s/%d offset %d: value", r.Topic, r.Partition, r.Offset)
	require.Equal(t, []broker.Header{{Key: "j", Value: []byte(strconv.Itoa(j))}}, r.Headers, "%s/%d offset %d: headers", r.Topic, r.Partition, r.Offset)
	require.False(t, r.Timestamp.IsZero())
	return id, j, n
}

// TestCrashChild is the child process of TestCrash; it skips unless started
// by it. It never returns normally: the parent kills it.
func TestCrashChild(t *testing.T) {
	spec := os.Getenv(crashEnv)
	if spec == "" {
		t.Skip("child process of TestCrash; runs only when re-executed by it")
	}
	f := strings.SplitN(spec, " ", 4)
	if len(f) != 4 {
		fmt.Fprintf(os.Stderr, "crash child: bad spec %q\n", spec)
		os.Exit(3)
	}
	var err error
	switch f[0] {
	case "produce", "paced", "commit", "cleanup", "topics", "purge":
		err = crashChild(spec) // returns only with an error
	case "lock":
		_, err = embedded.Open(f[3])
		if errors.Is(err, embedded.ErrLocked) {
			fmt.Printf("locked: %v\n", err)
			os.Exit(0)
		}
		err = fmt.Errorf("second open: %v, want ErrLocked", err)
	case "twolog", "twolog-strict":
		err = twoLogChild(f[3], f[0] == "twolog-strict") // returns only with an error
	case "verify", "errorfs", "enospc":
		var start int
		if start, err = strconv.Atoi(f[2]); err == nil {
			err = jobsChild(f[0], start, f[3])
		}
		if err == nil {
			os.Exit(0)
		}
	default:
		err = fmt.Errorf("unknown mode %q", f[0])
	}
	fmt.Fprintf(os.Stderr, "crash child: %v\n", err)
	os.Exit(3)
}

// crashChild opens the directory and produces or commits until killed.
func crashChild(spec string) error {
	f := strings.SplitN(spec, " ", 4)
	if len(f) != 4 {
		return fmt.Errorf("bad spec %q", spec)
	}
	kind, interval, dir := f[0], f[1] == "true", f[3]
	cycle, err := strconv.Atoi(f[2])
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), crashChildMax)
	defer cancel()
	var opts []embedded.Option
	opts = append(opts, embedded.WithCleanupInterval(-1))
	if interval {
		opts = append(opts, embedded.WithSyncInterval(crashSyncInterval))
	}
	b, err := embedded.Open(dir, opts...)
	if err != nil {
		return err
	}
	create := func(name string, cfg broker.TopicConfig) error {
		err := b.CreateTopic(ctx, name, cfg)
		if errors.Is(err, broker.ErrTopicExists) {
			return nil
		}
		return err
	}
	var out struct {
		sync.Mutex
		w io.Writer
	}
	out.w = os.Stdout
	var say sayFunc = func(format string, args ...any) error {
		out.Lock()
		defer out.Unlock()
		_, err := fmt.Fprintf(out.w, format+"\n", args...) // one write(2) per line
		return err
	}
	seed := uint64(time.Now().UnixNano())
	limit := 0 // see crashMode.batches
	if v := os.Getenv(crashBatchEnv); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit <= 0 || kind != "produce" {
			return fmt.Errorf("bad %s=%q for mode %s", crashBatchEnv, v, kind)
		}
		seed = 1
	}
	rng := rand.New(rand.NewPCG(seed, uint64(cycle)))
	sizes := make([]int, 64) // per-goroutine rngs are not needed: sizes are pre-drawn
	for i := range sizes {
		sizes[i] = 1 + rng.IntN(8)
	}
	plainLoop := func(topic string, partition int32, prefix string) error {
		return produceLoop(ctx, b, say, sizes, topic, partition, prefix, batchRecords)
	}

	errc := make(chan error, 4)
	if kind == "cleanup" {
		return cleanupChild(ctx, b, say, create, cycle, sizes)
	}
	if kind == "topics" {
		return topicsChild(ctx, b, say, cycle)
	}
	if kind == "purge" {
		return purgeChild(ctx, b, say, create, cycle, sizes)
	}
	if kind == "produce" || kind == "paced" {
		if err := create(crashTopic, broker.TopicConfig{Partitions: 3, RetentionTime: -1}); err != nil {
			return err
		}
		if err := say("ready"); err != nil {
			return err
		}
		for p := range int32(3) {
			go func() {
				if kind == "produce" && limit > 0 {
					prefix := fmt.Sprintf("c%dp%d", cycle, p)
					for i := range limit {
						id := fmt.Sprintf("%si%d", prefix, i)
						n := sizes[(i+int(p)*7)%len(sizes)]
						recs := batchRecords(crashTopic, p, id, n)
						if err := b.Produce(ctx, recs); err != nil {
							errc <- fmt.Errorf("produce %s: %w", id, err)
							return
						}
						if err := say("ack %s %d %d %d %s", crashTopic, p, recs[0].Offset, n, id); err != nil {
							errc <- err
							return
						}
					}
					<-ctx.Done() // the parent kills the child after the last ack
					errc <- ctx.Err()
					return
				}
				if kind == "produce" {
					errc <- plainLoop(crashTopic, p, fmt.Sprintf("c%dp%d", cycle, p))
					return
				}
				// Paced: one batch per producer every 2 ms, so that a run
				// of seconds stays small enough to verify quickly.
				tick := time.NewTicker(2 * time.Millisecond)
				defer tick.Stop()
				errc <- produceLoop(ctx, b, say, sizes, crashTopic, p, fmt.Sprintf("c%dp%d", cycle, p),
					func(topic string, partition int32, id string, n int) []broker.Record {
						select {
						case <-tick.C:
						case <-ctx.Done():
						}
						return batchRecords(topic, partition, id, n)
					})
			}()
		}
		return <-errc
	}

	for _, tc := range []struct {
		name string
		n    int32
	}{{crashIn, 2}, {crashOutA, 2}, {crashOutB, 1}, {crashNoise, 1}} {
		if err := create(tc.name, broker.TopicConfig{Partitions: tc.n, RetentionTime: -1}); err != nil {
			return err
		}
	}
	m, err := b.JoinGroup(ctx, crashGroup, []string{crashIn}, broker.JoinOptions{})
	if err != nil {
		return err
	}
	var asg broker.Assignment
	select {
	case asg = <-m.Assignments():
	case <-ctx.Done():
		return fmt.Errorf("no assignment: %w", ctx.Err())
	}
	tps := []broker.TopicPartition{{Topic: crashIn, Partition: 0}, {Topic: crashIn, Partition: 1}}
	offs, err := b.FetchOffsets(ctx, crashGroup, tps)
	if err != nil {
		return err
	}
	if err := say("ready"); err != nil {
		return err
	}
	go func() { errc <- plainLoop(crashNoise, 0, fmt.Sprintf("c%dn", cycle)) }()
	go func() {
		errc <- func() error {
			for seq := offs[tps[0]]; ctx.Err() == nil; seq++ {
				pa := int32(seq % 2)
				a := batchRecords(crashOutA, pa, commitID(seq), sizes[seq%int64(len(sizes))])
				bb := batchRecords(crashOutB, 0, commitID(seq), sizes[(seq+3)%int64(len(sizes))])
				// Interleave the two topics' records in the request.
				recs := append(slices.Clone(bb[:1]), a...)
				recs = append(recs, bb[1:]...)
				err := b.Commit(ctx, broker.CommitRequest{
					Records:    recs,
					Group:      crashGroup,
					Generation: asg.Generation,
					MemberID:   m.MemberID(),
					Offsets:    map[broker.TopicPartition]int64{tps[0]: seq + 1, tps[1]: seq + 1},
				})
				if err != nil {
					return fmt.Errorf("commit %d: %w", seq, err)
				}
				first := func(rs []broker.Record, topic string) int64 {
					for _, r := range rs {
						if r.Topic == topic {
							return r.Offset
						}
					}
					return -1
				}
				if err := say("commit %d %d %d %d %d %d", seq, pa, first(recs, crashOutA), len(a), first(recs, crashOutB), len(bb)); err != nil {
					return err
				}
			}
			return ctx.Err()
		}()
	}()
	return <-errc
}

// sayFunc prints one line of child output.
type sayFunc func(format string, args ...any) error

// produceLoop produces batches made by mk to topic/partition until ctx
// ends, printing an "ack" line after each acknowledged call.
func produceLoop(ctx context.Context, b *embedded.Broker, say sayFunc, sizes []int, topic string, partition int32, prefix string,
	mk func(topic string, partition int32, id string, n int) []broker.Record) error {
	for i := 0; ctx.Err() == nil; i++ {
		id := fmt.Sprintf("%si%d", prefix, i)
		n := sizes[(i+int(partition)*7)%len(sizes)]
		recs := mk(topic, partition, id, n)
		if err := b.Produce(ctx, recs); err != nil {
			return fmt.Errorf("produce %s: %w", id, err)
		}
		if err := say("ack %s %d %d %d %s", topic, partition, recs[0].Offset, n, id); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// The cleanup mode: producers to a compacted topic (keys drawn from a small
// set) and to a topic retained by size, while Cleanup runs in a loop, so
// that the kill lands in the middle of retention and compaction too.
const (
	crashCompacted   = "compacted" // 2 partitions, CleanupCompact
	crashRetained    = "retained"  // 1 partition, RetentionBytes crashRetainBytes
	crashKeys        = 12
	crashRetainBytes = 8 << 10
)

// compactRecords is batchRecords with keys from a set of crashKeys.
func compactRecords(topic string, partition int32, id string, n int) []broker.Record {
	recs := batchRecords(topic, partition, id, n)
	for j := range recs {
		recs[j].Key = []byte(compactKey(id, j))
	}
	return recs
}

func compactKey(id string, j int) string {
	h := fnv.New32a()
	fmt.Fprintf(h, "%s/%d", id, j)
	return fmt.Sprintf("key-%d", h.Sum32()%crashKeys)
}

// cleanupChild runs the cleanup mode until killed.
func cleanupChild(ctx context.Context, b *embedded.Broker, say sayFunc, create func(string, broker.TopicConfig) error, cycle int, sizes []int) error {
	if err := create(crashCompacted, broker.TopicConfig{Partitions: 2, Cleanup: broker.CleanupCompact, RetentionTime: -1}); err != nil {
		return err
	}
	if err := create(crashRetained, broker.TopicConfig{Partitions: 1, RetentionTime: -1, RetentionBytes: crashRetainBytes}); err != nil {
		return err
	}
	if err := say("ready"); err != nil {
		return err
	}
	errc := make(chan error, 4)
	for p := range int32(2) {
		go func() {
			errc <- produceLoop(ctx, b, say, sizes, crashCompacted, p, fmt.Sprintf("c%dk%d", cycle, p), compactRecords)
		}()
	}
	go func() {
		errc <- produceLoop(ctx, b, say, sizes, crashRetained, 0, fmt.Sprintf("c%dr", cycle), batchRecords)
	}()
	go func() {
		for ctx.Err() == nil {
			if err := b.Cleanup(ctx); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("cleanup: %w", err)
				return
			}
		}
		errc <- ctx.Err()
	}()
	return <-errc
}

// readLog returns every record of topic/partition from its earliest offset
// on, checking that offsets increase (gaps allowed) and stay below latest.
func readLog(t *testing.T, b broker.Broker, topic string, partition int32) ([]broker.Record, broker.Offsets) {
	t.Helper()
	offs, err := b.ListOffsets(t.Context(), topic, partition)
	require.NoError(t, err)
	out, err := broker.Read(t.Context(), b, map[broker.TopicPartition]int64{{Topic: topic, Partition: partition}: offs.Earliest})
	require.NoError(t, err)
	next := offs.Earliest
	for _, r := range out {
		require.GreaterOrEqual(t, r.Offset, next, "%s/%d: offsets increase", topic, partition)
		require.Less(t, r.Offset, offs.Latest, "%s/%d: offsets stay below latest", topic, partition)
		next = r.Offset + 1
	}
	return out, offs
}

// verifyCleanup checks the cleanup mode's topics after a kill: on the
// compacted topic, each key's newest acknowledged record (or a newer one)
// is present and every record present at an acknowledged offset is that
// record; on the retained topic, what is left is whole batches contiguous
// from the earliest offset, holding every acknowledged batch at or above it
// and at least the newest one.
func verifyCleanup(t *testing.T, b *embedded.Broker, st *crashState) {
	t.Helper()
	if _, err := b.DescribeTopic(t.Context(), crashRetained); errors.Is(err, broker.ErrUnknownTopic) {
		require.Empty(t, st.batches, "topics are gone but batches were acknowledged")
		return
	}
	type loc struct {
		p   int32
		off int64
	}
	acked := map[loc]string{} // compacted: "id/j" by offset
	ackedNewest := map[int32]map[string]int64{0: {}, 1: {}}
	var latestAcked [2]int64
	var retained []string
	for id, a := range st.batches {
		switch a.topic {
		case crashCompacted:
			for j := range a.n {
				off := a.first + int64(j)
				acked[loc{a.partition, off}] = fmt.Sprintf("%s/%d", id, j)
				k := compactKey(id, j)
				if cur, ok := ackedNewest[a.partition][k]; !ok || off > cur {
					ackedNewest[a.partition][k] = off
				}
			}
			latestAcked[a.partition] = max(latestAcked[a.partition], a.first+int64(a.n))
		case crashRetained:
			retained = append(retained, id)
		default:
			require.FailNow(t, "unexpected topic", "%+v", a)
		}
	}
	for p := range int32(2) {
		recs, offs := readLog(t, b, crashCompacted, p)
		require.GreaterOrEqual(t, offs.Latest, latestAcked[p], "compacted/%d: latest offset below an acknowledged record", p)
		newest := map[string]int64{}
		for _, r := range recs {
			id, j, _ := parseBatchValue(t, r)
			require.Equal(t, compactKey(id, j), string(r.Key), "compacted/%d offset %d: key", p, r.Offset)
			if want, ok := acked[loc{p, r.Offset}]; ok {
				require.Equal(t, want, fmt.Sprintf("%s/%d", id, j), "compacted/%d offset %d holds another record", p, r.Offset)
			}
			newest[string(r.Key)] = r.Offset
		}
		for k, off := range ackedNewest[p] {
			got, ok := newest[k]
			require.True(t, ok && got >= off, "compacted/%d: key %s lost its newest acknowledged record (offset %d; newest present %d)", p, k, off, got)
		}
		t.Logf("compacted/%d: %d records in [%d, %d)", p, len(recs), offs.Earliest, offs.Latest)
	}

	recs, offs := readLog(t, b, crashRetained, 0)
	found := map[string]ackedBatch{}
	checkBatchesFrom(t, recs, offs.Earliest, crashRetained, 0, found)
	newestFirst := int64(-1)
	for _, id := range retained {
		a := st.batches[id]
		newestFirst = max(newestFirst, a.first)
		if a.first >= offs.Earliest {
			require.Equal(t, a, found[id], "retained: acknowledged batch %s at or above the earliest offset %d", id, offs.Earliest)
		} else {
			require.LessOrEqual(t, a.first+int64(a.n), offs.Earliest, "retained: batch %s deleted in part", id)
		}
	}
	t.Logf("retained: %d records in [%d, %d)", len(recs), offs.Earliest, offs.Latest)
	if newestFirst >= 0 {
		require.GreaterOrEqual(t, newestFirst, offs.Earliest, "retained: retention deleted the newest acknowledged batch")
	}
}

// The topics mode: two names, each repeatedly deleted and recreated; each
// incarnation gets one batch and a group offset.
var crashTopicNames = [2]string{"churn-a", "churn-b"}

// topicsChild runs the topics mode until killed. Iteration i works on
// name i%2: delete the previous incarnation (from i-2, or from an earlier
// child), create incarnation i, produce its batch, commit its offset.
// "creating" and "deleting" lines announce an operation before it starts;
// the other lines acknowledge one.
func topicsChild(ctx context.Context, b *embedded.Broker, say sayFunc, cycle int) error {
	if err := say("ready"); err != nil {
		return err
	}
	for i := 0; ctx.Err() == nil; i++ {
		name := crashTopicNames[i%2]
		inc := cycle*1_000_000 + i
		if _, err := b.DescribeTopic(ctx, name); err == nil {
			if err := say("deleting %s %d", name, inc); err != nil {
				return err
			}
			if err := b.DeleteTopic(ctx, name); err != nil {
				return fmt.Errorf("delete %s: %w", name, err)
			}
			if err := say("deleted %s %d", name, inc); err != nil {
				return err
			}
		} else if !errors.Is(err, broker.ErrUnknownTopic) {
			return err
		}
		if err := say("creating %s %d", name, inc); err != nil {
			return err
		}
		if err := b.CreateTopic(ctx, name, broker.TopicConfig{Partitions: 1, RetentionTime: -1}); err != nil {
			return fmt.Errorf("create %s: %w", name, err)
		}
		if err := say("created %s %d", name, inc); err != nil {
			return err
		}
		id := fmt.Sprintf("inc%d", inc)
		recs := batchRecords(name, 0, id, 3)
		if err := b.Produce(ctx, recs); err != nil {
			return fmt.Errorf("produce %s: %w", id, err)
		}
		if err := say("ack %s 0 %d 3 %s", name, recs[0].Offset, id); err != nil {
			return err
		}
		if err := b.CommitOffsets(ctx, crashGroup, map[broker.TopicPartition]int64{{Topic: name}: 3}); err != nil {
			return fmt.Errorf("commit offset %s: %w", name, err)
		}
		if err := say("offset %s %d", name, inc); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// verifyTopics checks the topics mode after a kill. Per name, the last line
// about it says what may be there: after "deleted" nothing; after
// "deleting" nothing or the previous incarnation intact; after "creating"
// nothing or an empty new incarnation; after "created" the new incarnation
// with nothing or its whole batch; after its batch's ack the batch, with
// or without the offset; after "offset" both. A present topic never holds
// data or offsets of an older incarnation.
func verifyTopics(t *testing.T, b *embedded.Broker, st *crashState) {
	t.Helper()
	for _, name := range crashTopicNames {
		events := st.topicEvents[name]
		if len(events) == 0 {
			continue
		}
		last := events[len(events)-1]
		// The state acknowledged for the newest incarnation at or before
		// the last line: batch acked, offset acked.
		inc, batchAcked, offsetAcked := -1, false, false
		for _, e := range events {
			switch e.what {
			case "created":
				inc, batchAcked, offsetAcked = e.inc, false, false
			case "offset":
				offsetAcked = true
			}
		}
		if inc >= 0 {
			_, batchAcked = st.batches[fmt.Sprintf("inc%d", inc)]
		}
		_, err := b.DescribeTopic(t.Context(), name)
		present := err == nil
		if !present {
			require.ErrorIs(t, err, broker.ErrUnknownTopic)
		}
		t.Logf("%s: killed after %q of incarnation %d; present %t", name, last.what, last.inc, present)
		switch last.what {
		case "deleted":
			require.False(t, present, "%s: deleted (acknowledged) but present", name)
			continue
		case "deleting", "creating":
			if !present {
				continue
			}
		default:
			require.True(t, present, "%s: created (acknowledged) but gone after %q", name, last.what)
		}
		recs := readPartition(t, b, name, 0)
		offs, err := b.FetchOffsets(t.Context(), crashGroup, []broker.TopicPartition{{Topic: name}})
		require.NoError(t, err)
		stored, hasOffset := offs[broker.TopicPartition{Topic: name}]
		var ids []string
		if len(recs) > 0 {
			found := map[string]ackedBatch{}
			checkBatches(t, recs, name, 0, found)
			for id := range found {
				ids = append(ids, id)
			}
		}
		if last.what == "creating" { // the new incarnation, empty
			require.Empty(t, recs, "%s: a topic just created holds records of an older incarnation", name)
			require.False(t, hasOffset, "%s: a topic just created holds an older incarnation's group offset", name)
			continue
		}
		// Incarnation inc, intact (also while being deleted): what was
		// acknowledged is there, what was not may be, nothing else is.
		want := fmt.Sprintf("inc%d", inc)
		switch {
		case offsetAcked:
			require.Equal(t, []string{want}, ids, "%s (after %q)", name, last.what)
			require.True(t, hasOffset && stored == 3, "%s: acknowledged group offset lost (after %q)", name, last.what)
		case batchAcked:
			require.Equal(t, []string{want}, ids, "%s (after %q)", name, last.what)
			require.True(t, !hasOffset || stored == 3, "%s: offset %d", name, stored)
		default:
			require.True(t, len(ids) == 0 || slices.Equal(ids, []string{want}), "%s: holds %v, incarnation %d", name, ids, inc)
			require.True(t, !hasOffset || (len(ids) == 1 && stored == 3), "%s: group offset %d without its records", name, stored)
		}
	}
}

// TestCloseUnderLoad closes the broker while three producers and a
// committer are in flight. Every call returns; one that returned nil is
// stored after reopening, one that returned an error (ErrClosed) is not, in
// full or in part.
func TestCloseUnderLoad(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	b, err := embedded.Open(dir, embedded.WithCleanupInterval(-1))
	require.NoError(t, err)
	require.NoError(t, b.CreateTopic(ctx, crashTopic, broker.TopicConfig{Partitions: 4, RetentionTime: -1}))

	var mu sync.Mutex
	acked := map[string]ackedBatch{}
	refused := map[string]bool{}
	var errs []error
	var acks atomic.Int64
	enough := make(chan struct{})
	var wg sync.WaitGroup
	for p := range int32(4) {
		wg.Go(func() {
			for i := 0; ; i++ {
				id := fmt.Sprintf("p%di%d", p, i)
				recs := batchRecords(crashTopic, p, id, 1+i%5)
				var err error
				if p == 3 { // the committer: records and an offset together
					err = b.Commit(ctx, broker.CommitRequest{Records: recs, Group: crashGroup,
						Offsets: map[broker.TopicPartition]int64{{Topic: crashTopic}: int64(i + 1)}})
				} else {
					err = b.Produce(ctx, recs)
				}
				mu.Lock()
				if err != nil {
					refused[id] = true
					if !errors.Is(err, broker.ErrClosed) {
						errs = append(errs, fmt.Errorf("%s: %w", id, err))
					}
					mu.Unlock()
					return
				}
				acked[id] = ackedBatch{topic: crashTopic, partition: p, first: recs[0].Offset, n: len(recs)}
				mu.Unlock()
				if acks.Add(1) == 100 {
					close(enough)
				}
			}
		})
	}
	select {
	case <-enough:
	case <-time.After(crashChildMax):
		require.FailNow(t, "producers too slow")
	}
	require.NoError(t, b.Close())
	wg.Wait()
	require.Empty(t, errs, "calls after Close fail with ErrClosed")
	require.Len(t, refused, 4, "every loop ended on a refused call")

	b, err = embedded.Open(dir, embedded.WithCleanupInterval(-1))
	require.NoError(t, err)
	defer func() { require.NoError(t, b.Close()) }()
	found := map[string]ackedBatch{}
	for p := range int32(4) {
		readBatches(t, b, crashTopic, p, found)
	}
	for id, a := range acked {
		require.Equal(t, a, found[id], "acknowledged batch %s", id)
	}
	for id := range refused {
		_, ok := found[id]
		require.False(t, ok, "batch %s was refused with ErrClosed but is stored", id)
	}
	require.Len(t, found, len(acked), "nothing but the acknowledged batches is stored")
	commits := 0
	for _, a := range acked {
		if a.partition == 3 {
			commits++
		}
	}
	tp := broker.TopicPartition{Topic: crashTopic}
	offs, err := b.FetchOffsets(ctx, crashGroup, []broker.TopicPartition{tp})
	require.NoError(t, err)
	if commits > 0 {
		require.Equal(t, map[broker.TopicPartition]int64{tp: int64(commits)}, offs, "the offset of the last acknowledged commit")
	} else {
		require.Empty(t, offs)
	}
	t.Logf("%d calls (%d commits) acknowledged before Close", len(acked), commits)
}

// The purge mode: a producer to a topic without retention while a purger
// deletes its records up to the middle of what is left (usually inside a
// batch), printing "purged <topic> <partition> <offset>" after each
// acknowledged DeleteRecords.
const crashPurged = "purged"

// purgeChild runs the purge mode until killed.
func purgeChild(ctx context.Context, b *embedded.Broker, say sayFunc, create func(string, broker.TopicConfig) error, cycle int, sizes []int) error {
	if err := create(crashPurged, broker.TopicConfig{Partitions: 1, RetentionTime: -1}); err != nil {
		return err
	}
	if err := say("ready"); err != nil {
		return err
	}
	errc := make(chan error, 2)
	go func() {
		errc <- produceLoop(ctx, b, say, sizes, crashPurged, 0, fmt.Sprintf("c%dq", cycle), batchRecords)
	}()
	go func() {
		errc <- func() error {
			for ctx.Err() == nil {
				offs, err := b.ListOffsets(ctx, crashPurged, 0)
				if err != nil {
					return err
				}
				before := offs.Earliest + (offs.Latest-offs.Earliest)/2
				if before == offs.Earliest {
					continue
				}
				if err := b.DeleteRecords(ctx, crashPurged, 0, before); err != nil {
					return fmt.Errorf("delete records before %d: %w", before, err)
				}
				if err := say("purged %s 0 %d", crashPurged, before); err != nil {
					return err
				}
			}
			return ctx.Err()
		}()
	}()
	return <-errc
}

// verifyPurge checks the purge mode's topic after a kill: the earliest
// offset is at least every acknowledged DeleteRecords offset (it never
// moves back), fetches below it are out of range, and from it on the
// records are contiguous: the tail of the batch it cut, if any, then whole
// batches, holding every acknowledged batch at or above it.
func verifyPurge(t *testing.T, b *embedded.Broker, st *crashState) {
	t.Helper()
	if _, err := b.DescribeTopic(t.Context(), crashPurged); errors.Is(err, broker.ErrUnknownTopic) {
		require.Empty(t, st.batches, "the topic is gone but batches were acknowledged")
		return
	}
	recs, offs := readLog(t, b, crashPurged, 0)
	require.GreaterOrEqual(t, offs.Earliest, st.purged, "the earliest offset moved back below an acknowledged DeleteRecords")
	require.Len(t, recs, int(offs.Latest-offs.Earliest), "records are contiguous from the earliest offset")
	if offs.Earliest > 0 {
		_, err := b.Fetch(t.Context(), []broker.FetchRequest{{Topic: crashPurged, Partition: 0, Offset: offs.Earliest - 1}}, broker.FetchOptions{})
		var oor *broker.OffsetOutOfRangeError
		require.ErrorAs(t, err, &oor, "a fetch below the earliest offset")
	}
	// The tail of a batch cut by DeleteRecords.
	skip := 0
	cut := ""
	if len(recs) > 0 {
		id, j, n := parseBatchRecord(t, recs[0])
		if j > 0 {
			cut = id
			for k := j; k < n; k++ {
				require.Less(t, skip, len(recs), "cut batch %s ends early", id)
				id2, j2, _ := parseBatchRecord(t, recs[skip])
				require.Equal(t, []any{id, k}, []any{id2, j2}, "cut batch %s: its tail is whole", id)
				skip++
			}
		}
	}
	found := map[string]ackedBatch{}
	checkBatchesFrom(t, recs[skip:], offs.Earliest+int64(skip), crashPurged, 0, found)
	for id, a := range st.batches {
		switch {
		case a.first >= offs.Earliest:
			require.Equal(t, a, found[id], "acknowledged batch %s at or above the earliest offset %d", id, offs.Earliest)
		case a.first+int64(a.n) > offs.Earliest:
			require.Equal(t, id, cut, "acknowledged batch %s straddles the earliest offset %d", id, offs.Earliest)
		}
	}
	t.Logf("purged: %d records in [%d, %d), highest acknowledged purge %d", len(recs), offs.Earliest, offs.Latest, st.purged)
}
