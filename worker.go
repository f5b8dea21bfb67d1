package duality

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/topology"
)

// task is one instance of a sub-topology for one partition number.
type task struct {
	id     TaskID
	idx    int32 // index in its worker's tasks
	sub    *subPlan
	parts  []*partState
	proc   topology.Processor
	log    *slog.Logger
	stores []*taskStore

	// streamTime is the largest timestamp (ms) the task has processed,
	// moved further by the idle advance; topology.NoTime before any.
	streamTime int64
	// waitSince is when the task started holding back its buffered
	// records for an empty partition that has records not fetched yet
	// (zero: not waiting); waiting says it holds them back now.
	waitSince time.Time
	waiting   bool
	// lastInput is the clock when the task last processed input and
	// inputTime its stream time then (for the idle advance).
	lastInput time.Time
	inputTime int64
	// restored says a step restored the task's stream time
	// (RestoreStreamTime) at fetch count restoredAt and the task has
	// processed no input since: the idle advance starts once the task
	// is caught up (idleFromRestore).
	restored   bool
	restoredAt uint64
	// scheds are the task's punctuations; nextStream and nextWall are
	// the earliest due times (ms) of each kind (math.MaxInt64: none).
	scheds               []*schedule
	nextStream, nextWall int64
	dueBuf               []*schedule // scratch of punctuate
}

// partState is the position of a task in one of its input partitions.
type partState struct {
	tp    broker.TopicPartition
	task  *task
	next  int64 // next offset to process
	known bool  // next came from a commit or from processing: commit it
	// buf holds the fetched records not processed yet, in offset order;
	// fetch is the offset to fetch next (past the buffered records).
	buf   []broker.Record
	fetch int64
	// headTS is the event time of buf[0] when headOK.
	headTS int64
	headOK bool
	// end is the partition's end offset as last listed (0: unknown);
	// listed is the worker's fetch count at that listing.
	end    int64
	listed uint64
	// purge says the partition is of an internal topic the worker purges
	// (see RepartitionPurgeInterval); committed is the newest offset
	// committed for it (0: none known) and purged the offset its last
	// successful purge deleted the records below.
	purge             bool
	committed, purged int64
}

// worker runs a fixed set of tasks on one goroutine. Between commits it
// buffers the tasks' output; a commit appends it together with the tasks'
// input offsets in one atomic broker commit.
type worker struct {
	app      *App
	gen      *generation
	memberID string
	tasks    []*task
	parts    []*partState
	byTP     map[broker.TopicPartition]*partState
	reqs     []broker.FetchRequest
	// changelogs maps the changelog partitions of the tasks' stores to
	// their stores.
	changelogs map[broker.TopicPartition]*taskStore

	out     []broker.Record // output since the last commit
	pending int             // changelog records the tasks' store writes since the last commit make
	// cacheBytes is what the record caches of the tasks' stores hold;
	// beyond cacheMax (this worker's share of CacheMaxBytes; 0 without
	// record cache) the worker commits early.
	cacheBytes, cacheMax int64
	owner                []int32         // owner[i] is the index of the task that sent out[i]
	advanced             bool            // input offsets moved since the last commit
	last                 time.Time       // last commit (or start)
	inflight             *inflight       // commit running in the background
	spare                []broker.Record // the buffer of the previous commit, for reuse

	// purgeParts are the partitions the worker purges; purging is the
	// purge running in the background, lastPurge when the last one
	// started (or the worker started).
	purgeParts []*partState
	purging    *purgeRun
	lastPurge  time.Time

	processed, skipped, enforced, punctuated uint64 // not yet added to the app's metrics

	// fetches counts the worker's fetches: a partition's listed end
	// offset is current until the next one.
	fetches uint64
	// timed says some task has wall-clock punctuations or the idle
	// advance is on, so the loop reads the clock.
	timed bool

	// topics are the partition counts of the topics known to exist, for
	// checking sent records; last is the most recent lookup.
	topics    map[string]int32
	lastTopic string
	lastParts int32
}

// run opens the worker's tasks, processes until gctx ends, then commits
// according to the generation's stop reason and closes the tasks. It
// returns only fatal errors.
func (w *worker) run(runCtx, gctx context.Context) (err error) {
	ctx := context.WithoutCancel(runCtx) // processing and commits finish during shutdown
	cfg := &w.app.cfg
	w.changelogs = map[broker.TopicPartition]*taskStore{}
	w.timed = cfg.idleAdvance > 0
	for _, t := range w.tasks {
		t.log = w.app.log.With(slog.String("task", t.id.String()))
		if err := w.openStores(gctx, t); err != nil {
			if gctx.Err() != nil {
				break // stopping during a restore: state stays a prefix
			}
			return errors.Join(fmt.Errorf("task %s: %w", t.id, err), w.close())
		}
		t.streamTime, t.nextStream, t.nextWall = topology.NoTime, math.MaxInt64, math.MaxInt64
		proc, err := t.sub.st.NewTask(&taskEnv{w: w, t: t})
		if err != nil {
			return errors.Join(fmt.Errorf("task %s: create: %w", t.id, err), w.close())
		}
		t.proc = proc
		for _, ps := range t.parts {
			ps.fetch = ps.next
			w.parts = append(w.parts, ps)
			w.byTP[ps.tp] = ps
			if ps.purge {
				w.purgeParts = append(w.purgeParts, ps)
			}
		}
	}
	w.reqs = make([]broker.FetchRequest, 0, len(w.parts))
	defer func() {
		_, cerr := w.await() // a fenced commit needs no report here
		w.awaitPurge(gctx)
		w.flushMetrics()
		err = errors.Join(err, cerr, w.close())
	}()

	w.last = time.Now()
	w.lastPurge = w.last
	backoff := 10 * time.Millisecond
	for gctx.Err() == nil {
		// Process the buffered records of the tasks that may go on, run
		// the punctuations that are due, commit if due, then fetch for
		// the partitions whose buffers are empty.
		if fenced, err := w.processReady(ctx, gctx.Done()); err != nil || fenced {
			return err
		}
		w.flushMetrics()
		if gctx.Err() != nil {
			break
		}
		w.maybePurge(gctx)
		wait := cfg.fetchMaxWait
		if w.timed {
			due, fenced, err := w.tick(ctx)
			if err != nil || fenced {
				return err
			}
			wait = min(wait, max(due, time.Millisecond))
		}
		if w.inflight != nil {
			wait = min(wait, cfg.commitInterval) // notice its outcome soon
		}
		if w.dirty() {
			due := cfg.commitInterval - time.Since(w.last)
			if due <= 0 {
				if fenced, err := w.commit(ctx, w.gen.asg.Generation, nil, false); err != nil || fenced {
					return err
				}
				continue
			}
			wait = min(wait, due)
		}
		w.reqs = w.reqs[:0]
		blocked := false
		for _, ps := range w.parts {
			if len(ps.buf) == 0 {
				w.reqs = append(w.reqs, broker.FetchRequest{Topic: ps.tp.Topic, Partition: ps.tp.Partition, Offset: ps.fetch})
			}
			blocked = blocked || ps.task.waiting
		}
		if blocked {
			// A task waits for records that exist: fetch them at once
			// (an empty answer means the offsets up to the end hold no
			// records, see received).
			wait = 0
		}
		recs, err := w.app.b.Fetch(gctx, w.reqs, broker.FetchOptions{MaxWait: wait, MaxRecords: cfg.fetchMaxRecs})
		if err != nil {
			if gctx.Err() != nil {
				break
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
				t := time.NewTimer(backoff)
				select {
				case <-gctx.Done():
				case <-t.C:
				}
				t.Stop()
				backoff = min(2*backoff, time.Second)
				continue
			}
			return fmt.Errorf("fetch: %w", err)
		}
		backoff = 10 * time.Millisecond
		if err := w.received(recs); err != nil {
			return err
		}
		if fenced, err := w.poll(); err != nil || fenced {
			w.drop()
			return err
		}
	}

	// Stopping: wait for the controller's reason, then commit.
	<-w.gen.decided
	if next := w.gen.reason.next; next != nil {
		if next.Generation == w.gen.asg.Generation+1 {
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
			slog.Int64("generation", w.gen.asg.Generation), slog.Int64("next", next.Generation))
		w.drop()
		return nil
	}
	_, err = w.commit(ctx, w.gen.asg.Generation, nil, true)
	return err
}

func assigned(a *broker.Assignment) map[broker.TopicPartition]bool {
	m := make(map[broker.TopicPartition]bool, len(a.Partitions))
	for _, tp := range a.Partitions {
		m[tp] = true
	}
	return m
}

func (w *worker) dirty() bool { return w.advanced || len(w.out) > 0 || w.pending > 0 }

// received adds fetched records to the buffers of their partitions.
func (w *worker) received(recs []broker.Record) error {
	w.fetches++
	var bytes int
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
		for k := i; k < j; k++ {
			bytes += len(recs[k].Key) + len(recs[k].Value)
		}
		run := recs[i:j:j]
		for len(run) > 0 && run[0].Offset < ps.fetch {
			run = run[1:] // already buffered or processed
		}
		if len(run) > 0 {
			if len(ps.buf) == 0 {
				ps.buf = run
			} else {
				ps.buf = append(ps.buf, run...)
			}
			ps.fetch = run[len(run)-1].Offset + 1
		}
		i = j
	}
	// A partition a task waits for, listed with records beyond its fetch
	// offset, that a fetch which was not full returned nothing of holds
	// no records there (compacted away, or offsets without records):
	// stop waiting for it.
	if len(recs) < w.app.cfg.fetchMaxRecs && bytes < fullFetchBytes {
		for _, r := range w.reqs {
			ps := w.byTP[broker.TopicPartition{Topic: r.Topic, Partition: r.Partition}]
			if len(ps.buf) == 0 && ps.end > ps.fetch {
				ps.end, ps.listed = ps.fetch, w.fetches
			}
		}
	}
	return nil
}

// fullFetchBytes is a fetch size beyond which a fetch may have left out
// partitions with records (half of the brokers' default byte limit).
const fullFetchBytes = 8 << 20

// processReady processes the buffered records of every task, each task in
// timestamp order over its partitions (see pick), until every task has
// nothing left or waits for a partition. It returns early, between two
// records, once stop is closed (a rebalance or shutdown): the records left
// are not marked processed, so they are fetched again by whoever owns
// their partition next.
func (w *worker) processReady(ctx context.Context, stop <-chan struct{}) (fenced bool, err error) {
	for _, t := range w.tasks {
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
				return false, nil
			default:
			}
			if fenced, err := w.processHead(ctx, t, ps); err != nil || fenced {
				return fenced, err
			}
			n++
		}
		if n > 0 && w.app.cfg.idleAdvance > 0 {
			t.lastInput, t.inputTime = w.app.cfg.now(), t.streamTime
		}
	}
	return false, nil
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
	idle := w.app.cfg.maxTaskIdle
	if best == nil || !empty || idle <= 0 {
		t.waitSince = time.Time{}
		return best
	}
	lagging := false
	for _, ps := range t.parts {
		if len(ps.buf) > 0 {
			continue
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
	now := w.app.cfg.now()
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
	if len(t.stores) > 0 {
		t.beginRecord()
	}
	t.proc.Begin()
	perr := t.proc.Process(ctx, rec)
	if perr != nil {
		pe := &ProcessingError{Task: t.id, Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, Err: perr}
		if !cfg.policy.skip {
			return false, pe
		}
		// Drop the record's partial output and state changes; it does
		// not move stream time.
		t.streamTime = st
		w.skip(t, mark, pe)
	} else {
		w.processed++
	}
	ps.next, ps.known = rec.Offset+1, true
	w.advanced = true
	if t.streamTime >= t.nextStream {
		if fenced, err := w.punctuate(ctx, t, topology.StreamTimePunctuation, t.streamTime); err != nil || fenced {
			return fenced, err
		}
	}
	return w.maybeCommit(ctx)
}

// head returns the event time of ps's first buffered record (t is ps's
// task): what t's source extractor gives, or the broker timestamp.
func (ps *partState) head(t *task) int64 {
	if !ps.headOK {
		rec := &ps.buf[0]
		ps.headTS = rec.Timestamp.UnixMilli()
		if ts, ok := t.proc.Timestamp(rec); ok {
			ps.headTS = ts
		}
		ps.headOK = true
	}
	return ps.headTS
}

// pop drops ps's first buffered record.
func (ps *partState) pop() {
	if ps.buf = ps.buf[1:]; len(ps.buf) == 0 {
		ps.buf = nil
	}
	ps.headOK = false
}

// skip drops the partial output and state changes of a failed record or
// punctuation under SkipOnError.
func (w *worker) skip(t *task, mark int, pe *ProcessingError) {
	t.skipRecord()
	t.proc.Skip() // the steps' in-memory state, e.g. a window's stream time
	clear(w.out[mark:])
	w.out, w.owner = w.out[:mark], w.owner[:mark]
	w.skipped++
	t.log.Warn("skipping record after processing error",
		slog.String("topic", pe.Topic), slog.Int("partition", int(pe.Partition)),
		slog.Int64("offset", pe.Offset), slog.Any("error", pe.Err))
	if cb := w.app.cfg.policy.callback; cb != nil {
		cb(pe)
	}
}

// maybeCommit commits early when the uncommitted output or the record
// caches are over their bounds.
func (w *worker) maybeCommit(ctx context.Context) (fenced bool, err error) {
	full := w.cacheMax > 0 && w.cacheBytes > w.cacheMax
	if full || len(w.out)+w.pending > w.app.cfg.maxUncommitted {
		if full {
			w.app.m.cacheFlushes.Add(1)
		}
		return w.commit(ctx, w.gen.asg.Generation, nil, false)
	}
	return false, nil
}

// commit flushes the tasks and commits their buffered output and input
// offsets in generation gen, in the background unless wait is set: the
// worker goes on processing into a second buffer while the broker writes.
// At most one commit is in flight; commit first waits for the previous one,
// so the worker's commits apply in order.
//
// When keep is not nil, only the work of tasks whose partitions are all in
// keep is committed; the rest is dropped (a rebalance moved it to another
// member, which redoes it from the committed offsets). A fenced commit
// drops all uncommitted work and returns fenced: work processed after it
// must not be committed, or the fenced records would be lost.
func (w *worker) commit(ctx context.Context, gen int64, keep map[broker.TopicPartition]bool, wait bool) (fenced bool, err error) {
	for _, t := range w.tasks {
		if t.proc == nil {
			continue // not created: the generation stopped during a restore
		}
		if err := t.proc.Flush(ctx); err != nil {
			return false, fmt.Errorf("task %s: flush: %w", t.id, err)
		}
	}
	if fenced, err = w.await(); err != nil || fenced {
		w.drop()
		return fenced, err
	}
	if !w.dirty() {
		w.last = time.Now()
		return false, nil
	}
	offsets := make(map[broker.TopicPartition]int64, len(w.parts))
	out := w.out
	var kept []bool
	if keep != nil {
		kept = make([]bool, len(w.tasks))
		for i, t := range w.tasks {
			kept[i] = true
			for _, ps := range t.parts {
				kept[i] = kept[i] && keep[ps.tp]
			}
			if !kept[i] {
				t.log.Info("task revoked by a rebalance: dropping its uncommitted work")
			}
		}
		n := 0
		for i := range out {
			if kept[w.owner[i]] {
				out[n] = out[i]
				n++
			}
		}
		clear(out[n:])
		out = out[:n]
		for i, t := range w.tasks {
			if kept[i] {
				addOffsets(offsets, t)
			}
		}
	} else {
		for _, t := range w.tasks {
			addOffsets(offsets, t)
		}
	}
	var states []*taskStore
	changelog := 0
	for i, t := range w.tasks {
		for _, s := range t.stores {
			if keep != nil && !kept[i] {
				s.discard()
				continue
			}
			if s.dirty() {
				states = append(states, s)
				n := len(out)
				out = s.appendChangelog(out)
				changelog += len(out) - n
			}
			s.handOff()
		}
	}
	// Hand the buffer to the commit and continue in the spare one.
	w.out, w.spare = w.spare[:0], nil
	w.owner = w.owner[:0]
	w.advanced = false
	w.last = time.Now()
	if len(out) == 0 && len(offsets) == 0 {
		w.spare = out
		// Only range deletions (no changelog records, no input position):
		// nothing to commit to the broker, so apply them now.
		for _, s := range states {
			if err := s.applySent(); err != nil {
				return false, err
			}
		}
		return false, nil
	}
	c := &inflight{records: out, offsets: offsets, gen: gen, states: states, changelog: changelog, done: make(chan error, 1)}
	w.inflight = c
	go func() {
		start := time.Now()
		err := w.app.b.Commit(ctx, broker.CommitRequest{
			Records:    c.records,
			Group:      w.app.appID,
			Generation: gen,
			MemberID:   w.memberID,
			Offsets:    offsets,
		})
		if err == nil {
			w.app.m.commits.Add(1)
			w.app.m.produced.Add(uint64(len(c.records)))
			w.app.m.changelog.Add(uint64(c.changelog))
			w.app.m.lastCommit.Store(int64(time.Since(start)))
		}
		c.done <- err
	}()
	if wait {
		return w.await()
	}
	return false, nil
}

// inflight is a commit running in the background.
type inflight struct {
	records []broker.Record
	offsets map[broker.TopicPartition]int64 // the input offsets it commits
	gen     int64
	states  []*taskStore // stores whose writes the commit logs
	// changelog is the number of changelog records among records.
	changelog int
	done      chan error
}

// await waits for the commit in flight, if any, and returns its outcome.
func (w *worker) await() (fenced bool, err error) {
	c := w.inflight
	if c == nil {
		return false, nil
	}
	w.inflight = nil
	err = <-c.done
	if err == nil && len(c.states) > 0 {
		// The broker set the changelog records' offsets: apply each
		// store's writes with the offset of its last record.
		for i := range c.records {
			r := &c.records[i]
			if s := w.changelogs[broker.TopicPartition{Topic: r.Topic, Partition: r.Partition}]; s != nil {
				s.sentOff = r.Offset
			}
		}
		for _, s := range c.states {
			if aerr := s.applySent(); aerr != nil && err == nil {
				err = aerr
			}
		}
	} else {
		for _, s := range c.states {
			s.dropSent()
		}
	}
	if err == nil {
		for tp, off := range c.offsets {
			if ps := w.byTP[tp]; ps != nil && ps.purge {
				ps.committed = max(ps.committed, off)
			}
		}
	}
	clear(c.records)
	if w.spare == nil {
		w.spare = c.records[:0]
	}
	if errors.Is(err, broker.ErrFenced) {
		w.app.log.Info("commit fenced by a newer generation: dropping uncommitted work",
			slog.Int64("generation", c.gen), slog.Int("records", len(c.records)))
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("commit: %w", err)
	}
	return false, nil
}

// purgeRun is a purge of internal topics running in the background: one
// DeleteRecords per partition, up to its committed offset.
type purgeRun struct {
	parts  []*partState
	before []int64
	errs   []error
	done   chan struct{} // closed when every call has returned
}

// maybePurge starts a purge in the background when the purge interval has
// passed since the last one started and a partition the worker purges has
// a committed offset beyond what was purged. Only offsets of successful
// commits are purged (await records them), so no record a restart or
// another owner would read again is deleted. The purge runs with ctx, the
// generation's context; at most one is in flight, and its outcome is
// collected here or by awaitPurge.
func (w *worker) maybePurge(ctx context.Context) {
	every := w.app.cfg.purgeInterval
	if every <= 0 || len(w.purgeParts) == 0 {
		return
	}
	if r := w.purging; r != nil {
		select {
		case <-r.done:
			w.finishPurge(ctx, r)
		default:
			return
		}
	}
	if time.Since(w.lastPurge) < every {
		return
	}
	w.lastPurge = time.Now()
	r := &purgeRun{done: make(chan struct{})}
	for _, ps := range w.purgeParts {
		if ps.committed > ps.purged {
			r.parts = append(r.parts, ps)
			r.before = append(r.before, ps.committed)
		}
	}
	if len(r.parts) == 0 {
		return
	}
	r.errs = make([]error, len(r.parts))
	w.purging = r
	b := w.app.b
	tps := make([]broker.TopicPartition, len(r.parts))
	for i, ps := range r.parts {
		tps[i] = ps.tp
	}
	go func() {
		defer close(r.done)
		for i, tp := range tps {
			r.errs[i] = b.DeleteRecords(ctx, tp.Topic, tp.Partition, r.before[i])
		}
	}()
}

// finishPurge records the outcome of the finished purge r: purged offsets
// move on and count in the metrics; failures are logged at Warn (unless
// the generation is stopping) and retried at the next interval.
func (w *worker) finishPurge(ctx context.Context, r *purgeRun) {
	w.purging = nil
	for i, ps := range r.parts {
		err := r.errs[i]
		if err == nil {
			ps.purged = max(ps.purged, r.before[i])
			w.app.m.purges.Add(1)
			continue
		}
		if ctx.Err() != nil {
			continue
		}
		ps.task.log.Warn("purging an internal topic failed; retrying at the next interval",
			slog.String("topic", ps.tp.Topic), slog.Int("partition", int(ps.tp.Partition)),
			slog.Int64("offset", r.before[i]), slog.Any("error", err))
	}
}

// awaitPurge waits for the purge in flight, if any, and records its
// outcome.
func (w *worker) awaitPurge(ctx context.Context) {
	if r := w.purging; r != nil {
		<-r.done
		w.finishPurge(ctx, r)
	}
}

// poll returns the outcome of the commit in flight if it has finished.
func (w *worker) poll() (fenced bool, err error) {
	if c := w.inflight; c != nil && len(c.done) > 0 {
		return w.await()
	}
	return false, nil
}

// drop discards the uncommitted work.
func (w *worker) drop() {
	for _, t := range w.tasks {
		for _, s := range t.stores {
			s.discard()
		}
	}
	clear(w.out)
	w.out, w.owner = w.out[:0], w.owner[:0]
	w.advanced = false
}

func addOffsets(offsets map[broker.TopicPartition]int64, t *task) {
	for _, ps := range t.parts {
		if ps.known {
			offsets[ps.tp] = ps.next
		}
	}
}

func (w *worker) flushMetrics() {
	if w.processed > 0 {
		w.app.m.processed.Add(w.processed)
		w.processed = 0
	}
	if w.skipped > 0 {
		w.app.m.skipped.Add(w.skipped)
		w.skipped = 0
	}
	if w.enforced > 0 {
		w.app.m.enforced.Add(w.enforced)
		w.enforced = 0
	}
	if w.punctuated > 0 {
		w.app.m.punctuations.Add(w.punctuated)
		w.punctuated = 0
	}
}

// close closes every opened task.
func (w *worker) close() error {
	var errs []error
	for _, t := range w.tasks {
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

// taskEnv is a task's view of the runtime (topology.TaskEnv).
type taskEnv struct {
	w *worker
	t *task
}

func (e *taskEnv) AppID() string           { return e.w.app.appID }
func (e *taskEnv) TaskID() topology.TaskID { return topology.TaskID(e.t.id) }
func (e *taskEnv) Logger() *slog.Logger    { return e.t.log }
func (e *taskEnv) Now() time.Time          { return e.w.app.cfg.now() }

// CountLate counts a record a windowed step dropped as late
// (Metrics.LateRecordsDropped).
func (e *taskEnv) CountLate() { e.w.app.m.late.Add(1) }
func (e *taskEnv) TopicName(logical string, internal bool) string {
	if internal {
		return internalName(e.w.app.appID, logical)
	}
	return logical
}

// Store returns the task's partition of the store name.
func (e *taskEnv) Store(name string) (topology.KV, error) {
	for _, s := range e.t.stores {
		if s.name == name {
			return s, nil
		}
	}
	return nil, fmt.Errorf("duality: task %s has no store %q", e.t.id, name)
}

// Send appends rec to the worker's output buffer without copying it. A
// record for a topic that does not exist or a partition outside its topic
// is refused here, as an error of the record being processed, rather than
// failing the whole commit later.
func (e *taskEnv) Send(ctx context.Context, rec broker.Record) error {
	w := e.w
	if rec.Topic != w.lastTopic || w.lastTopic == "" {
		n, ok := w.topics[rec.Topic]
		if !ok {
			info, err := w.app.b.DescribeTopic(ctx, rec.Topic)
			if err != nil {
				return fmt.Errorf("send: %w", err)
			}
			n = info.Config.Partitions
			w.topics[rec.Topic] = n
		}
		w.lastTopic, w.lastParts = rec.Topic, n
	}
	if rec.Partition >= w.lastParts || rec.Partition < broker.PartitionByKey {
		return fmt.Errorf("send: %w", &broker.TopicError{Topic: rec.Topic, Partition: rec.Partition, Err: broker.ErrUnknownPartition})
	}
	if limit := w.app.maxRecordBytes; limit > 0 {
		if size := broker.RecordSize(&rec); size > limit {
			return fmt.Errorf("send: %w", &broker.RecordTooLargeError{Topic: rec.Topic, Size: size, Max: limit})
		}
	}
	w.out = append(w.out, rec)
	w.owner = append(w.owner, e.t.idx)
	return nil
}
