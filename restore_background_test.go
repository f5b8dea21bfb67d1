package duality_test

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
)

// TestRestoreInBackground runs the counter on two instances, A and B, one
// input partition each, with one worker each; B's store is large. Then B
// stops and its task moves to A in a cooperative rebalance. A restores
// B's store in the background: the test holds that restore at its first
// progress report (the OnRestore hook blocks) and checks that A's own
// task, on the same worker, goes on processing meanwhile (its output
// advances). Then:
//
//   - handed-over: the restore goes on, A's worker takes the task once
//     restored and processes its partition from the committed offsets;
//   - revoked: B comes back with its state directory while A still
//     restores, and the task moves to B (its copy is caught up, A's is
//     not); A drops the restore without finishing or opening the task.
//
// The counts are exact either way: nothing lost, nothing doubled. It runs
// on the embedded broker and on Kafka (kfake).
func TestRestoreInBackground(t *testing.T) {
	backends := []struct {
		name string
		open func(t *testing.T) broker.Broker
	}{
		{"embedded", func(t *testing.T) broker.Broker { return openBroker(t) }},
		{"kafka", func(t *testing.T) broker.Broker { return newKafkaBroker(t) }},
	}
	for _, be := range backends {
		for _, revoked := range []bool{false, true} {
			name := be.name + "/handed-over"
			if revoked {
				name = be.name + "/revoked"
			}
			t.Run(name, func(t *testing.T) { testRestoreInBackground(t, be.open(t), revoked) })
		}
	}
}

// partInput appends n records to partition p of "in", keys
// "p<p>-k<i%keys>" for i in [from, from+n), and counts them in model.
func partInput(t *testing.T, b broker.Broker, p int32, from, n, keys int, model map[string]int) {
	t.Helper()
	recs := make([]broker.Record, 0, n)
	for i := from; i < from+n; i++ {
		k := fmt.Sprintf("p%d-k%d", p, i%keys)
		model[k]++
		recs = append(recs, broker.Record{Topic: "in", Partition: p, Key: []byte(k), Value: fmt.Appendf(nil, "v%d", i)})
	}
	require.NoError(t, b.Produce(t.Context(), recs))
}

// requireModelCounts checks that "out" holds, for every key of model, the
// counts 1..model[key] exactly once each and in order, and no other key.
func requireModelCounts(t *testing.T, b broker.Broker, model map[string]int) {
	t.Helper()
	got := map[string][]int{}
	for _, r := range readTopic(t, b, "out") {
		c, err := strconv.Atoi(string(r.Value))
		require.NoError(t, err)
		got[string(r.Key)] = append(got[string(r.Key)], c)
	}
	require.Len(t, got, len(model))
	for k, m := range model {
		seq := make([]int, m)
		for i := range seq {
			seq[i] = i + 1
		}
		require.Equal(t, seq, got[k], "counts of key %s", k)
	}
}

func testRestoreInBackground(t *testing.T, b broker.Broker, revoked bool) {
	// big distinct keys make B's store: at least as many changelog
	// records, read in batches of 100 (FetchMaxRecords).
	const big = 3000
	createTopic(t, b, "in", 2)
	createTopic(t, b, "out", 2)
	model := map[string]int{}
	var outputs int // records in "out" so far
	dirB := t.TempDir()
	opts := func(dir string, extra ...duality.Option) []duality.Option {
		return append([]duality.Option{duality.StateDir(dir), duality.Workers(1), duality.FetchMaxRecords(100),
			duality.FetchMaxWait(50 * time.Millisecond), duality.AcceptableRecoveryLag(10)}, extra...)
	}

	// A's hook holds the first progress report of a restore until
	// release is closed, and keeps the final reports.
	var mu sync.Mutex
	var doneReports []duality.RestoreProgress
	restoring, release := make(chan struct{}), make(chan struct{})
	var restoringOnce, releaseOnce sync.Once
	hook := duality.OnRestore(func(p duality.RestoreProgress) {
		if p.Done {
			mu.Lock()
			doneReports = append(doneReports, p)
			mu.Unlock()
			return
		}
		restoringOnce.Do(func() { close(restoring) })
		<-release
	})
	appA := newCounter(t, b, opts(t.TempDir(), hook)...)
	appB := newCounter(t, b, opts(dirB)...)
	stopA, _ := runApp(t, appA)
	stopB, _ := runApp(t, appB)
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) }) // before the apps stop
	eventually(t, "one task each", func() bool { return appA.Metrics().Tasks == 1 && appB.Metrics().Tasks == 1 })

	// Which partition is A's: one record on partition 0 says.
	partInput(t, b, 0, 0, 1, 1, model)
	outputs++
	awaitRecords(t, b, "out", outputs)
	eventually(t, "the record counted as processed", func() bool {
		return appA.Metrics().RecordsProcessed+appB.Metrics().RecordsProcessed == 1
	})
	pA, pB := int32(0), int32(1)
	if appB.Metrics().RecordsProcessed == 1 {
		pA, pB = 1, 0
	}
	partInput(t, b, pA, 1, 50, 20, model)
	partInput(t, b, pB, 1, big, big, model)
	outputs += 50 + big
	awaitRecords(t, b, "out", outputs)
	eventually(t, "both committed what they processed", func() bool {
		return appA.Metrics().RecordsProcessed+appB.Metrics().RecordsProcessed == uint64(outputs)
	})
	openedA := appA.Metrics().TasksOpened

	// B stops; A restores its store and is held at the first report.
	require.NoError(t, stopB())
	select {
	case <-restoring:
	case <-time.After(20 * time.Second):
		require.FailNow(t, "A never started restoring B's store")
	}
	require.Equal(t, 2, appA.Metrics().Tasks, "the task is A's, restoring")
	// A's own task goes on meanwhile, on the same worker.
	partInput(t, b, pA, 51, 200, 20, model)
	outputs += 200
	awaitRecords(t, b, "out", outputs)
	require.Equal(t, openedA, appA.Metrics().TasksOpened, "the restoring task is not open yet")

	if !revoked {
		releaseOnce.Do(func() { close(release) })
		eventually(t, "A opened the restored task", func() bool { return appA.Metrics().TasksOpened == openedA+1 })
		partInput(t, b, pA, 251, 100, 20, model)
		partInput(t, b, pB, big+1, 100, big, model)
		outputs += 200
		awaitRecords(t, b, "out", outputs)
		require.NoError(t, stopA())
		requireModelCounts(t, b, model)
		mu.Lock()
		defer mu.Unlock()
		require.Len(t, doneReports, 1, "one restore: B's store")
		require.Equal(t, pB, doneReports[0].Partition)
		require.GreaterOrEqual(t, doneReports[0].Restored, int64(big), "every key of B's store restored")
		return
	}

	// B comes back with its caught-up copy while A is still held: the
	// task moves to B, which processes it, and A drops its restore.
	appB2 := newCounter(t, b, opts(dirB)...)
	stopB2, _ := runApp(t, appB2)
	eventually(t, "the task moved back to B", func() bool {
		return appB2.Metrics().Tasks == 1 && appA.Metrics().Tasks == 1
	})
	partInput(t, b, pA, 251, 100, 20, model)
	partInput(t, b, pB, big+1, 100, big, model)
	outputs += 200
	awaitRecords(t, b, "out", outputs)
	releaseOnce.Do(func() { close(release) })
	require.NoError(t, stopA())
	require.NoError(t, stopB2())
	require.Equal(t, openedA, appA.Metrics().TasksOpened, "A never opened the task it restored")
	requireModelCounts(t, b, model)
	mu.Lock()
	defer mu.Unlock()
	require.Empty(t, doneReports, "A's restore was dropped, not finished")
}

// TestTaskMetricsBackgroundRestore: the restoration of a task that moved
// here, which the replica run does in the background before a worker
// runs the task, shows in TaskMetrics from its start: the task is listed,
// not active, its store restoring with its progress; then restored, and
// active once handed to a worker. Two instances on the embedded broker,
// as TestRestoreInBackground; A's OnRestore hook holds the restoration at
// its first progress report, so that the test sees it under way.
func TestTaskMetricsBackgroundRestore(t *testing.T) {
	const big = 3000
	b := openBroker(t)
	createTopic(t, b, "in", 2)
	createTopic(t, b, "out", 2)
	model := map[string]int{}
	opts := func(extra ...duality.Option) []duality.Option {
		return append([]duality.Option{duality.StateDir(t.TempDir()), duality.Workers(1), duality.FetchMaxRecords(100),
			duality.FetchMaxWait(50 * time.Millisecond)}, extra...)
	}
	restoring, release := make(chan struct{}), make(chan struct{})
	var restoringOnce, releaseOnce sync.Once
	hook := duality.OnRestore(func(p duality.RestoreProgress) {
		if !p.Done {
			restoringOnce.Do(func() { close(restoring) })
			<-release
		}
	})
	appA := newCounter(t, b, opts(hook)...)
	appB := newCounter(t, b, opts()...)
	_, _ = runApp(t, appA)
	stopB, _ := runApp(t, appB)
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) }) // before the apps stop
	eventually(t, "one task each", func() bool { return appA.Metrics().Tasks == 1 && appB.Metrics().Tasks == 1 })

	// B's partition gets big distinct keys: its store, and changelog.
	partInput(t, b, 0, 0, 1, 1, model)
	awaitRecords(t, b, "out", 1)
	eventually(t, "the record counted as processed", func() bool {
		return appA.Metrics().RecordsProcessed+appB.Metrics().RecordsProcessed == 1
	})
	pB := int32(0)
	if appA.Metrics().RecordsProcessed == 1 {
		pB = 1
	}
	partInput(t, b, pB, 1, big, big, model)
	awaitRecords(t, b, "out", 1+big)
	eventually(t, "B committed what it processed", func() bool {
		return appA.Metrics().RecordsProcessed+appB.Metrics().RecordsProcessed == 1+big
	})
	id := duality.TaskID{SubTopology: 0, Partition: pB}
	taskOf := func(app *duality.App) (duality.TaskMetrics, bool) {
		for _, tm := range app.TaskMetrics() {
			if tm.Task == id {
				return tm, true
			}
		}
		return duality.TaskMetrics{}, false
	}
	if tm, ok := taskOf(appA); ok { // A ran it before B joined
		require.False(t, tm.Active)
	}

	// B stops: A restores B's task in the background, held at its first
	// progress report.
	require.NoError(t, stopB())
	select {
	case <-restoring:
	case <-time.After(20 * time.Second):
		require.FailNow(t, "A never started restoring B's store")
	}
	var held duality.StoreMetrics
	eventually(t, "the restoration under way in TaskMetrics", func() bool {
		tm, ok := taskOf(appA)
		if !ok || len(tm.Stores) != 1 {
			return false
		}
		held = tm.Stores[0]
		return held.Restoring && held.Restored > 0
	})
	tm, _ := taskOf(appA)
	require.False(t, tm.Active, "not running yet")
	require.Equal(t, countStore, held.Store)
	require.Equal(t, pB, held.Partition)
	require.GreaterOrEqual(t, held.RestoreTotal, int64(big), "every key of B's store to read")
	require.Less(t, held.Restored, held.RestoreTotal, "held at its first report")
	end := int64(big) // B's partition: big records, and the first one on partition 0
	if pB == 0 {
		end++
	}
	require.Equal(t, []duality.PartitionMetrics{{Topic: "in", Partition: pB, Position: end, Committed: end, End: -1}},
		tm.Partitions, "the positions the task resumes from, committed by B")

	// Released, the restoration ends, then a worker runs the task.
	releaseOnce.Do(func() { close(release) })
	eventually(t, "the task restored and active", func() bool {
		tm, ok := taskOf(appA)
		return ok && tm.Active && !tm.Stores[0].Restoring
	})
	tm, _ = taskOf(appA)
	s := tm.Stores[0]
	require.GreaterOrEqual(t, s.Restored, int64(big), "every key of B's store restored")
	require.Equal(t, held.RestoreTotal, s.RestoreTotal, "the worker had nothing left to restore")
	require.LessOrEqual(t, s.Restored, s.RestoreTotal)

	// And it processes its partition.
	partInput(t, b, pB, big+1, 10, big, model)
	awaitRecords(t, b, "out", 1+big+10)
	requireModelCounts(t, b, model)
}
