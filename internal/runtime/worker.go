package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/topology"
)

// worker runs a fixed set of tasks on one goroutine. Between commits it
// buffers the tasks' output; a commit appends it together with the tasks'
// input offsets in one atomic broker commit.
type worker struct {
	app      *App
	gen      *generation
	memberID string
	// genNum is the group generation the worker commits in: its
	// generation's at the start, moved on by each cooperative rebalance
	// it applies (see change).
	genNum int64
	// idx is the worker's slot index; exited is closed when its run
	// has returned (nil for the Stepper's worker).
	idx    int
	exited chan struct{}
	// slot holds the consumer the worker reads its input with and the
	// committer it commits with; the worker releases the consumer's
	// partitions when it ends.
	slot  *workerSlot
	tasks []*task
	parts []*partState
	byTP  map[broker.TopicPartition]*partState
	reqs  []broker.FetchRequest

	out     []broker.Record // output since the last commit
	pending int             // changelog records the tasks' store writes since the last commit make
	// cacheBytes is what the record caches of the tasks' stores hold;
	// beyond cacheMax (this worker's share of CacheMaxBytes; 0 without
	// record cache) the worker commits early.
	cacheBytes, cacheMax int64
	owner                []int32   // owner[i] is the index of the task that sent out[i]
	advanced             bool      // input offsets moved since the last commit
	last                 time.Time // last commit (or start)
	inflight             *inflight // commit running in the background
	// spare and spareOwner are the buffers of out and owner of the
	// previous commit, for reuse once it has finished (see growOut).
	spare      []broker.Record
	spareOwner []int32
	// refused is a commit the group fenced, held for the rebalance
	// that fenced it (see onFenced); nothing commits before it.
	// deferred are the tasks handed to the worker while it holds one
	// (see apply): the rebalance's change opens those it keeps.
	refused  *inflight
	deferred []*task
	// committed, when not nil, is called with the records of each
	// successful commit, their partitions and offsets set, before their
	// buffer is reused (the Stepper hands them to its caller).
	committed func([]broker.Record)
	// keyOrder makes the tasks' stores index their writes from the
	// start, so that a commit's changelog records of one store are in
	// key order (the Stepper's output is deterministic) rather than in
	// the record cache's map order.
	keyOrder bool
	// untimed says the worker commits only when told and processes
	// everything buffered in one processReady (the Stepper); otherwise it
	// commits once CommitInterval has passed since the last commit, also
	// between two records of a fetched batch.
	untimed bool
	// nextTask is the index of the task processReady starts with: after
	// a commit ends it early, the next call starts with the task after
	// the one it stopped in, so that the tasks take turns.
	nextTask int

	// clockAt is when commitDue last read the clock, clockCalls the
	// calls of maybeCommit since then (that one included) and clockSkip
	// those left that do not read it.
	clockAt               time.Duration // since clockBase
	clockCalls, clockSkip int

	// purgeParts are the partitions the worker purges; purging is the
	// purge running in the background, lastPurge when the last one
	// started (or the worker started).
	purgeParts []*partState
	purging    *purgeRun
	lastPurge  time.Time

	processed, skipped, enforced, punctuated, itemsSkipped, deadLettered uint64 // not yet added to the app's metrics
	// sample counts the records down to the next one whose process
	// latency is measured (ProcessLatencySample); lastEnds is when the
	// worker last started listing the ends of the partitions it is
	// behind in, and listing that listing while in flight (listEnds).
	sample   uint32
	lastEnds time.Time
	listing  *endListing

	// fetches counts the worker's fetches: a partition's listed end
	// offset is current until the next one.
	fetches uint64
	// polls are the records of the fetches some partition's buffer may
	// still hold, when the consumer reuses them (see recycle).
	polls []fetchedRecords
	// timed says some task has wall-clock punctuations or the idle
	// advance is on, so the loop reads the clock.
	timed bool

	// mail carries the loop's changes (cooperative rebalances) and, in a
	// bounded run, its end advances.
	mail mailbox

	// collect says the worker processed a record of collectBytes or more
	// since its last commit (see commit).
	collect bool

	// topics are the partition counts of the topics known to exist, for
	// checking sent records; last is the most recent lookup.
	topics    map[string]int32
	lastTopic string
	lastParts int32
}

// newWorker returns a worker of generation g without tasks. topics are
// the partition counts of the topics known to exist; cacheMax is the
// worker's share of CacheMaxBytes.
func newWorker(a *App, g *generation, memberID string, s *workerSlot, topics map[string]int32, cacheMax int64) *worker {
	w := &worker{app: a, gen: g, memberID: memberID, genNum: g.asg.Generation, slot: s,
		byTP: map[broker.TopicPartition]*partState{}, topics: maps.Clone(topics), cacheMax: cacheMax}
	w.mail.init()
	return w
}

// add gives t to w, before w opens its tasks.
func (w *worker) add(t *task) {
	t.idx = int32(len(w.tasks))
	w.tasks = append(w.tasks, t)
}

// run opens the worker's tasks, processes until gctx ends, then commits
// according to the generation's stop reason and closes the tasks. It
// returns only fatal errors.
func (w *worker) run(gctx context.Context) (err error) {
	// Processing and commits finish when the generation stops, until the
	// shutdown's deadline.
	ctx := w.app.shut.ctx
	cfg := &w.app.cfg
	if err := w.open(gctx); err != nil {
		return errors.Join(err, w.close())
	}
	defer func() {
		_, cerr := w.await() // a fenced commit needs no report here
		w.awaitPurge(gctx)
		w.awaitEnds()
		w.flushMetrics()
		err = errors.Join(err, cerr, w.close())
	}()
	// The next generation's worker of the slot assigns its own
	// partitions, from the committed offsets.
	defer w.slot.rd.release()

	w.last = time.Now()
	w.lastPurge = w.last
	var bo backoff // of the fetch
	for gctx.Err() == nil {
		// Process the buffered records of the tasks that may go on, run
		// the punctuations that are due, commit if due, then fetch for
		// the partitions whose buffers are empty.
		more, fenced, err := w.processReady(ctx, gctx.Done())
		if err != nil {
			return err
		}
		if fenced {
			if goOn, err := w.onFenced(ctx, gctx); !goOn {
				return err
			}
			continue
		}
		w.flushMetrics()
		if gctx.Err() != nil {
			break
		}
		if c := w.mail.takeChange(); c != nil {
			// A cooperative rebalance: the tasks that stay go on.
			fenced, err := w.apply(ctx, gctx, c)
			c.done <- changeResult{fenced: fenced, err: err}
			if err != nil || fenced {
				return err // fenced: the work is dropped, the tasks start again elsewhere
			}
			continue
		}
		if w.app.end != nil {
			if r := w.mail.takeAdvance(); r != nil {
				if fenced, err := w.toEnd(ctx, r.subs); err != nil || fenced {
					return err
				}
				r.ack()
				continue
			}
		}
		w.maybePurge(gctx)
		w.listEnds(gctx)
		wait := cfg.FetchMaxWait
		if w.timed {
			due, fenced, err := w.tick(ctx)
			if err != nil {
				return err
			}
			if fenced {
				if goOn, err := w.onFenced(ctx, gctx); !goOn {
					return err
				}
				continue
			}
			wait = min(wait, max(due, time.Millisecond))
		}
		if w.inflight != nil {
			wait = min(wait, cfg.CommitInterval) // notice its outcome soon
		}
		if w.dirty() {
			due := cfg.CommitInterval - time.Since(w.last)
			if due <= 0 {
				fenced, err := w.commit(ctx, w.genNum, nil, false)
				if err != nil {
					return err
				}
				if fenced {
					if goOn, err := w.onFenced(ctx, gctx); !goOn {
						return err
					}
				}
				continue
			}
			wait = min(wait, due)
		}
		w.reqs = w.reqs[:0]
		blocked := false
		for _, ps := range w.parts {
			if len(ps.buf) == 0 && ps.fetch < ps.stop {
				w.reqs = append(w.reqs, broker.FetchRequest{Topic: ps.tp.Topic, Partition: ps.tp.Partition, Offset: ps.fetch})
			}
			blocked = blocked || ps.task.waiting
		}
		if blocked || more {
			// A task waits for records that exist: fetch them at once
			// (an empty answer means the offsets up to the end hold no
			// records, see received). Or records are still buffered:
			// fetch what is there for the partitions that have none and
			// process on.
			wait = 0
		}
		if wait > 0 && !w.dirty() {
			// Idle until input arrives, with no commit to come: a
			// cursor kept by a scan (a punctuation's, say) would pin
			// its store's files all that time.
			for _, t := range w.tasks {
				for _, s := range t.stores {
					s.newView()
				}
			}
		}
		// The fetch ends early when the controller posts an advance
		// (a bounded run) or a rebalance.
		fctx, fetched, ok := w.mail.fetchContext(gctx)
		if !ok {
			continue
		}
		var polled broker.Polled
		err = nil
		if len(w.reqs) > 0 {
			w.recycle()
			polled, err = w.slot.rd.fetch(fctx, w.reqs, wait)
		} else if !more {
			// Nothing to fetch (a bounded run's inputs are at their
			// ends): wait as a fetch of nothing would.
			err = sleep(fctx, wait)
		}
		interrupted := fctx.Err() != nil // before fetched cancels it
		fetched()
		if err != nil {
			if gctx.Err() != nil {
				break
			}
			if interrupted {
				continue // by the controller's advance or rebalance
			}
			var oor *broker.OffsetOutOfRangeError
			if errors.As(err, &oor) {
				if ps := w.byTP[broker.TopicPartition{Topic: oor.Topic, Partition: oor.Partition}]; ps != nil {
					ps.task.log.Warn("offset out of range, resetting to the earliest offset",
						slog.String("topic", oor.Topic), slog.Int("partition", int(oor.Partition)),
						slog.Int64("offset", oor.Offset), slog.Int64("earliest", oor.Offsets.Earliest))
					ps.next, ps.fetch, ps.buf, ps.headOK = oor.Offsets.Earliest, oor.Offsets.Earliest, nil, false
					continue
				}
			}
			if broker.IsRetryable(err) {
				// Retried through the loop (see fetchRetrying).
				bo.wait(gctx)
				continue
			}
			return fmt.Errorf("fetch: %w", err)
		}
		bo.reset()
		if err := w.received(polled); err != nil {
			return err
		}
		fenced, perr := w.poll()
		if perr != nil {
			w.drop()
			return perr
		}
		if fenced {
			if goOn, err := w.onFenced(ctx, gctx); !goOn {
				return err
			}
		}
	}

	// Stopping: wait for the controller's reason, then commit.
	<-w.gen.decided
	if w.refused != nil {
		// A commit was fenced: what came after it cannot be committed
		// without it.
		w.giveUp()
		return nil
	}
	if w.gen.reason.heal || w.gen.reason.lost {
		// The state is rebuilt and the tasks started again, or the
		// partitions may be another member's already: the work since
		// the last commit is redone by whoever owns them next.
		w.drop()
		return nil
	}
	if next := w.gen.reason.next; next != nil {
		if next.Generation == w.genNum+1 {
			// One rebalance: a partition kept in next had no other owner
			// in between, so its work is still valid in next.
			_, err := w.commit(ctx, next.Generation, assigned(next), true)
			return err
		}
		// Generations were skipped (Assignments keeps only the newest): a
		// partition we hold again may have had another owner in between
		// who committed past our work, and committing it would duplicate
		// output or move offsets back. Drop it all; the new tasks resume
		// from the committed offsets.
		w.app.log.Info("rebalance skipped generations: dropping uncommitted work",
			slog.Int64("generation", w.genNum), slog.Int64("next", next.Generation))
		w.drop()
		return nil
	}
	_, err = w.commit(ctx, w.genNum, nil, true)
	return err
}

func assigned(a *broker.Assignment) map[broker.TopicPartition]bool {
	m := make(map[broker.TopicPartition]bool, len(a.Partitions))
	for _, tp := range a.Partitions {
		m[tp] = true
	}
	return m
}

// open opens the worker's tasks: it restores each task's stores, creates
// its processor and starts it at its partitions' positions (ps.next).
// When ctx ends during a restore it stops there and returns nil: the
// tasks not created yet have a nil proc, and every step skips them.
func (w *worker) open(ctx context.Context) error {
	w.timed = w.app.cfg.IdleStreamTimeAdvance > 0
	return w.openTasks(ctx, w.tasks)
}

// openTasks opens tasks, tasks of w, as open does.
func (w *worker) openTasks(ctx context.Context, tasks []*task) error {
	for _, t := range tasks {
		t.log = w.app.log.With(slog.String("task", t.id.String()))
		w.attachMetrics(t)
		if err := w.openStores(ctx, t); err != nil {
			if ctx.Err() != nil {
				break // stopping during a restore: state stays a prefix
			}
			return fmt.Errorf("task %s: %w", t.id, err)
		}
		t.streamTime, t.nextStream, t.nextWall = topology.NoTime, math.MaxInt64, math.MaxInt64
		proc, err := t.sub.st.NewTask(&taskEnv{w: w, t: t})
		if err != nil {
			return fmt.Errorf("task %s: create: %w", t.id, err)
		}
		t.proc = proc
		w.app.m.tasksOpened.Add(1)
		for _, ps := range t.parts {
			ps.fetch = ps.next
			w.parts = append(w.parts, ps)
			w.byTP[ps.tp] = ps
			if ps.purge {
				w.purgeParts = append(w.purgeParts, ps)
			}
		}
	}
	w.reqs = slices.Grow(w.reqs[:0], len(w.parts))
	return nil
}

func (w *worker) dirty() bool { return w.advanced || len(w.out) > 0 || w.pending > 0 }

// received adds polled records to the buffers of their partitions, and
// moves the fetch offset of every partition the poll read to its end
// there: the offsets up to the end hold no more records (compacted away,
// or offsets without records), so a task does not wait for them, and a
// bounded run's partition whose end is at or past its stop offset is at
// its stop.
func (w *worker) received(polled broker.Polled) error {
	w.fetches++
	recs := polled.Records
	if len(recs) > 0 && w.slot.rd.recycles() {
		w.polls = append(w.polls, fetchedRecords{fetch: w.fetches, recs: recs})
	}
	for i := 0; i < len(recs); {
		rec := &recs[i]
		ps := w.byTP[broker.TopicPartition{Topic: rec.Topic, Partition: rec.Partition}]
		if ps == nil {
			return fmt.Errorf("fetch returned a record of unrequested partition %s/%d", rec.Topic, rec.Partition)
		}
		// The records of one partition usually come in one run.
		j := i + 1
		for j < len(recs) && recs[j].Partition == rec.Partition && recs[j].Topic == rec.Topic {
			j++
		}
		w.buffer(ps, recs[i:j:j])
		i = j
	}
	for tp, end := range polled.Ends {
		ps := w.byTP[tp]
		if ps == nil {
			continue
		}
		ps.end, ps.listed = end, w.fetches
		if end > ps.fetch && ps.fetch < ps.stop {
			ps.fetch = min(end, ps.stop)
		}
		w.caughtUp(ps)
	}
	return nil
}

// buffer adds run, fetched records of ps in offset order, to ps's buffer.
// In a bounded run, the records at or past ps's stop offset are dropped:
// the offsets from the last record kept up to stop hold none.
func (w *worker) buffer(ps *partState, run []broker.Record) {
	for len(run) > 0 && run[0].Offset < ps.fetch {
		run = run[1:] // already buffered or processed
	}
	beyond := false
	for len(run) > 0 && run[len(run)-1].Offset >= ps.stop {
		run, beyond = run[:len(run)-1], true
	}
	if len(run) > 0 {
		if len(ps.buf) == 0 {
			ps.buf, ps.bufFetch = run, w.fetches
		} else {
			// A copy of its own (ps.buf's capacity clipped, so that
			// the append cannot write into a fetch's array).
			ps.buf, ps.bufFetch = append(ps.buf[:len(ps.buf):len(ps.buf)], run...), 0
		}
		ps.fetch = run[len(run)-1].Offset + 1
	}
	if beyond {
		ps.fetch = ps.stop
		w.caughtUp(ps)
	}
}

// fetchedRecords are the records of the worker's fetch number fetch.
type fetchedRecords struct {
	fetch uint64
	recs  []broker.Record
}

// recycle hands the records of the fetches that no partition's buffer
// holds any more back to the consumer, to fill again: a small record's
// broker.Record takes more memory than its bytes, and reusing it spares
// allocating, zeroing and first touching fresh memory for every record
// read. It runs between fetches, when no record is being processed (a
// Processor keeps no *broker.Record past its Process).
func (w *worker) recycle() {
	kept := w.polls[:0]
	for _, f := range w.polls {
		held := false
		for _, ps := range w.parts {
			if len(ps.buf) > 0 && ps.bufFetch == f.fetch {
				held = true
				break
			}
		}
		if held {
			kept = append(kept, f)
		} else {
			w.slot.rd.recycle(f.recs)
		}
	}
	clear(w.polls[len(kept):])
	w.polls = kept
}

// caughtUp moves the position of ps to its fetch offset once every
// record buffered is processed: the offsets up to it hold no other
// records. A fetch offset moved to a partition's end (Polled.Ends) or a
// bounded run's stop may lie past the last record: on Kafka a
// transaction's commit marker takes an offset, and compaction leaves
// gaps. Committing that position, as Kafka's consumers do, says the
// partition is fully consumed, which a bounded run's completion check
// (App.complete: committed >= latest) and a group's lag rely on.
func (w *worker) caughtUp(ps *partState) {
	if len(ps.buf) == 0 && ps.next < ps.fetch {
		ps.next, ps.known = ps.fetch, true
		w.advanced = true
	}
}

// sleep waits for d or until ctx ends, and returns ctx's error then.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// processReady processes the buffered records of every task, each task in
// timestamp order over its partitions (see pick), until every task has
// nothing left or waits for a partition. It returns early, between two
// records, once stop is closed (a rebalance or shutdown): the records left
// are not marked processed, so they are fetched again by whoever owns
// their partition next.
//
// Unless w is untimed, it also returns early, with more set, after a
// commit between two records (processHead commits once CommitInterval
// has passed): a fetched batch takes at most about CommitInterval
// however slow the steps are, and the worker's loop runs what it has
// to on time (wall-clock punctuations, a bounded run's advances, purges,
// fetching for the partitions whose buffers are empty) before
// processReady goes on with the records left.
func (w *worker) processReady(ctx context.Context, stop <-chan struct{}) (more, fenced bool, err error) {
	last := w.last
	for i := range w.tasks {
		ti := (w.nextTask + i) % len(w.tasks)
		t := w.tasks[ti]
		if t.proc == nil {
			continue // not created: the generation stopped during a restore
		}
		n := 0
		for {
			ps := w.pick(ctx, t)
			if ps == nil {
				break
			}
			select {
			case <-stop:
				return false, false, nil
			default:
			}
			if w.mail.changing.Load() {
				return true, false, nil // a rebalance first (see run)
			}
			if fenced, err := w.processHead(ctx, t, ps); err != nil || fenced {
				return false, fenced, err
			}
			n++
			if !w.untimed && w.last != last {
				more = true // committed: back to the loop
				w.nextTask = (ti + 1) % len(w.tasks)
				break
			}
		}
		if n > 0 && w.app.cfg.IdleStreamTimeAdvance > 0 {
			t.lastInput, t.inputTime = w.app.cfg.Clock(), t.streamTime
		}
		if more {
			return true, false, nil
		}
	}
	return false, false, nil
}

// pick returns the partition of t whose buffered head record t processes
// next, or nil when t has nothing buffered or must wait.
//
// This is Kafka Streams' PartitionGroup: the head with the smallest
// timestamp goes first (ties: the partition listed first), so a task
// reading several topics (a join) processes them in timestamp order. That
// order is only right if every partition has records buffered; when one
// has none but its end offset is past its fetch offset (it has records
// not fetched yet, as when an app starts with a backlog), t waits for
// them, at most MaxTaskIdle. A partition that is caught up does not hold
// t back.
func (w *worker) pick(ctx context.Context, t *task) *partState {
	t.waiting = false
	if len(t.parts) == 1 {
		if ps := t.parts[0]; len(ps.buf) > 0 {
			return ps
		}
		return nil
	}
	var best *partState
	var bestTS int64
	empty := false
	for _, ps := range t.parts {
		if len(ps.buf) == 0 {
			empty = true
			continue
		}
		if ts := ps.head(t); best == nil || ts < bestTS {
			best, bestTS = ps, ts
		}
	}
	idle := w.app.cfg.MaxTaskIdle
	if best == nil || !empty || idle <= 0 {
		t.waitSince = time.Time{}
		return best
	}
	lagging := false
	for _, ps := range t.parts {
		if len(ps.buf) > 0 || ps.fetch >= ps.stop {
			continue // a bounded run's partition at its end is caught up
		}
		if ps.end <= ps.fetch && ps.listed != w.fetches {
			// Caught up when last listed, but records may have come
			// since: list again (once per fetch).
			offs, err := w.app.b.ListOffsets(ctx, ps.tp.Topic, ps.tp.Partition)
			if err != nil {
				t.log.Debug("list offsets failed: not waiting for the partition",
					slog.String("topic", ps.tp.Topic), slog.Int("partition", int(ps.tp.Partition)), slog.Any("error", err))
				offs.Latest = ps.fetch
			}
			ps.end, ps.listed = offs.Latest, w.fetches
		}
		lagging = lagging || ps.end > ps.fetch
	}
	if !lagging {
		t.waitSince = time.Time{}
		return best
	}
	now := w.app.cfg.Clock()
	if t.waitSince.IsZero() {
		t.waitSince = now
	}
	if now.Sub(t.waitSince) < idle {
		t.waiting = true
		return nil
	}
	w.enforced++
	return best
}

// processHead processes the first buffered record of ps, a partition of t,
// then the stream-time punctuations it makes due.
func (w *worker) processHead(ctx context.Context, t *task, ps *partState) (fenced bool, err error) {
	cfg := &w.app.cfg
	rec := &ps.buf[0]
	if rec.Offset < ps.next {
		ps.pop()
		return false, nil
	}
	ts := ps.head(t)
	ps.pop()
	st := t.streamTime
	if ts > st {
		t.streamTime = ts
	}
	mark := len(w.out)
	var start time.Time
	if w.sample == 0 {
		start = time.Now()
	}
	if len(t.stores) > 0 {
		t.beginRecord()
	}
	t.proc.Begin()
	t.rec = rec
	perr := t.proc.Process(ctx, rec)
	t.rec = nil
	if w.sample == 0 {
		w.sample = ProcessLatencySample
		t.mc.latency.observe(uint64(time.Since(start)))
	}
	w.sample--
	if len(rec.Key)+len(rec.Value) >= collectBytes {
		w.collect = true
	}
	if pe := t.itemFailure(); pe != nil {
		return false, pe
	}
	if perr != nil {
		pe := &ProcessingError{Task: t.id, Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, Err: perr}
		if !cfg.SkipOnError {
			return false, pe
		}
		// Drop the record's partial output and state changes; it does
		// not move stream time. Under the dead-letter policy the record
		// goes to the dead-letter topic instead, in the commit that
		// covers its offset.
		t.streamTime = st
		if cfg.DeadLetter {
			if broker.IsRetryable(perr) {
				// The broker failed, not the record (a topic's
				// description when sending to it): a good record
				// must not become a dead letter. Stop; a restart
				// processes it again.
				return false, pe
			}
			if err := w.deadLetter(t, mark, rec, pe); err != nil {
				return false, err
			}
		} else {
			w.skip(t, mark, pe)
		}
	} else {
		w.processed++
		t.mc.processed++
	}
	ps.next, ps.known = rec.Offset+1, true
	w.advanced = true
	w.caughtUp(ps)
	if t.streamTime >= t.nextStream {
		if fenced, err := w.punctuate(ctx, t, topology.StreamTimePunctuation, t.streamTime); err != nil || fenced {
			return fenced, err
		}
	}
	return w.maybeCommit(ctx)
}

// skip drops the partial output and state changes of a failed record or
// punctuation under SkipOnError.
func (w *worker) skip(t *task, mark int, pe *ProcessingError) {
	w.undo(t, mark)
	w.skipped++
	t.mc.skipped++
	t.log.Warn("skipping record after processing error",
		slog.String("topic", pe.Topic), slog.Int("partition", int(pe.Partition)),
		slog.Int64("offset", pe.Offset), slog.Any("error", pe.Err))
	if cb := w.app.cfg.OnSkip; cb != nil {
		cb(pe)
	}
}

// undo drops the state changes of t's failed record or punctuation and
// the output it sent, from mark on.
func (w *worker) undo(t *task, mark int) {
	t.skipRecord()
	t.proc.Skip() // the steps' in-memory state, e.g. a window's stream time
	clear(w.out[mark:])
	w.out, w.owner = w.out[:mark], w.owner[:mark]
}

// close closes every opened task.
func (w *worker) close() error { return closeTasks(w.tasks) }

// closeTasks closes the opened tasks among tasks: their processors, and
// their stores, which queries stop reading.
func closeTasks(tasks []*task) error {
	var errs []error
	for _, t := range tasks {
		t.detach()
		if t.proc != nil {
			if err := t.proc.Close(); err != nil {
				errs = append(errs, fmt.Errorf("task %s: close: %w", t.id, err))
			}
			t.proc = nil
		}
		for _, s := range t.stores {
			if err := s.close(); err != nil {
				errs = append(errs, fmt.Errorf("task %s: %w", t.id, err))
			}
		}
		t.stores = nil
	}
	return errors.Join(errs...)
}
