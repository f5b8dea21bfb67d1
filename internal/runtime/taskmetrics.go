package runtime

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/topology"
	"github.com/duality-streams/duality/store"
)

// TaskMetrics is a snapshot of one task's metrics since New, returned by
// App.TaskMetrics (duality.TaskMetrics is this type). Counters cover every
// time the task ran on this instance; a task that moved away keeps its
// counters (Active false) so that they never go back.
type TaskMetrics struct {
	// Task is the task's id.
	Task topology.TaskID
	// Active says the task runs on this instance now. A stateful task
	// that moved here in a cooperative rebalance is listed, not active
	// yet, from the moment the restoration of its stores starts in the
	// background (its Stores say Restoring) until a worker runs it.
	Active bool
	// RecordsProcessed counts the task's input records processed without
	// error (attempts: a record processed again after a failure or
	// restart counts again); RecordsSkipped those skipped, and the
	// punctuations that failed, under duality.SkipOnError.
	RecordsProcessed, RecordsSkipped uint64
	// RecordsProduced counts the output records of the task that
	// successful commits appended (changelog records not included).
	RecordsProduced uint64
	// RecordsDeadLettered counts the task's input records sent to the
	// dead-letter topic under duality.DeadLetterOnError (attempts, as
	// Metrics.RecordsDeadLettered, whose share of the task it is); the
	// task's Steps say which step failed when the error names one.
	RecordsDeadLettered uint64
	// LateRecordsDropped counts the records the task's windowed steps
	// dropped as late (attempts, as Metrics.LateRecordsDropped).
	LateRecordsDropped uint64
	// Punctuations counts the task's punctuator calls that succeeded.
	Punctuations uint64
	// ProcessLatency is the distribution, in nanoseconds, of the time
	// the task's steps took for one input record, measured on one record
	// in ProcessLatencySample of each worker (its Count is the number
	// of records measured, not of records processed).
	ProcessLatency Histogram
	// Partitions are the task's input partitions, in the order of its
	// sub-topology's sources.
	Partitions []PartitionMetrics
	// Stores are the task's partitions of its sub-topology's stores.
	Stores []StoreMetrics
	// Steps are the steps of the task's sub-topology, in the order the
	// topology created them (none for a topology written by hand).
	Steps []StepMetrics
}

// StepMetrics is a snapshot of the counts of one step of a task
// (duality.StepMetrics is this type). They count attempts: a record
// processed again after a failure or restart counts again, and a record
// that failed further down still counts at the steps it went through.
type StepMetrics struct {
	// Step is the step's name (see stream.Named), Op its operation
	// ("filter", "count", "sink", ...).
	Step, Op string
	// RecordsIn counts the records the step took: read from its topics
	// for a source, passed on by its parents otherwise (a table step
	// counts changes).
	RecordsIn uint64
	// RecordsOut counts the records the step passed on to its children,
	// once a record however many children take it; for a sink, the
	// records it wrote (its RecordsIn).
	RecordsOut uint64
	// LateRecordsDropped counts the records the step dropped as late (a
	// windowed aggregation or join).
	LateRecordsDropped uint64
	// RecordsDeadLettered counts the input records of the task sent to
	// the dead-letter topic under duality.DeadLetterOnError because this
	// step failed on them (the step of the dead letter's
	// duality.DeadLetterStepHeader). A failure that names no step (a
	// topology written by hand) counts in TaskMetrics.RecordsDeadLettered
	// only.
	RecordsDeadLettered uint64
}

// ProcessLatencySample is how many records a worker processes per record
// whose process latency it measures (TaskMetrics.ProcessLatency): reading
// the clock twice a record would cost more than the rest of the
// bookkeeping of a record.
const ProcessLatencySample = 16

// PartitionMetrics is the position of a task in one of its input
// partitions (duality.PartitionMetrics is this type).
type PartitionMetrics struct {
	Topic     string
	Partition int32
	// Position is the offset of the next record to process; Committed
	// the offset this instance last committed for the partition (-1:
	// none yet).
	Position, Committed int64
	// End is the partition's end offset as last known: what the latest
	// fetch found when it read the partition to its end, or else a
	// listing made at most every LagListInterval while the task is
	// behind (-1: unknown yet).
	End int64
	// Lag is how many offsets the task is behind End (0 when End is
	// unknown): the consumer lag of the partition. Offsets without
	// records (compaction, transaction markers) count too.
	Lag int64
}

// LagListInterval is the least time between two listings of the end
// offset of a partition a worker is behind in (PartitionMetrics.End),
// and the longest a listing runs: it runs beside the worker, which goes
// on processing meanwhile.
const LagListInterval = 10 * time.Second

// StoreMetrics is a snapshot of a task's partition of a state store
// (duality.StoreMetrics is this type).
type StoreMetrics struct {
	Store     string
	Partition int32
	// CacheHits counts the reads (Get) that the task's uncommitted
	// writes answered (the record cache, see duality.CacheMaxBytes, or
	// the writes since the last commit without it); CacheMisses those
	// that read the store.
	CacheHits, CacheMisses uint64
	// Restoring says the store is being restored from its changelog
	// now: by the worker that opens the task, or, for a task that moved
	// here in a cooperative rebalance, in the background before the task
	// runs (its TaskMetrics not Active yet). Restored and RestoreTotal
	// are the changelog records applied so far and the offsets to read
	// (to the changelog's end when it started) of the latest restoration
	// that had something to read (see RestoreProgress), both 0 while
	// none had. They are published as the records are applied: a
	// snapshot shows the progress of a restoration under way.
	Restoring              bool
	Restored, RestoreTotal int64
}

// taskMetrics are the published metrics of one task id: written by the
// worker running the task (per-record counts are kept in taskCounts and
// added after every fetched batch), read by snapshots.
type taskMetrics struct {
	id                                         topology.TaskID
	active                                     atomic.Bool
	processed, skipped, produced, late, puncts atomic.Uint64
	deadLettered                               atomic.Uint64
	latency                                    atomicHist
	parts                                      []*partMetrics
	stores                                     []*storeMetrics
	steps                                      []*stepMetrics
}

type stepMetrics struct {
	step          topology.Step
	in, out, late atomic.Uint64
	deadLettered  atomic.Uint64
}

type partMetrics struct {
	tp                       broker.TopicPartition
	position, committed, end atomic.Int64
}

type storeMetrics struct {
	name                   string
	hits, misses           atomic.Uint64
	restoring              atomic.Bool
	restored, restoreTotal atomic.Int64
}

// taskCounts are the counts of a task its worker has not published to
// its taskMetrics yet.
type taskCounts struct {
	processed, skipped, puncts uint64
	latency                    hist
}

// observed holds an app's metrics beyond the flat counters of metrics:
// every task's, and the commits' distributions.
type observed struct {
	mu    sync.Mutex
	tasks map[topology.TaskID]*taskMetrics
	// commitLatency and commitRecords are the distributions of the
	// successful commits' durations (ns) and records.
	commitLatency, commitRecords atomicHist
}

// taskMetrics returns the metrics of t's id, created on first use with
// t's partitions and stores.
func (o *observed) taskMetrics(t *task) *taskMetrics {
	o.mu.Lock()
	defer o.mu.Unlock()
	if m := o.tasks[t.id]; m != nil {
		return m
	}
	m := &taskMetrics{id: t.id}
	for _, ps := range t.parts {
		pm := &partMetrics{tp: ps.tp}
		pm.committed.Store(-1)
		pm.end.Store(-1)
		m.parts = append(m.parts, pm)
	}
	for _, sp := range t.sub.stores {
		m.stores = append(m.stores, &storeMetrics{name: sp.name})
	}
	for _, st := range t.sub.st.Steps {
		m.steps = append(m.steps, &stepMetrics{step: st})
	}
	if o.tasks == nil {
		o.tasks = map[topology.TaskID]*taskMetrics{}
	}
	o.tasks[t.id] = m
	return m
}

// attachMetrics links t, about to be opened by w, and its partitions to
// their published metrics, and marks the task active.
func (w *worker) attachMetrics(t *task) {
	m := w.app.obs.taskMetrics(t)
	t.m = m
	if n := len(t.sub.st.Steps); n > 0 && t.steps == nil {
		t.steps = make([]topology.StepCounts, n)
	}
	for i, ps := range t.parts {
		if i < len(m.parts) && m.parts[i].tp == ps.tp {
			ps.m = m.parts[i]
		} else {
			ps.m = &partMetrics{tp: ps.tp} // not reached: a task's partitions are fixed
		}
		ps.m.position.Store(ps.next)
		if ps.known { // resumed from a committed offset
			ps.m.committed.Store(ps.next)
		}
	}
	m.active.Store(true)
}

// storeMetrics returns the published metrics of t's store name.
func (t *task) storeMetrics(name string) *storeMetrics {
	if t.m != nil {
		return t.m.store(name)
	}
	return &storeMetrics{name: name}
}

// store returns the published metrics of the task's store name (metrics
// of their own, published nowhere, for a name the task does not have).
func (m *taskMetrics) store(name string) *storeMetrics {
	for _, sm := range m.stores {
		if sm.name == name {
			return sm
		}
	}
	return &storeMetrics{name: name}
}

// publish adds t's unpublished counts to its metrics and publishes the
// positions of its partitions and the cache counts of its stores. It
// runs on t's worker goroutine.
func (t *task) publish() {
	m := t.m
	if m == nil {
		return
	}
	c := &t.mc
	if c.processed > 0 {
		m.processed.Add(c.processed)
		c.processed = 0
	}
	if c.skipped > 0 {
		m.skipped.Add(c.skipped)
		c.skipped = 0
	}
	if c.puncts > 0 {
		m.puncts.Add(c.puncts)
		c.puncts = 0
	}
	m.latency.publish(&c.latency)
	for _, ps := range t.parts {
		pm := ps.m
		if pm == nil {
			continue
		}
		if pm.position.Load() != ps.next {
			pm.position.Store(ps.next)
		}
		// The end is at least what was fetched: records up to there exist.
		if end := max(ps.end, ps.fetch); end > 0 && pm.end.Load() != end {
			pm.end.Store(end)
		}
	}
	for i := range t.steps {
		c := &t.steps[i]
		if *c == (topology.StepCounts{}) || i >= len(m.steps) {
			continue
		}
		sm := m.steps[i]
		sm.in.Add(c.In)
		sm.out.Add(c.Out)
		sm.late.Add(c.Late)
		*c = topology.StepCounts{}
	}
	for _, s := range t.stores {
		if s.hits > 0 {
			s.m.hits.Add(s.hits)
			s.hits = 0
		}
		if s.misses > 0 {
			s.m.misses.Add(s.misses)
			s.misses = 0
		}
	}
}

// deadLettered counts a dead letter of t, whose failure was in step
// (the step's name; "" when unknown), in t's metrics. Dead letters are
// rare: it adds to the published atomics at once.
func (t *task) deadLettered(step string) {
	m := t.m
	if m == nil {
		return
	}
	m.deadLettered.Add(1)
	if step == "" {
		return
	}
	for _, sm := range m.steps {
		if sm.step.Name == step {
			sm.deadLettered.Add(1)
			return
		}
	}
}

// detach publishes t's last counts and marks it inactive, when it
// closes.
func (t *task) detach() {
	if t.m == nil {
		return
	}
	t.publish()
	t.m.active.Store(false)
}

// endListing is a listing of the end offsets of partitions a worker is
// behind in, running in the background (listEnds): ends[i] is the end of
// tps[i], -1 where the listing failed or did not get to.
type endListing struct {
	parts []*partState
	tps   []broker.TopicPartition
	ends  []int64
	err   error
	// at is the worker's fetch count when the listing started.
	at     uint64
	cancel context.CancelFunc
	done   chan struct{} // closed when the listing returned
}

// listEnds lists, in the background, the end offsets of the partitions w
// may be behind in (fetched past their last known end), at most every
// LagListInterval, so that their lag is known (PartitionMetrics.End).
// The listing never holds the worker up: at most one is in flight, it
// runs on a goroutine of its own with ctx (the generation's) and ends
// after LagListInterval at most, so a slow or unreachable broker delays
// the lag, not the processing; its outcome is collected by a later call,
// or dropped by awaitEnds when the worker stops. A failed listing is
// retried at the next interval.
func (w *worker) listEnds(ctx context.Context) {
	if l := w.listing; l != nil {
		select {
		case <-l.done:
			w.finishEnds(l)
		default:
			return
		}
	}
	if time.Since(w.lastEnds) < LagListInterval {
		return
	}
	var l *endListing
	for _, ps := range w.parts {
		if ps.fetch <= ps.end || ps.fetch >= ps.stop || ps.task.proc == nil {
			continue
		}
		if l == nil {
			l = &endListing{at: w.fetches, done: make(chan struct{})}
		}
		l.parts = append(l.parts, ps)
		l.tps = append(l.tps, ps.tp)
	}
	if l == nil {
		return // behind in none: listed as soon as it is
	}
	w.lastEnds = time.Now()
	l.ends = make([]int64, len(l.tps))
	var lctx context.Context
	lctx, l.cancel = context.WithTimeout(ctx, LagListInterval)
	w.listing = l
	b := w.app.b
	go func() {
		defer close(l.done)
		for i, tp := range l.tps {
			l.ends[i] = -1
			if l.err != nil {
				continue
			}
			offs, err := b.ListOffsets(lctx, tp.Topic, tp.Partition)
			if err != nil {
				l.err = fmt.Errorf("list offsets %s/%d: %w", tp.Topic, tp.Partition, err)
				continue
			}
			l.ends[i] = offs.Latest
		}
	}()
}

// finishEnds records the ends l listed for the partitions still w's
// whose end nothing newer has reported (a fetch or a listing since l
// started, see pick).
func (w *worker) finishEnds(l *endListing) {
	w.listing = nil
	l.cancel()
	if l.err != nil {
		w.app.log.Debug("list offsets for the lag failed", slog.Any("error", l.err))
	}
	for i, ps := range l.parts {
		if l.ends[i] < 0 || w.byTP[ps.tp] != ps || ps.listed > l.at || l.ends[i] < ps.end {
			continue
		}
		ps.end, ps.listed = l.ends[i], l.at
	}
}

// awaitEnds stops the listing in flight, if any, and waits for its
// goroutine; its outcome is dropped.
func (w *worker) awaitEnds() {
	if l := w.listing; l != nil {
		w.listing = nil
		l.cancel()
		<-l.done
	}
}

// TaskMetrics returns a snapshot of the metrics of every task that has
// run on this instance since New, sorted by task id (see
// duality.App.TaskMetrics). It is safe for concurrent use and takes no
// lock the workers take per record.
func (a *App) TaskMetrics() []TaskMetrics {
	a.obs.mu.Lock()
	ms := make([]*taskMetrics, 0, len(a.obs.tasks))
	for _, m := range a.obs.tasks {
		ms = append(ms, m)
	}
	a.obs.mu.Unlock()
	slices.SortFunc(ms, func(x, y *taskMetrics) int {
		return cmp.Or(cmp.Compare(x.id.SubTopology, y.id.SubTopology), cmp.Compare(x.id.Partition, y.id.Partition))
	})
	out := make([]TaskMetrics, len(ms))
	for i, m := range ms {
		tm := &out[i]
		tm.Task = m.id
		tm.Active = m.active.Load()
		tm.RecordsProcessed = m.processed.Load()
		tm.RecordsSkipped = m.skipped.Load()
		tm.RecordsProduced = m.produced.Load()
		tm.RecordsDeadLettered = m.deadLettered.Load()
		tm.LateRecordsDropped = m.late.Load()
		tm.Punctuations = m.puncts.Load()
		m.latency.load(&tm.ProcessLatency)
		tm.Partitions = make([]PartitionMetrics, len(m.parts))
		for j, pm := range m.parts {
			p := PartitionMetrics{Topic: pm.tp.Topic, Partition: pm.tp.Partition,
				Position: pm.position.Load(), Committed: pm.committed.Load(), End: pm.end.Load()}
			if p.End >= 0 {
				p.Lag = max(p.End-p.Position, 0)
			}
			tm.Partitions[j] = p
		}
		tm.Stores = make([]StoreMetrics, len(m.stores))
		for j, sm := range m.stores {
			tm.Stores[j] = StoreMetrics{Store: sm.name, Partition: m.id.Partition,
				CacheHits: sm.hits.Load(), CacheMisses: sm.misses.Load(), Restoring: sm.restoring.Load(),
				Restored: sm.restored.Load(), RestoreTotal: sm.restoreTotal.Load()}
		}
		tm.Steps = make([]StepMetrics, len(m.steps))
		for j, sm := range m.steps {
			s := StepMetrics{Step: sm.step.Name, Op: sm.step.Op, RecordsIn: sm.in.Load(),
				RecordsOut: sm.out.Load(), LateRecordsDropped: sm.late.Load(), RecordsDeadLettered: sm.deadLettered.Load()}
			if sm.step.Sink {
				s.RecordsOut = s.RecordsIn
			}
			tm.Steps[j] = s
		}
	}
	return out
}

// processLatency returns the process latency of every task together.
func (o *observed) processLatency() Histogram {
	var h Histogram
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, m := range o.tasks {
		m.latency.load(&h)
	}
	return h
}

// taskOutput is the number of output records of a task in a commit.
type taskOutput struct {
	m *taskMetrics
	n uint64
}

// producedBy returns the output records of each task of w among the
// records of a commit whose owners are owner (task indexes in w.tasks).
func (w *worker) producedBy(owner []int32) []taskOutput {
	var out []taskOutput
	for _, i := range owner {
		m := w.tasks[i].m
		if m == nil {
			continue
		}
		j := len(out) - 1
		if j < 0 || out[j].m != m {
			if j = slices.IndexFunc(out, func(o taskOutput) bool { return o.m == m }); j < 0 {
				out = append(out, taskOutput{m: m})
				j = len(out) - 1
			}
		}
		out[j].n++
	}
	return out
}

// committed records a successful commit of records records, produced
// the tasks' output among them, that took took.
func (o *observed) committed(produced []taskOutput, took time.Duration, records int) {
	for _, p := range produced {
		p.m.produced.Add(p.n)
	}
	o.commitLatency.observe(uint64(took))
	o.commitRecords.observe(uint64(records))
}

// StoreSize is the approximate number of keys of one store partition an
// instance holds (duality.StoreSize is this type).
type StoreSize struct {
	Store     string
	Partition int32
	// Keys is store.Store.ApproximateCount of the partition's committed
	// state: exact while the partition takes less than 4 MiB on disk,
	// estimated from Pebble's table properties above that.
	Keys int64
}

// StoreSizes returns the approximate key counts of the store partitions
// of the tasks running on this instance, sorted by store and partition
// (see duality.App.StoreSizes). It reads the stores (up to a few MiB each
// for small Pebble stores), so it costs more than TaskMetrics; a
// partition closed or failing meanwhile is left out. It returns nil when
// no store partition is open (the app is not running, or rebalancing).
func (a *App) StoreSizes() []StoreSize {
	q := &a.iq
	if !q.gate.enter() {
		return nil
	}
	defer q.gate.leave()
	type part struct {
		size StoreSize
		st   store.Store
	}
	var parts []part
	q.mu.RLock()
	for name, m := range q.mu.owned {
		for p, op := range m {
			if op != nil {
				parts = append(parts, part{size: StoreSize{Store: name, Partition: p}, st: op.st})
			}
		}
	}
	q.mu.RUnlock()
	if len(parts) == 0 {
		return nil
	}
	out := make([]StoreSize, 0, len(parts))
	for _, p := range parts {
		n, err := p.st.ApproximateCount()
		if err != nil {
			continue // closed by a rebalance, or failing: its reads report it
		}
		p.size.Keys = n
		out = append(out, p.size)
	}
	slices.SortFunc(out, func(x, y StoreSize) int {
		return cmp.Or(cmp.Compare(x.Store, y.Store), cmp.Compare(x.Partition, y.Partition))
	})
	return out
}
