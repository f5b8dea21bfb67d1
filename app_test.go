package duality_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/topology"
	"github.com/duality-streams/duality/stream"
)

func TestPipelineExactlyOnce(t *testing.T) {
	for _, workers := range []int{1, 3} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			b := openBroker(t)
			createTopic(t, b, "in", 4)
			createTopic(t, b, "out", 3)
			const n = 5000
			produceN(t, b, "in", 0, n)
			fn, done := counting(n, prefixTo("out"))
			app, err := duality.New("app", mapTopology(t, []string{"in"}, "out", fn), b,
				duality.Workers(workers), duality.CommitInterval(5*time.Millisecond), duality.MaxUncommittedRecords(300))
			require.NoError(t, err)
			stop, _ := runApp(t, app)
			<-done
			require.NoError(t, stop())
			requireExactlyOnce(t, b, "out", n)
			m := app.Metrics()
			require.EqualValues(t, n, m.RecordsProcessed)
			require.EqualValues(t, n, m.RecordsProduced)
			require.Positive(t, m.Commits)
			require.Zero(t, m.Tasks, "no tasks after Run returned")
			var tps []broker.TopicPartition
			for p := range int32(4) {
				tps = append(tps, broker.TopicPartition{Topic: "in", Partition: p})
			}
			committed, err := b.FetchOffsets(t.Context(), "app", tps)
			require.NoError(t, err)
			for p := range int32(4) {
				offs, err := b.ListOffsets(t.Context(), "in", p)
				require.NoError(t, err)
				require.Equal(t, offs.Latest, committed[broker.TopicPartition{Topic: "in", Partition: p}], "partition %d fully committed", p)
			}
		})
	}
}

func TestCoPartitionedSourcesShareATask(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "a", 2)
	createTopic(t, b, "b", 3)
	createTopic(t, b, "out", 1)
	produceN(t, b, "a", 0, 100)
	produceN(t, b, "b", 100, 200)
	var mu sync.Mutex
	seen := map[duality.TaskID]map[string]bool{}
	fn, done := counting(200, func(ctx context.Context, env topology.TaskEnv, rec *broker.Record) error {
		mu.Lock()
		id := duality.TaskID(env.TaskID())
		if seen[id] == nil {
			seen[id] = map[string]bool{}
		}
		seen[id][fmt.Sprintf("%s/%d", rec.Topic, rec.Partition)] = true
		mu.Unlock()
		require.Equal(t, id.Partition, rec.Partition)
		return prefixTo("out")(ctx, env, rec)
	})
	app, err := duality.New("copart", mapTopology(t, []string{"a", "b"}, "out", fn), b, duality.Workers(2))
	require.NoError(t, err)
	stop, _ := runApp(t, app)
	<-done
	require.NoError(t, stop())
	requireExactlyOnce(t, b, "out", 200)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, map[duality.TaskID]map[string]bool{
		{SubTopology: 0, Partition: 0}: {"a/0": true, "b/0": true},
		{SubTopology: 0, Partition: 1}: {"a/1": true, "b/1": true},
		{SubTopology: 0, Partition: 2}: {"b/2": true},
	}, seen)
}

func TestRestartResumesFromCommittedOffsets(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "in", 2)
	createTopic(t, b, "out", 2)
	const n = 4000
	produceN(t, b, "in", 0, n)

	// First run: stop after about half the input.
	fn1, half := counting(n/2, prefixTo("out"))
	app1, err := duality.New("app", mapTopology(t, []string{"in"}, "out", fn1), b,
		duality.CommitInterval(time.Millisecond), duality.MaxUncommittedRecords(100), duality.FetchMaxRecords(50))
	require.NoError(t, err)
	stop1, _ := runApp(t, app1)
	<-half
	require.NoError(t, stop1())
	m1 := app1.Metrics()
	require.Less(t, m1.RecordsProduced, uint64(n), "the first run stopped early")
	require.Equal(t, m1.RecordsProcessed, m1.RecordsProduced, "shutdown committed everything processed")

	// Second run: resumes where the first committed.
	rest := n - int64(m1.RecordsProduced)
	fn2, all := counting(rest, prefixTo("out"))
	app2, err := duality.New("app", mapTopology(t, []string{"in"}, "out", fn2), b)
	require.NoError(t, err)
	stop2, _ := runApp(t, app2)
	<-all
	require.NoError(t, stop2())
	require.EqualValues(t, rest, app2.Metrics().RecordsProcessed, "nothing processed twice")
	requireExactlyOnce(t, b, "out", n)
}

func TestTwoInstancesSplitAndTakeOver(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "in", 4)
	createTopic(t, b, "out", 4)
	const phase = 1000
	produceN(t, b, "in", 0, phase)

	type seenParts struct {
		mu    sync.Mutex
		parts map[int32]int
	}
	newApp := func(s *seenParts) *duality.App {
		fn := func(ctx context.Context, env topology.TaskEnv, rec *broker.Record) error {
			s.mu.Lock()
			s.parts[rec.Partition]++
			s.mu.Unlock()
			return prefixTo("out")(ctx, env, rec)
		}
		app, err := duality.New("shared", mapTopology(t, []string{"in"}, "out", fn), b,
			duality.Workers(2), duality.CommitInterval(2*time.Millisecond), duality.FetchMaxWait(20*time.Millisecond))
		require.NoError(t, err)
		return app
	}
	sa, sb := &seenParts{parts: map[int32]int{}}, &seenParts{parts: map[int32]int{}}
	a, bb := newApp(sa), newApp(sb)
	stopA, _ := runApp(t, a)
	stopB, _ := runApp(t, bb)
	eventually(t, "both instances own 2 tasks", func() bool {
		return a.Metrics().Tasks == 2 && bb.Metrics().Tasks == 2
	})
	awaitRecords(t, b, "out", phase)

	// With a stable split, new input is processed by both, on disjoint
	// partitions.
	reset := func(s *seenParts) { s.mu.Lock(); clear(s.parts); s.mu.Unlock() }
	reset(sa)
	reset(sb)
	produceN(t, b, "in", phase, 2*phase)
	awaitRecords(t, b, "out", 2*phase)
	sa.mu.Lock()
	sb.mu.Lock()
	require.Len(t, sa.parts, 2)
	require.Len(t, sb.parts, 2)
	for p := range sa.parts {
		require.NotContains(t, sb.parts, p, "partition %d processed by both instances", p)
	}
	sa.mu.Unlock()
	sb.mu.Unlock()

	// B leaves while input is pending; A takes over all partitions.
	produceN(t, b, "in", 2*phase, 3*phase)
	require.NoError(t, stopB())
	eventually(t, "A owns all 4 tasks", func() bool { return a.Metrics().Tasks == 4 })
	produceN(t, b, "in", 3*phase, 4*phase)
	awaitRecords(t, b, "out", 4*phase)
	require.NoError(t, stopA())
	requireExactlyOnce(t, b, "out", 4*phase)
}

func TestFailPolicyDiscardsTheFailedInterval(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "in", 1)
	createTopic(t, b, "out", 1)
	produceN(t, b, "in", 0, 100)
	boom := errors.New("boom")
	var closed atomic.Int32
	st := &topology.SubTopology{
		Sources: []topology.Source{{Topic: "in"}},
		Sinks:   []topology.Sink{{Topic: "out"}},
		NewTask: func(env topology.TaskEnv) (topology.Processor, error) {
			return &procFunc{env: env, closed: func() { closed.Add(1) }, process: func(ctx context.Context, env topology.TaskEnv, rec *broker.Record) error {
				if string(rec.Value) == "v50" {
					return boom
				}
				return prefixTo("out")(ctx, env, rec)
			}}, nil
		},
	}
	topo := wrap(t, &topology.Topology{SubTopologies: []*topology.SubTopology{st}})
	// Commits happen only when more than 10 records are buffered: after
	// offsets 10, 21, 32 and 43; the failure at offset 50 discards 44..49.
	app, err := duality.New("failing", topo, b, duality.CommitInterval(time.Hour), duality.MaxUncommittedRecords(10),
		duality.OnProcessingError(duality.SkipOnError(nil)), duality.OnProcessingError(duality.FailOnError())) // the last option wins
	require.NoError(t, err)
	err = app.Run(t.Context())
	require.ErrorIs(t, err, boom)
	var pe *duality.ProcessingError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, duality.ProcessingError{Task: duality.TaskID{SubTopology: 0, Partition: 0}, Topic: "in", Partition: 0, Offset: 50, Err: boom}, *pe)
	require.EqualError(t, err, `duality: app "failing": task 0_0: processing record in/0 at offset 50: boom`)
	require.EqualValues(t, 1, closed.Load(), "task closed")

	out := readTopic(t, b, "out")
	require.Len(t, out, 44)
	for i, r := range out {
		require.Equal(t, fmt.Sprintf("out-v%d", i), string(r.Value))
	}
	committed, err := b.FetchOffsets(t.Context(), "failing", []broker.TopicPartition{{Topic: "in", Partition: 0}})
	require.NoError(t, err)
	require.EqualValues(t, 44, committed[broker.TopicPartition{Topic: "in", Partition: 0}])
	require.ErrorIs(t, app.Run(t.Context()), duality.ErrRunCalled)
}

// TestRunFailureIsLoggedAtError: the failure Run returns is also logged,
// once, at Error, with the app attribute; a clean stop logs nothing at
// Error.
func TestRunFailureIsLoggedAtError(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "in", 1)
	createTopic(t, b, "out", 1)
	produceN(t, b, "in", 0, 3)
	boom := errors.New("boom")
	fail := func(ctx context.Context, env topology.TaskEnv, rec *broker.Record) error {
		if string(rec.Value) == "v1" {
			return boom
		}
		return prefixTo("out")(ctx, env, rec)
	}
	logs := newLogRecorder()
	app, err := duality.New("failing", mapTopology(t, []string{"in"}, "out", fail), b, duality.Logger(slog.New(logs)))
	require.NoError(t, err)
	err = app.Run(t.Context())
	require.ErrorIs(t, err, boom)
	errs := logs.at(slog.LevelError)
	require.Len(t, errs, 1)
	require.Equal(t, "run failed", errs[0].Message)
	require.Equal(t, "failing", errs[0].Attrs["app"])
	require.Equal(t, err, errs[0].Attrs["error"])

	logs = newLogRecorder()
	fn, done := counting(3, prefixTo("out"))
	app, err = duality.New("clean", mapTopology(t, []string{"in"}, "out", fn), b, duality.Logger(slog.New(logs)))
	require.NoError(t, err)
	stop, _ := runApp(t, app)
	<-done
	require.NoError(t, stop())
	require.Empty(t, logs.at(slog.LevelError))
}

func TestSkipPolicyContinuesAndCounts(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "in", 2)
	createTopic(t, b, "out", 2)
	const n = 200
	produceN(t, b, "in", 0, n)
	boom := errors.New("boom")
	attempts := make(chan struct{}, n)
	process := func(ctx context.Context, env topology.TaskEnv, rec *broker.Record) error {
		defer func() { attempts <- struct{}{} }()
		// Send output, then fail every tenth record: its output is dropped.
		if err := prefixTo("out")(ctx, env, rec); err != nil {
			return err
		}
		var i int
		_, _ = fmt.Sscanf(string(rec.Value), "v%d", &i)
		if i%10 == 0 {
			return fmt.Errorf("record %d: %w", i, boom)
		}
		return nil
	}
	var mu sync.Mutex
	var skipped []*duality.ProcessingError
	app, err := duality.New("skipping", mapTopology(t, []string{"in"}, "out", process), b,
		duality.OnProcessingError(duality.SkipOnError(func(pe *duality.ProcessingError) {
			mu.Lock()
			skipped = append(skipped, pe)
			mu.Unlock()
		})))
	require.NoError(t, err)
	stop, _ := runApp(t, app)
	for range n {
		<-attempts
	}
	require.NoError(t, stop())
	m := app.Metrics()
	require.EqualValues(t, n/10, m.RecordsSkipped)
	require.EqualValues(t, n-n/10, m.RecordsProcessed)
	require.EqualValues(t, n-n/10, m.RecordsProduced)
	mu.Lock()
	require.Len(t, skipped, n/10)
	for _, pe := range skipped {
		require.ErrorIs(t, pe, boom)
		require.Equal(t, "in", pe.Topic)
	}
	mu.Unlock()
	values := map[string]int{}
	for _, r := range readTopic(t, b, "out") {
		values[string(r.Value)]++
	}
	require.Len(t, values, n-n/10)
	for i := range n {
		want := 1
		if i%10 == 0 {
			want = 0
		}
		require.Equal(t, want, values[fmt.Sprintf("out-v%d", i)], "output of v%d", i)
	}
}

func TestMissingTopics(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "present", 1)
	st := &topology.SubTopology{
		Sources: []topology.Source{{Topic: "present"}, {Topic: "absent-in"}},
		Sinks:   []topology.Sink{{Topic: "absent-out"}, {Topic: "present"}},
		NewTask: func(env topology.TaskEnv) (topology.Processor, error) { return nil, errors.New("not reached") },
	}
	app, err := duality.New("app", wrap(t, &topology.Topology{SubTopologies: []*topology.SubTopology{st}}), b)
	require.NoError(t, err)
	err = app.Run(t.Context())
	var mt *duality.MissingTopicsError
	require.ErrorAs(t, err, &mt)
	require.Equal(t, []string{"absent-in", "absent-out"}, mt.Topics)
	require.ErrorIs(t, err, broker.ErrUnknownTopic)
	require.EqualError(t, err, `duality: app "app": missing topics absent-in, absent-out: create them before running the app`)
}

// repartitionTopology: sub-topology 0 reads "in3" and "in5" and writes
// internal "rep" (partition count 0: resolved); sub-topology 1 reads "rep"
// and writes internal "rep2" (0: resolved transitively); sub-topology 2
// reads "rep2" and writes "out".
func repartitionTopology(t testing.TB) *stream.Topology {
	forward := func(sink string, internal bool) func(topology.TaskEnv) (topology.Processor, error) {
		return func(env topology.TaskEnv) (topology.Processor, error) {
			return &procFunc{env: env, process: func(ctx context.Context, env topology.TaskEnv, rec *broker.Record) error {
				v := rec.Value
				if sink == "out" {
					v = append([]byte("out-"), v...)
				}
				return env.Send(ctx, broker.Record{Topic: env.TopicName(sink, internal), Partition: broker.PartitionByKey, Key: rec.Key, Value: v})
			}}, nil
		}
	}
	return wrap(t, &topology.Topology{
		SubTopologies: []*topology.SubTopology{
			{ID: 0, Sources: []topology.Source{{Topic: "in3"}, {Topic: "in5"}}, Sinks: []topology.Sink{{Topic: "rep", Internal: true}}, NewTask: forward("rep", true)},
			{ID: 1, Sources: []topology.Source{{Topic: "rep", Internal: true}}, Sinks: []topology.Sink{{Topic: "rep2", Internal: true}}, NewTask: forward("rep2", true)},
			{ID: 2, Sources: []topology.Source{{Topic: "rep2", Internal: true}}, Sinks: []topology.Sink{{Topic: "out"}}, NewTask: forward("out", false)},
		},
		InternalTopics: []topology.InternalTopic{
			{Name: "rep", WrittenBy: 0},
			{Name: "rep2", WrittenBy: 1},
		},
	})
}

func TestInternalTopicPartitionCounts(t *testing.T) {
	t.Run("resolved and created", func(t *testing.T) {
		b := openBroker(t)
		createTopic(t, b, "in3", 3)
		createTopic(t, b, "in5", 5)
		createTopic(t, b, "out", 2)
		produceN(t, b, "in3", 0, 300)
		produceN(t, b, "in5", 300, 500)
		app, err := duality.New("rp", repartitionTopology(t), b, duality.CommitInterval(2*time.Millisecond))
		require.NoError(t, err)
		stop, _ := runApp(t, app)
		awaitRecords(t, b, "out", 500)
		require.NoError(t, stop())
		requireExactlyOnce(t, b, "out", 500)
		for _, name := range []string{"rp-rep", "rp-rep2"} {
			info, err := b.DescribeTopic(t.Context(), name)
			require.NoError(t, err)
			require.EqualValues(t, 5, info.Config.Partitions, name)
		}
	})
	t.Run("existing with wrong count", func(t *testing.T) {
		b := openBroker(t)
		createTopic(t, b, "in3", 3)
		createTopic(t, b, "in5", 5)
		createTopic(t, b, "out", 2)
		createTopic(t, b, "rp-rep2", 4)
		app, err := duality.New("rp", repartitionTopology(t), b)
		require.NoError(t, err)
		err = app.Run(t.Context())
		require.ErrorIs(t, err, duality.ErrPartitionMismatch)
		require.ErrorContains(t, err, `topic "rp-rep2" has 4 partitions, the topology needs 5`)
	})
}

func TestNewReportsEveryProblem(t *testing.T) {
	b := openBroker(t)
	_, err := duality.New("bad app id", mapTopology(t, []string{"in"}, "out", prefixTo("out")), b,
		duality.Workers(0), duality.CommitInterval(-time.Second), duality.MaxUncommittedRecords(0),
		duality.FetchMaxWait(0), duality.FetchMaxRecords(-1), duality.Logger(nil), duality.Clock(nil),
		duality.CacheMaxBytes(-1), duality.RepartitionPurgeInterval(-time.Second), duality.ShutdownTimeout(0),
		duality.NumStandbyReplicas(-1))
	require.ErrorIs(t, err, duality.ErrInvalidConfig)
	for _, want := range []string{"app id", "Workers(0)", "CommitInterval(-1s)", "MaxUncommittedRecords(0)",
		"FetchMaxWait(0s)", "FetchMaxRecords(-1)", "Logger(nil)", "Clock(nil)",
		"CacheMaxBytes(-1): must be 0 (no record cache) or positive",
		"RepartitionPurgeInterval(-1s): must be 0 (off) or positive", "ShutdownTimeout(0s): must be positive",
		"NumStandbyReplicas(-1): must be 0 (none) or positive"} {
		require.ErrorContains(t, err, want)
	}
	require.Len(t, strings.Split(err.Error(), "\n"), 12)

	_, err = duality.New("app", nil, nil)
	require.ErrorIs(t, err, duality.ErrInvalidConfig)
	require.ErrorIs(t, err, duality.ErrInvalidTopology)

	// New checks what needs the app id: the full names of internal
	// topics. Build (dsl.Wrap for this one) has checked the rest
	// (internal/dsl TestValidate).
	long := strings.Repeat("x", 247) // valid, but not with "app-" before it
	bad := &topology.Topology{
		SubTopologies: []*topology.SubTopology{{ID: 0, Sources: []topology.Source{{Topic: "t"}},
			Sinks:   []topology.Sink{{Topic: "app-t"}, {Topic: "t", Internal: true}, {Topic: long, Internal: true}},
			NewTask: func(topology.TaskEnv) (topology.Processor, error) { return nil, errors.New("not reached") }}},
		InternalTopics: []topology.InternalTopic{{Name: "t", WrittenBy: 0}, {Name: long, WrittenBy: 0}},
	}
	_, err = duality.New("app", wrap(t, bad), b) // "app-t": internal "t" and an external sink
	require.ErrorIs(t, err, duality.ErrInvalidTopology)
	for _, want := range []string{`internal topic "t" of app "app" is named "app-t", like an external topic`,
		`internal topic "` + long + `": broker: invalid topic name`} {
		require.ErrorContains(t, err, want)
	}
	require.Len(t, strings.Split(err.Error(), "\n"), 2)
}

func TestRunReturnsAfterAllGoroutinesExit(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "in", 8)
	createTopic(t, b, "out", 1)
	produceN(t, b, "in", 0, 2000)
	ctx, cancel := context.WithCancel(t.Context())
	var during atomic.Int64
	// Every worker owns two of the 8 partitions and stays up until Run
	// ends, so the largest count seen over all 2000 records includes every
	// worker, however late the scheduler starts one (the first record of
	// the last worker to start sees them all). Goroutine dumps are slow, so
	// only every 25th offset of a partition, 0 included, takes one.
	fn, done := counting(2000, func(ctx context.Context, env topology.TaskEnv, rec *broker.Record) error {
		if rec.Offset%25 == 0 {
			n := int64(len(runtimeGoroutines()))
			for m := during.Load(); n > m && !during.CompareAndSwap(m, n); m = during.Load() {
			}
		}
		return prefixTo("out")(ctx, env, rec)
	})
	app, err := duality.New("app", mapTopology(t, []string{"in"}, "out", fn), b, duality.Workers(4))
	require.NoError(t, err)
	go func() { <-done; cancel() }()
	require.NoError(t, app.Run(ctx))
	require.GreaterOrEqual(t, during.Load(), int64(5), "4 workers and Run itself while running")
	// Run waited for its workers (and their commits); their goroutines
	// only have their deferred WaitGroup.Done left to return from. Bound:
	// 5 s of yielding (generous for a loaded 2-core CI machine), no sleeping.
	deadline := time.Now().Add(5 * time.Second)
	for left := runtimeGoroutines(); len(left) > 0; left = runtimeGoroutines() {
		require.True(t, time.Now().Before(deadline), "goroutines left after Run returned:\n%s", strings.Join(left, "\n\n"))
		runtime.Gosched()
	}
}

func TestRunWithCanceledContext(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "in", 1)
	createTopic(t, b, "out", 1)
	app, err := duality.New("app", mapTopology(t, []string{"in"}, "out", prefixTo("out")), b)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.NoError(t, app.Run(ctx))
}

func TestIdleInstanceWithoutPartitions(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "in", 1)
	createTopic(t, b, "out", 1)
	const n = 300
	produceN(t, b, "in", 0, n)
	newApp := func() *duality.App {
		app, err := duality.New("idle", mapTopology(t, []string{"in"}, "out", prefixTo("out")), b,
			duality.CommitInterval(2*time.Millisecond), duality.FetchMaxWait(20*time.Millisecond))
		require.NoError(t, err)
		return app
	}
	a, c := newApp(), newApp()
	stopA, _ := runApp(t, a)
	stopC, _ := runApp(t, c)
	eventually(t, "one instance owns the only task, the other none", func() bool {
		ma, mc := a.Metrics(), c.Metrics()
		return ma.Assignments > 0 && mc.Assignments > 0 && ma.Tasks+mc.Tasks == 1
	})
	awaitRecords(t, b, "out", n)
	require.NoError(t, stopA())
	require.NoError(t, stopC())
	requireExactlyOnce(t, b, "out", n)
}

// TestRebalanceChurn starts and stops instances of one app while input
// arrives, so that rebalances, revoked tasks and fenced commits happen at
// arbitrary points; the output must still hold every record exactly once.
func TestRebalanceChurn(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "in", 6)
	createTopic(t, b, "out", 3)
	newApp := func() *duality.App {
		app, err := duality.New("churn", mapTopology(t, []string{"in"}, "out", prefixTo("out")), b,
			duality.Workers(2), duality.CommitInterval(time.Millisecond), duality.MaxUncommittedRecords(50),
			duality.FetchMaxRecords(20), duality.FetchMaxWait(10*time.Millisecond))
		require.NoError(t, err)
		return app
	}
	const step = 500
	var stops []func() error
	start := func() {
		stop, _ := runApp(t, newApp())
		stops = append(stops, stop)
	}
	start()
	produced := 0
	for i := range 8 {
		produceN(t, b, "in", produced, produced+step)
		produced += step
		start()
		produceN(t, b, "in", produced, produced+step)
		produced += step
		if i%2 == 1 { // stop the oldest running instance
			require.NoError(t, stops[0]())
			stops = stops[1:]
		}
	}
	awaitRecords(t, b, "out", produced)
	for _, stop := range stops {
		require.NoError(t, stop())
	}
	requireExactlyOnce(t, b, "out", produced)
}
