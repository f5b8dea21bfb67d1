package duality_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/internal/crashtest"
	"github.com/duality-streams/duality/store"
	"github.com/duality-streams/duality/stream"
)

const (
	countApp   = "counter"
	countStore = "counts"
	countLog   = countApp + "-" + countStore + "-changelog"
)

// counter counts records per key in the store "counts" and forwards the
// running count.
type counter struct {
	pc    stream.ProcessorContext[string, string]
	store stream.BytesStore
}

func (c *counter) Init(pc stream.ProcessorContext[string, string]) error {
	c.pc = pc
	s, err := pc.Store(countStore)
	c.store = s
	return err
}

func (c *counter) Process(ctx context.Context, rec stream.Record[string, string]) error {
	v, _, err := c.store.Get([]byte(rec.Key))
	if err != nil {
		return err
	}
	n := int64(0)
	if v != nil {
		if n, err = strconv.ParseInt(string(v), 10, 64); err != nil {
			return err
		}
	}
	n++
	if err := c.store.Put([]byte(rec.Key), strconv.AppendInt(nil, n, 10)); err != nil {
		return err
	}
	return c.pc.Forward(ctx, stream.Record[string, string]{Key: rec.Key, Value: strconv.FormatInt(n, 10)})
}

func (c *counter) Close() error { return nil }

// counterTopology reads "in", counts per key and writes the counts to
// "out".
func counterTopology(t *testing.T) *stream.Topology {
	topo, err := buildCounter()
	require.NoError(t, err)
	return topo
}

func buildCounter() (*stream.Topology, error) {
	b := stream.NewBuilder()
	in := stream.From(b, "in", codec.String(), codec.String())
	stream.Process(in, func() stream.Processor[string, string, string, string] { return &counter{} },
		stream.Named("count"), stream.WithStores(stream.BytesStoreSpec(countStore))).
		To("out")
	return b.Build()
}

// produceKeyed appends records i in [from, to) with key "k<i%keys>".
func produceKeyed(t *testing.T, b broker.Broker, from, to, keys int) {
	t.Helper()
	recs := make([]broker.Record, 0, to-from)
	for i := from; i < to; i++ {
		recs = append(recs, broker.Record{
			Topic: "in", Partition: broker.PartitionByKey,
			Key: fmt.Appendf(nil, "k%d", i%keys), Value: fmt.Appendf(nil, "v%d", i),
		})
	}
	require.NoError(t, b.Produce(t.Context(), recs))
}

// requireCounts checks that "out" holds, for every key of the first n
// inputs, the counts 1..m exactly once each and in order.
func requireCounts(t *testing.T, b broker.Broker, n, keys int) {
	t.Helper()
	want := map[string]int{}
	for i := range n {
		want[fmt.Sprintf("k%d", i%keys)]++
	}
	got := map[string][]int{}
	for _, r := range readTopic(t, b, "out") {
		c, err := strconv.Atoi(string(r.Value))
		require.NoError(t, err)
		got[string(r.Key)] = append(got[string(r.Key)], c)
	}
	require.Len(t, got, len(want))
	for k, m := range want {
		seq := make([]int, m)
		for i := range seq {
			seq[i] = i + 1
		}
		require.Equal(t, seq, got[k], "counts of key %s", k)
	}
}

func newCounter(t *testing.T, b broker.Broker, opts ...duality.Option) *duality.App {
	t.Helper()
	opts = append([]duality.Option{duality.CommitInterval(5 * time.Millisecond), duality.Workers(2)}, opts...)
	app, err := duality.New(countApp, counterTopology(t), b, opts...)
	require.NoError(t, err)
	return app
}

// runUntil runs app until "out" holds n records, then stops it.
func runUntil(t *testing.T, b broker.Broker, app *duality.App, n int) {
	t.Helper()
	stop, _ := runApp(t, app)
	awaitRecords(t, b, "out", n)
	require.NoError(t, stop())
}

func TestStateRestart(t *testing.T) {
	const keys, step = 13, 600
	tests := []struct {
		name string
		// state returns the options of the i-th run (a fresh App each).
		state func(t *testing.T, dir string, run int) []duality.Option
	}{
		{"pebble", func(_ *testing.T, dir string, _ int) []duality.Option {
			return []duality.Option{duality.StateDir(dir)}
		}},
		{"pebble-dir-deleted", func(t *testing.T, dir string, _ int) []duality.Option {
			require.NoError(t, os.RemoveAll(dir))
			return []duality.Option{duality.StateDir(dir)}
		}},
		{"pebble-fresh-dir-each-run", func(t *testing.T, _ string, _ int) []duality.Option {
			return []duality.Option{duality.StateDir(t.TempDir())}
		}},
		{"memory", func(*testing.T, string, int) []duality.Option { return nil }},
		// Without record cache every write is a changelog record: the
		// restore applies them all, in order.
		{"memory-no-cache", func(*testing.T, string, int) []duality.Option {
			return []duality.Option{duality.CacheMaxBytes(0)}
		}},
		{"pebble-dir-deleted-no-cache", func(t *testing.T, dir string, _ int) []duality.Option {
			require.NoError(t, os.RemoveAll(dir))
			return []duality.Option{duality.StateDir(dir), duality.CacheMaxBytes(0)}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := openBroker(t)
			createTopic(t, b, "in", 3)
			createTopic(t, b, "out", 3)
			dir := filepath.Join(t.TempDir(), "state")
			var mu sync.Mutex
			restored := map[int]int64{} // by run: changelog records restored
			logged := map[int]int64{}   // by run: changelog records before it
			for run := range 3 {
				if run > 0 {
					logged[run] = int64(len(readTopic(t, b, countLog)))
				}
				produceKeyed(t, b, run*step, (run+1)*step, keys)
				opts := append(tt.state(t, dir, run), duality.OnRestore(func(p duality.RestoreProgress) {
					if p.Done {
						mu.Lock()
						restored[run] += p.Restored
						mu.Unlock()
					}
				}))
				runUntil(t, b, newCounter(t, b, opts...), (run+1)*step)
				requireCounts(t, b, (run+1)*step, keys)
			}
			mu.Lock()
			defer mu.Unlock()
			if tt.name == "pebble" {
				require.Empty(t, restored, "a kept state directory restores nothing")
			} else {
				// Each run rebuilt the state from every changelog record
				// the earlier runs wrote.
				require.Equal(t, logged, restored)
			}
		})
	}
}

// TestStateChangelogRecreated checks that local state whose offset lies
// beyond its changelog (the changelog topic was deleted and recreated) is
// dropped and rebuilt from the changelog, which is the source of truth.
func TestStateChangelogRecreated(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "in", 1)
	createTopic(t, b, "out", 1)
	dir := t.TempDir()
	produceKeyed(t, b, 0, 10, 1)
	runUntil(t, b, newCounter(t, b, duality.StateDir(dir)), 10)
	require.NoError(t, b.DeleteTopic(t.Context(), countLog))
	produceKeyed(t, b, 10, 13, 1)
	var logs syncBuffer
	runUntil(t, b, newCounter(t, b, duality.StateDir(dir), duality.Logger(slog.New(slog.NewTextHandler(&logs, nil)))), 13)
	require.Regexp(t, `level=WARN msg="local state does not match the changelog: rebuilding it" app=counter task=0_0 store=counts partition=0 offset=\d+ earliest=0 latest=0`, logs.String())
	var got []string
	for _, r := range readTopic(t, b, "out")[10:] {
		got = append(got, string(r.Value))
	}
	require.Equal(t, []string{"1", "2", "3"}, got, "counting restarted from the empty changelog")
}

func TestStateRebalance(t *testing.T) {
	const keys = 17
	b := openBroker(t)
	createTopic(t, b, "in", 4)
	createTopic(t, b, "out", 4)
	produceKeyed(t, b, 0, 500, keys)
	app1 := newCounter(t, b, duality.StateDir(t.TempDir()))
	stop1, _ := runApp(t, app1)
	awaitRecords(t, b, "out", 200)
	app2 := newCounter(t, b, duality.StateDir(t.TempDir()))
	stop2, _ := runApp(t, app2)
	produceKeyed(t, b, 500, 1000, keys)
	awaitRecords(t, b, "out", 800)
	require.NoError(t, stop1()) // app2 takes every partition over
	produceKeyed(t, b, 1000, 1500, keys)
	awaitRecords(t, b, "out", 1500)
	require.NoError(t, stop2())
	requireCounts(t, b, 1500, keys)
	require.NotZero(t, app1.Metrics().RecordsProcessed)
	require.NotZero(t, app2.Metrics().RecordsProcessed)
}

// TestStateReadYourWrites checks that a processor reads its own writes
// before they are committed: within a record, across records of one commit
// interval, and in range scans that merge pending writes and deletions
// with committed state.
func TestStateReadYourWrites(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "in", 1)
	createTopic(t, b, "out", 1)
	bld := stream.NewBuilder()
	in := stream.From(bld, "in", codec.String(), codec.String())
	stream.Process(in, func() stream.Processor[string, string, string, string] { return &scanner{} }, stream.WithStores(stream.BytesStoreSpec("kv"))).
		To("out")
	topo, err := bld.Build()
	require.NoError(t, err)
	input := func(kvs ...string) {
		var recs []broker.Record
		for i := 0; i < len(kvs); i += 2 {
			recs = append(recs, broker.Record{Topic: "in", Key: []byte(kvs[i]), Value: []byte(kvs[i+1])})
		}
		require.NoError(t, b.Produce(t.Context(), recs))
	}
	// First run: commit a, b, c.
	input("a", "1", "b", "2", "c", "3")
	app, err := duality.New("ryw", topo, b, duality.StateDir(filepath.Join(t.TempDir(), "s")))
	require.NoError(t, err)
	runUntil(t, b, app, 3)
	// Second run, one commit interval for everything (an hour): overwrite
	// b, delete a, add d; every scan sees the pending writes.
	input("b", "20", "a", "", "d", "4")
	app, err = duality.New("ryw", topo, b, duality.CommitInterval(time.Hour))
	require.NoError(t, err)
	stop, _ := runApp(t, app)
	eventually(t, "3 records processed", func() bool { return app.Metrics().RecordsProcessed == 3 })
	require.NoError(t, stop()) // the only commit of the run
	var got []string
	for _, r := range readTopic(t, b, "out") {
		got = append(got, string(r.Value))
	}
	require.Equal(t, []string{
		"a=1",
		"a=1 b=2",
		"a=1 b=2 c=3",
		"a=1 b=20 c=3",
		"b=20 c=3",
		"b=20 c=3 d=4",
	}, got)
}

// scanner puts its input (an empty value deletes the key), checks that Get
// sees the write, and forwards a scan of the whole store.
type scanner struct {
	pc stream.ProcessorContext[string, string]
	kv stream.BytesStore
}

func (s *scanner) Init(pc stream.ProcessorContext[string, string]) (err error) {
	s.pc = pc
	s.kv, err = pc.Store("kv")
	return err
}

func (s *scanner) Process(ctx context.Context, rec stream.Record[string, string]) error {
	k := []byte(rec.Key)
	if rec.Value == "" {
		if err := s.kv.Delete(k); err != nil {
			return err
		}
	} else if err := s.kv.Put(k, []byte(rec.Value)); err != nil {
		return err
	}
	v, ok, err := s.kv.Get(k)
	if err != nil {
		return err
	}
	if ok != (rec.Value != "") || string(v) != rec.Value {
		return fmt.Errorf("get %s after write: %q %v", rec.Key, v, ok)
	}
	seq, errf := s.kv.Range(nil, nil)
	out := ""
	for k, v := range seq {
		if out != "" {
			out += " "
		}
		out += string(k) + "=" + string(v)
	}
	if err := errf(); err != nil {
		return err
	}
	return s.pc.Forward(ctx, stream.Record[string, string]{Key: rec.Key, Value: out})
}

func (s *scanner) Close() error { return nil }

// TestStateChangelog checks the changelog topic: created by Run, compacted,
// one partition per task, and after compaction holding the latest count
// of every key.
func TestStateChangelog(t *testing.T) {
	const keys, n = 7, 400
	b := openBroker(t, embedded.WithCleanupInterval(-1))
	createTopic(t, b, "in", 2)
	createTopic(t, b, "out", 2)
	produceKeyed(t, b, 0, n, keys)
	runUntil(t, b, newCounter(t, b), n)
	var logs syncBuffer
	var restoredParts atomic.Int64
	stop, _ := runApp(t, newCounter(t, b, duality.Logger(slog.New(slog.NewTextHandler(&logs, nil))),
		duality.OnRestore(func(p duality.RestoreProgress) {
			if p.Done {
				restoredParts.Add(1)
			}
		})))
	eventually(t, "both partitions restored", func() bool { return restoredParts.Load() == 2 })
	require.NoError(t, stop())
	require.Contains(t, logs.String(), `msg="restoring store" app=counter task=0_1 store=counts partition=1 offset=0`)
	require.Regexp(t, `msg="restored store" app=counter task=0_1 store=counts partition=1 restored=\d+ total=\d+`, logs.String())

	info, err := b.DescribeTopic(t.Context(), countLog)
	require.NoError(t, err)
	require.Equal(t, broker.CleanupCompact, info.Config.Cleanup)
	require.Equal(t, int32(2), info.Config.Partitions)
	logged := len(readTopic(t, b, countLog))
	require.GreaterOrEqual(t, logged, keys)
	require.LessOrEqual(t, logged, n, "at most one changelog record per update (one per key and commit)")

	require.NoError(t, b.Cleanup(t.Context()))
	latest := map[string]string{}
	for _, r := range readTopic(t, b, countLog) {
		latest[string(r.Key)] = string(r.Value)
		require.Equal(t, broker.KeyPartition(r.Key, 2), r.Partition, "a key's changelog partition is its input partition")
	}
	want := map[string]string{}
	for i := range n {
		k := fmt.Sprintf("k%d", i%keys)
		c, _ := strconv.Atoi(want[k])
		want[k] = strconv.Itoa(c + 1)
	}
	require.Equal(t, want, latest)
	require.Len(t, readTopic(t, b, countLog), keys, "compaction removed superseded counts")
}

// TestStateSkippedRecord checks that a record failing under SkipOnError
// leaves no state change behind.
func TestStateSkippedRecord(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "in", 1)
	createTopic(t, b, "out", 1)
	bld := stream.NewBuilder()
	in := stream.From(bld, "in", codec.String(), codec.String())
	counted := stream.Process(in, func() stream.Processor[string, string, string, string] { return &counter{} }, stream.WithStores(stream.BytesStoreSpec(countStore)))
	counted.Filter(func(_, v string) bool { return true }).To("out")
	stream.Process(counted, func() stream.Processor[string, string, string, string] { return &failOnValue{bad: "2"} }).
		To("never")
	topo, err := bld.Build()
	require.NoError(t, err)
	createTopic(t, b, "never", 1)
	produceKeyed(t, b, 0, 3, 1) // k0 three times; the second fails after counting
	app, err := duality.New(countApp, topo, b, duality.OnProcessingError(duality.SkipOnError(nil)))
	require.NoError(t, err)
	stop, _ := runApp(t, app)
	eventually(t, "3 records handled", func() bool { m := app.Metrics(); return m.RecordsProcessed+m.RecordsSkipped == 3 })
	require.NoError(t, stop())
	var got []string
	for _, r := range readTopic(t, b, "out") {
		got = append(got, string(r.Value))
	}
	// The failing record's count (2) was undone, so the third counts 2.
	require.Equal(t, []string{"1", "2"}, got)
}

// failOnValue fails the first record with value bad.
type failOnValue struct {
	pc     stream.ProcessorContext[string, string]
	bad    string
	failed bool
}

func (f *failOnValue) Init(pc stream.ProcessorContext[string, string]) error { f.pc = pc; return nil }
func (f *failOnValue) Process(_ context.Context, rec stream.Record[string, string]) error {
	if rec.Value == f.bad && !f.failed {
		f.failed = true
		return errors.New("bad value")
	}
	return nil
}
func (f *failOnValue) Close() error { return nil }

const (
	stateCrashInput = 6000
	stateCrashKeys  = 50
	stateCrashParts = 3
	stateCrashKills = 4
)

// TestStateKill9 runs the counter in a child process with Pebble state,
// kills it with SIGKILL at random moments (and deletes its state directory
// after some kills), restarts it until all input is processed, and checks
// after every kill that the output is exactly the running counts of the
// committed input, and at the end that every key's counts are 1..n once.
func TestStateKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	x := crashtest.New(t, crashtest.Embedded)
	b := x.Open()
	ctx := t.Context()
	require.NoError(t, b.CreateTopic(ctx, "in", broker.TopicConfig{Partitions: stateCrashParts}))
	require.NoError(t, b.CreateTopic(ctx, "out", broker.TopicConfig{Partitions: stateCrashParts}))
	produceKeyed(t, b, 0, stateCrashInput, stateCrashKeys)
	require.NoError(t, b.Close())

	kills := crashtest.Kills(stateCrashKills)
	x.Run(crashtest.Plan{
		// A kill due shortly before the end may come after the child has
		// finished (the kill delay is random, and a loaded machine
		// stretches it); the run is still meaningful with most kills done.
		Kills: kills, MinKills: kills - 1,
		Schedule:  crashtest.Spread(stateCrashInput, kills, 5*time.Millisecond),
		Check:     checkCommittedCounts,
		WipeState: true,
	})
	b = x.Open()
	defer func() { require.NoError(t, b.Close()) }()
	require.Equal(t, stateCrashInput, checkCommittedCounts(t, b))
	requireCounts(t, b, stateCrashInput, stateCrashKeys)
}

// checkCommittedCounts checks that "out" holds exactly the running counts
// of the input records below the committed offsets: for each key, 1..m in
// order, m being the key's committed input records. It returns the number
// of committed input records.
func checkCommittedCounts(t *testing.T, b broker.Broker) int {
	t.Helper()
	offs, err := crashtest.GroupOffsets(t.Context(), b, countApp, "in")
	require.NoError(t, err)
	want := map[string][]int{}
	n := 0
	for _, r := range readTopic(t, b, "in") {
		if offs.IsCommitted(r) {
			k := string(r.Key)
			want[k] = append(want[k], len(want[k])+1)
			n++
		}
	}
	got := map[string][]int{}
	for _, r := range readTopic(t, b, "out") {
		c, err := strconv.Atoi(string(r.Value))
		require.NoError(t, err)
		got[string(r.Key)] = append(got[string(r.Key)], c)
	}
	require.Equal(t, want, got, "the output differs from the counts of the committed input")
	return n
}

// TestStateKill9Child is the child process of TestStateKill9: it runs the
// counter until the committed offsets reach the end of the input and the
// output is visible.
func TestStateKill9Child(t *testing.T) {
	crashtest.RunChild(t, crashtest.Child{
		App: func(env *crashtest.Env) (crashtest.App, error) {
			topo, err := buildCounter()
			if err != nil {
				return nil, err
			}
			return duality.New(countApp, topo, env.Broker, crashOptions(env)...)
		},
		Poll: func(ctx context.Context, env *crashtest.Env) (crashtest.Progress, error) {
			offs, err := crashtest.GroupOffsets(ctx, env.Broker, countApp, "in", "out")
			n := offs.CommittedSum("in")
			return crashtest.Progress{N: n, Done: n == stateCrashInput && offs.EndSum("out") >= stateCrashInput}, err
		},
	})
}

// undeclared asks for a store its step did not declare.
type undeclared struct{ nop }

type nop struct{}

func (nop) Init(stream.ProcessorContext[string, string]) error           { return nil }
func (nop) Process(context.Context, stream.Record[string, string]) error { return nil }
func (nop) Close() error                                                 { return nil }

func (undeclared) Init(pc stream.ProcessorContext[string, string]) error {
	_, err := pc.Store("elsewhere")
	return err
}

func TestStateUnknownStore(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "in", 1)
	bld := stream.NewBuilder()
	stream.Process(stream.From(bld, "in", codec.String(), codec.String()),
		func() stream.Processor[string, string, string, string] { return undeclared{} }, stream.WithStores(stream.BytesStoreSpec("mine")))
	stream.Process(stream.From(bld, "in2", codec.String(), codec.String()),
		func() stream.Processor[string, string, string, string] { return nop{} }, stream.WithStores(stream.BytesStoreSpec("elsewhere")))
	createTopic(t, b, "in2", 1)
	topo, err := bld.Build()
	require.NoError(t, err)
	app, err := duality.New("unknown", topo, b)
	require.NoError(t, err)
	err = app.Run(t.Context())
	require.ErrorIs(t, err, stream.ErrUnknownStore)
}

// TestStatePlanErrors: an empty StateDir is a config error. (The store
// declarations New refused in topologies written by hand are checked once,
// by Build and dsl.Wrap: internal/dsl TestValidate.)
func TestStatePlanErrors(t *testing.T) {
	_, err := duality.New("app", counterTopology(t), openBroker(t), duality.StateDir(""))
	require.ErrorIs(t, err, duality.ErrInvalidConfig)
}

// TestStateReturningOwner checks that an instance that gets partitions
// back after another instance held them catches up from its own offset:
// it restores only what the other instance wrote, not the whole changelog.
func TestStateReturningOwner(t *testing.T) {
	const keys = 11
	b := openBroker(t)
	createTopic(t, b, "in", 4)
	createTopic(t, b, "out", 4)
	var restored atomic.Int64
	app1 := newCounter(t, b, duality.StateDir(t.TempDir()), duality.OnRestore(func(p duality.RestoreProgress) {
		if p.Done {
			restored.Add(p.Restored)
		}
	}))
	produceKeyed(t, b, 0, 400, keys)
	stop1, _ := runApp(t, app1)
	awaitRecords(t, b, "out", 400) // app1 alone holds every partition
	app2 := newCounter(t, b, duality.StateDir(t.TempDir()))
	stop2, _ := runApp(t, app2)
	eventually(t, "app2 is assigned partitions", func() bool { return app2.Metrics().Tasks > 0 })
	produceKeyed(t, b, 400, 800, keys)
	awaitRecords(t, b, "out", 800)
	require.NoError(t, stop2()) // app1 gets app2's partitions back
	produceKeyed(t, b, 800, 1200, keys)
	awaitRecords(t, b, "out", 1200)
	require.NoError(t, stop1())
	requireCounts(t, b, 1200, keys)
	require.NotZero(t, app2.Metrics().RecordsProcessed)
	// app1 restored exactly the changelog records app2 wrote (what it
	// produced besides one output per processed record), not the
	// partitions' whole changelog.
	m2 := app2.Metrics()
	require.Equal(t, int64(m2.RecordsProduced-m2.RecordsProcessed), restored.Load())
}

// blockingCounter is a counter whose 50th record (over all its tasks)
// blocks until release is closed.
type blockingCounter struct {
	counter
	seen             *atomic.Int64
	blocked, release chan struct{}
}

func (c *blockingCounter) Process(ctx context.Context, rec stream.Record[string, string]) error {
	if c.seen.Add(1) == 50 {
		close(c.blocked)
		<-c.release
	}
	return c.counter.Process(ctx, rec)
}

// TestStateFencedCommit makes a worker commit state changes in a stale
// generation (as TestFencedCommitDropsWork does for output): the broker
// refuses the commit, the worker drops the changes with the output, and
// the next task restores the committed state, so the counts stay exact.
func TestStateFencedCommit(t *testing.T) {
	const n, keys = 400, 9
	b := openBroker(t)
	createTopic(t, b, "in", 2)
	createTopic(t, b, "out", 2)
	produceKeyed(t, b, 0, n, keys)
	var seen atomic.Int64
	blocked, release := make(chan struct{}), make(chan struct{})
	bld := stream.NewBuilder()
	stream.Process(stream.From(bld, "in", codec.String(), codec.String()),
		func() stream.Processor[string, string, string, string] {
			return &blockingCounter{seen: &seen, blocked: blocked, release: release}
		}, stream.WithStores(stream.BytesStoreSpec(countStore))).
		To("out")
	topo, err := bld.Build()
	require.NoError(t, err)
	var logs syncBuffer
	app, err := duality.New(countApp, topo, b, duality.StateDir(t.TempDir()),
		duality.Workers(1), duality.MaxUncommittedRecords(1), duality.CommitInterval(time.Hour),
		duality.Logger(slog.New(slog.NewTextHandler(&logs, nil))))
	require.NoError(t, err)
	stop, _ := runApp(t, app)

	<-blocked
	other, err := b.JoinGroup(t.Context(), countApp, []string{"in"}, broker.JoinOptions{})
	require.NoError(t, err)
	asg := <-other.Assignments()
	require.Len(t, asg.Partitions, 1)
	close(release)
	eventually(t, "the app sees the fence and the new assignment", func() bool {
		return app.Metrics().Assignments >= 2 && app.Metrics().Tasks == 1
	})
	require.NoError(t, other.Leave(t.Context()))
	awaitRecords(t, b, "out", n)
	require.NoError(t, stop())
	require.Contains(t, logs.String(), "commit fenced by a newer generation")
	requireCounts(t, b, n, keys)
}

// TestStateChangelogStartMoved checks that local state whose next offset
// lies before the changelog's start (compaction removed the records the
// store has not seen yet) is dropped and rebuilt from the changelog,
// rather than caught up across the hole, where a deletion could hide.
func TestStateChangelogStartMoved(t *testing.T) {
	b := openBroker(t, embedded.WithCleanupInterval(-1))
	createTopic(t, b, "in", 1)
	createTopic(t, b, "out", 1)
	dir := t.TempDir()
	produceKeyed(t, b, 0, 3, 1)
	runUntil(t, b, newCounter(t, b, duality.StateDir(dir)), 3) // the store is at the changelog's last offset
	offs, err := b.ListOffsets(t.Context(), countLog, 0)
	require.NoError(t, err)
	end := offs.Latest
	// Another owner wrote k0 twice more; compaction keeps only the last.
	require.NoError(t, b.Produce(t.Context(), []broker.Record{
		{Topic: countLog, Key: []byte("k0"), Value: []byte("10")},
		{Topic: countLog, Key: []byte("k0"), Value: []byte("20")},
	}))
	require.NoError(t, b.Cleanup(t.Context()))
	offs, err = b.ListOffsets(t.Context(), countLog, 0)
	require.NoError(t, err)
	require.Equal(t, end+1, offs.Earliest, "the records after the store's offset are gone")

	produceKeyed(t, b, 3, 4, 1)
	var logs syncBuffer
	runUntil(t, b, newCounter(t, b, duality.StateDir(dir), duality.Logger(slog.New(slog.NewTextHandler(&logs, nil)))), 4)
	out := readTopic(t, b, "out")
	require.Equal(t, "21", string(out[3].Value))
	require.Contains(t, logs.String(), fmt.Sprintf(`msg="local state does not match the changelog: rebuilding it" app=counter task=0_0 store=counts partition=0 offset=%d earliest=%d latest=%d`, end-1, end+1, end+2))
}

// transient is a retryable broker error.
type transient struct{}

func (transient) Error() string   { return "transient failure" }
func (transient) Retryable() bool { return true }

// flakyRestore fails the first fetches of a changelog with a retryable
// error.
type flakyRestore struct {
	*embedded.Broker
	failures atomic.Int32
}

func (f *flakyRestore) NewConsumer(opts broker.ConsumerOptions) (broker.Consumer, error) {
	return newHookedConsumer(f.Broker, opts, func(_ context.Context, reqs []broker.FetchRequest) (func(broker.TopicPartition) bool, error) {
		if len(reqs) == 1 && reqs[0].Topic == countLog && f.failures.Add(-1) >= 0 {
			return nil, fmt.Errorf("fetch: %w", transient{})
		}
		return nil, nil
	})
}

// TestStateRestoreRetries checks that a restore retries retryable fetch
// errors instead of failing the app.
func TestStateRestoreRetries(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "in", 1)
	createTopic(t, b, "out", 1)
	produceKeyed(t, b, 0, 5, 1)
	runUntil(t, b, newCounter(t, b), 5)
	flaky := &flakyRestore{Broker: b}
	flaky.failures.Store(3)
	produceKeyed(t, b, 5, 7, 1)
	runUntil(t, b, newCounter(t, flaky), 7) // memory state: restores all 5
	require.Negative(t, flaky.failures.Load(), "the restore fetched after the failures")
	requireCounts(t, b, 7, 1)
}

// TestStateDirOptions checks that StateDir passes its store options to
// Pebble: valid ones run, invalid ones make Run fail before it joins.
func TestStateDirOptions(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "in", 1)
	createTopic(t, b, "out", 1)
	produceKeyed(t, b, 0, 3, 1)
	runUntil(t, b, newCounter(t, b, duality.StateDir(t.TempDir(), store.WithBlockCacheSize(1<<20), store.WithMemTableSize(4<<20))), 3)
	requireCounts(t, b, 3, 1)
	err := newCounter(t, b, duality.StateDir(t.TempDir(), store.WithBlockCacheSize(-1))).Run(t.Context())
	require.ErrorIs(t, err, store.ErrInvalidConfig)
}

// bigPut stores a value larger than the broker accepts.
type bigPut struct {
	nop
	pc stream.ProcessorContext[string, string]
}

func (p *bigPut) Process(context.Context, stream.Record[string, string]) error {
	kv, err := p.pc.Store(countStore)
	if err != nil {
		return err
	}
	return kv.Put([]byte("k"), make([]byte, 200))
}

func (p *bigPut) Init(pc stream.ProcessorContext[string, string]) error { p.pc = pc; return nil }

// TestStatePutTooLarge checks that a write whose changelog record the
// broker would refuse fails the record being processed (the skip policy
// then applies to it), not the whole commit.
func TestStatePutTooLarge(t *testing.T) {
	b := openBroker(t, embedded.WithMaxRecordBytes(100))
	createTopic(t, b, "in", 1)
	bld := stream.NewBuilder()
	stream.Process(stream.From(bld, "in", codec.String(), codec.String()),
		func() stream.Processor[string, string, string, string] { return &bigPut{} }, stream.WithStores(stream.BytesStoreSpec(countStore)))
	topo, err := bld.Build()
	require.NoError(t, err)
	produceKeyed(t, b, 0, 2, 1)
	var mu sync.Mutex
	var errs []error
	app, err := duality.New(countApp, topo, b, duality.OnProcessingError(duality.SkipOnError(func(pe *duality.ProcessingError) {
		mu.Lock()
		defer mu.Unlock()
		errs = append(errs, pe)
	})))
	require.NoError(t, err)
	stop, _ := runApp(t, app)
	eventually(t, "both records skipped", func() bool { mu.Lock(); defer mu.Unlock(); return len(errs) == 2 })
	require.NoError(t, stop())
	for _, err := range errs {
		require.ErrorIs(t, err, broker.ErrRecordTooLarge)
	}
	require.Empty(t, readTopic(t, b, countLog))
}
