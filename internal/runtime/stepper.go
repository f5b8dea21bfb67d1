package runtime

import (
	"context"
	"errors"
	"fmt"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/topology"
	"github.com/duality-streams/duality/store"
)

// Stepper drives an App synchronously, on the caller's goroutine: each
// call processes one input record (or one advance of the clock) through
// the task that owns it and commits, and returns the records the commit
// wrote. It is the runtime behind package streamtest, and it runs the
// same code as Run: one worker owning a task for every partition of
// every sub-topology, its processing path (stream time, punctuations,
// Begin and Skip) and its commit path (flush, one atomic broker commit,
// store writes applied once the commit succeeded).
//
// A Stepper is not safe for concurrent use. Create it with [App.Step].
type Stepper struct {
	a *App
	w *worker
	g *globals // nil without global stores
	// globalTopics are the topics of the global stores.
	globalTopics map[string]bool
	// written are the records of the commits of the step running, and
	// global says one of them went to a global store's topic.
	written []broker.Record
	global  bool
	// failed is the first record or punctuation of the step running
	// that failed (its work undone, as under SkipOnError).
	failed *ProcessingError
	closed bool
}

// Step prepares a to be driven by the returned Stepper instead of Run. It
// checks and creates the topics as Run does (the topology's external
// topics must exist), opens the state (in memory unless StateDir is set),
// bootstraps the global stores, creates the tasks of a synthetic
// assignment of every partition of every source topic (generation 0, no
// group membership: commits are not fenced), restores their stores, and
// commits what their processors wrote while being created. It returns
// the records that commit wrote.
//
// The Stepper overrides four fields of a's Config: SkipOnError (a
// failing record or punctuation is undone as SkipOnError undoes it, and
// the step that ran it returns its *ProcessingError), OnSkip, DeadLetter
// (off: the failure is the step's to report), and MaxTaskIdle (0: a task processes a record as soon as it is given). Its
// stores index their writes from the start, so that a commit's changelog
// records of one store are in key order: its output is deterministic.
// Step and Run may be called once between them; a second call returns
// [ErrRunCalled]. The caller must Close the Stepper, also after an error
// of a step.
func (a *App) Step(ctx context.Context) (_ *Stepper, recs []broker.Record, err error) {
	if !a.ran.CompareAndSwap(false, true) {
		return nil, nil, ErrRunCalled
	}
	s := &Stepper{a: a, globalTopics: map[string]bool{}}
	a.cfg.SkipOnError, a.cfg.OnSkip, a.cfg.MaxTaskIdle = true, s.fail, 0
	a.cfg.DeadLetter, a.deadLetter = false, ""
	// Steps wait for their broker calls; Close bounds its own as Run's
	// shutdown does (ShutdownTimeout).
	a.shut = newShutdown(context.WithoutCancel(ctx), a.cfg.ShutdownTimeout)
	defer func() {
		if err != nil {
			// Close closes what was opened and ends the shutdown's
			// goroutine, whatever step failed.
			err = fmt.Errorf("duality: app %q: %w", a.appID, errors.Join(err, s.Close()))
			recs = nil
		}
	}()
	topics, err := a.plan.ensureTopics(ctx, a.b, "")
	if err != nil {
		return nil, nil, err
	}
	if err := a.openState(topics); err != nil {
		return nil, nil, err
	}
	if len(a.plan.globals) > 0 {
		s.g, err = a.openGlobals(ctx, topics)
		if err != nil {
			return nil, nil, err
		}
		a.iq.setGlobals(s.g.stores)
		for _, gp := range a.plan.globals {
			s.globalTopics[gp.topic] = true
		}
	}
	var asg broker.Assignment
	for _, topic := range a.plan.sourceTopics {
		for p := range topics[topic] {
			asg.Partitions = append(asg.Partitions, broker.TopicPartition{Topic: topic, Partition: p})
		}
	}
	tasks := a.plan.tasksFor(asg)
	if err := a.resume(ctx, tasks); err != nil {
		return nil, nil, err
	}
	a.iq.assign(tasks, nil)
	a.m.tasks.Store(int64(len(tasks)))
	if _, err := a.resolveInstanceID(); err != nil {
		return nil, nil, err
	}
	slot, err := a.workerSlot(ctx, 0)
	if err != nil {
		return nil, nil, err
	}
	s.w = newWorker(a, &generation{asg: asg}, "", slot, topics, a.cfg.CacheMaxBytes)
	s.w.committed, s.w.keyOrder, s.w.untimed = s.log, true, true
	for _, t := range tasks {
		s.w.add(t)
	}
	if err := s.w.open(ctx); err != nil {
		return nil, nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err // open stopped during a restore
	}
	if recs, err = s.commit(ctx); err != nil {
		return nil, nil, err
	}
	return s, recs, nil
}

// fail is the Config.OnSkip of a Stepper: it keeps the step's first
// failure.
func (s *Stepper) fail(pe *ProcessingError) {
	if s.failed == nil {
		s.failed = pe
	}
}

// log is the worker's committed hook: it keeps the records of a commit.
func (s *Stepper) log(recs []broker.Record) {
	s.written = append(s.written, recs...)
	for i := range recs {
		s.global = s.global || s.globalTopics[recs[i].Topic]
	}
}

// errStepperClosed is returned by the calls of a closed Stepper.
var errStepperClosed = errors.New("duality: stepper closed")

// Process processes rec, a record of a topic the topology reads, already
// in the broker (its partition and offset set, as a fetch returns it):
// the task reading its partition processes it as Run's worker does,
// moving stream time and running the stream-time punctuations it makes
// due, then every task is flushed and committed. Records must be given
// in offset order per partition; offsets skipped are not processed. When
// the commit wrote to a global store's topic, the global stores catch up
// before Process returns.
//
// It returns the records the commit wrote, outputs and changelog records
// (their partitions and offsets set), and the first *ProcessingError of
// the record or of a punctuation: the failed one's store writes and
// output are dropped and the record counts as processed, as under
// SkipOnError. Other errors (a failed flush or commit) drop the step's
// uncommitted work.
func (s *Stepper) Process(ctx context.Context, rec broker.Record) ([]broker.Record, error) {
	if s.closed {
		return nil, errStepperClosed
	}
	ps := s.w.byTP[broker.TopicPartition{Topic: rec.Topic, Partition: rec.Partition}]
	if ps == nil {
		return nil, &broker.TopicError{Topic: rec.Topic, Partition: rec.Partition,
			Err: fmt.Errorf("no task of the topology reads it: %w", broker.ErrUnknownTopic)}
	}
	ps.buf, ps.bufFetch, ps.headOK, ps.fetch = []broker.Record{rec}, 0, false, rec.Offset+1
	if _, _, err := s.w.processReady(ctx, nil); err != nil {
		ps.buf, ps.headOK = nil, false
		return s.abort(err)
	}
	return s.commit(ctx)
}

// Tick runs what the clock (Config.Clock) makes due, as Run's worker
// does between fetches: the wall-clock punctuations that are due, and
// the idle advance of stream time when IdleStreamTimeAdvance is set. Then
// it commits. It returns like Process.
func (s *Stepper) Tick(ctx context.Context) ([]broker.Record, error) {
	if s.closed {
		return nil, errStepperClosed
	}
	if _, _, err := s.w.tick(ctx); err != nil {
		return s.abort(err)
	}
	return s.commit(ctx)
}

// EndOrder returns the sub-topology IDs in the groups and the order in
// which a bounded run (App.RunToEnd) advances them to the end of time:
// each group after every group that writes a topic it reads.
func (s *Stepper) EndOrder() [][]int { return s.a.plan.endOrder() }

// AdvanceToEnd moves the stream time of the tasks of the sub-topologies
// subs (IDs, a group of EndOrder) to the end of time, as a bounded run
// does once its input is processed: through the due times of their
// one-shot stream-time timers (a window's close, a join's unmatched
// record) to topology.MaxTimestamp, running the stream-time punctuations
// due at each. Then it commits. It returns like Process. A caller
// following a bounded run advances the groups in EndOrder's order and
// processes the records each group wrote to topics the topology reads
// before advancing the next.
func (s *Stepper) AdvanceToEnd(ctx context.Context, subs []int) ([]broker.Record, error) {
	if s.closed {
		return nil, errStepperClosed
	}
	set := make(map[int]bool, len(subs))
	for _, id := range subs {
		set[id] = true
	}
	if _, err := s.w.advanceToEnd(ctx, set); err != nil {
		return s.abort(err)
	}
	return s.commit(ctx)
}

// commit flushes and commits the work of the step, waits for the commit
// and returns what it wrote and the step's failure.
func (s *Stepper) commit(ctx context.Context) ([]broker.Record, error) {
	// Commits finish once started, as in Run; a generation of 0 is never
	// fenced.
	if _, err := s.w.commit(context.WithoutCancel(ctx), 0, nil, true); err != nil {
		return s.abort(err)
	}
	var err error
	if s.global {
		err = s.CatchUpGlobals(ctx)
	}
	if err == nil && s.failed != nil {
		err = s.failed
	}
	return s.done(), err
}

// abort ends a step that failed with err: it waits for the commit in
// flight and drops the uncommitted work.
func (s *Stepper) abort(err error) ([]broker.Record, error) {
	_, aerr := s.w.await()
	s.w.drop()
	return s.done(), errors.Join(err, aerr)
}

// done ends a step: it returns the records the step's commits wrote.
func (s *Stepper) done() []broker.Record {
	s.w.flushMetrics()
	recs := s.written
	s.written, s.global, s.failed = nil, false, nil
	return recs
}

// CatchUpGlobals brings the global stores up to the end of their topics,
// as of now: after a record is produced to a global store's topic, tasks
// see it once CatchUpGlobals returns.
func (s *Stepper) CatchUpGlobals(ctx context.Context) error {
	if s.closed {
		return errStepperClosed
	}
	if s.g == nil {
		return nil
	}
	if err := s.g.catchUp(ctx); err != nil {
		return err
	}
	return ctx.Err()
}

// Reads reports whether the topology reads topic (a broker name): tasks
// says a sub-topology reads it (Process takes its records), global that
// it feeds a global store (CatchUpGlobals reads its records).
func (s *Stepper) Reads(topic string) (tasks, global bool) {
	_, tasks = s.a.plan.bySource[topic]
	return tasks, s.globalTopics[topic]
}

// StreamTime returns the stream time (ms) of the task id, and false
// before it has processed a record or for a task that does not exist.
func (s *Stepper) StreamTime(id topology.TaskID) (int64, bool) {
	for _, t := range s.w.tasks {
		if t.id == id {
			return t.streamTime, t.streamTime != topology.NoTime
		}
	}
	return 0, false
}

// StorePartitions returns the partition count of the store name: one per
// task of the sub-topology that owns it, or 1 for a global store. It
// returns false for a store the topology does not declare.
func (s *Stepper) StorePartitions(name string) (int32, bool) {
	if s.a.iq.globalStore(name) != nil {
		return 1, true
	}
	for _, sp := range s.a.plan.subs {
		for _, st := range sp.stores {
			if st.name == name {
				return s.a.iq.partitionCount(name), true
			}
		}
	}
	return 0, false
}

// StoreGet returns a copy of key's committed value in partition p of the
// store name (partition 0 of a global store), and whether it is present.
// Every step commits, so it sees the writes of every step. Errors: an
// unknown store or partition (see StorePartitions), store.ErrClosed
// after Close.
func (s *Stepper) StoreGet(name string, p int32, key []byte) ([]byte, bool, error) {
	if s.closed {
		return nil, false, fmt.Errorf("store %s/%d: %w", name, p, store.ErrClosed)
	}
	if g := s.a.iq.globalStore(name); g != nil && p == 0 {
		v, ok, _, err := g.get(nil, key)
		return v, ok, err
	}
	st, err := s.a.iq.lookup(context.Background(), name, p) // every step's commit is written: no wait
	if err != nil {
		return nil, false, err
	}
	return st.Get(key)
}

// StoreRange returns a cursor over the committed pairs of partition p of
// the store name in key order, as StoreGet reads them. The caller closes
// it, before Close.
func (s *Stepper) StoreRange(name string, p int32) (store.Cursor, error) {
	if s.closed {
		return nil, fmt.Errorf("store %s/%d: %w", name, p, store.ErrClosed)
	}
	if g := s.a.iq.globalStore(name); g != nil && p == 0 {
		return g.rangeData(nil, nil), nil
	}
	st, err := s.a.iq.lookup(context.Background(), name, p) // every step's commit is written: no wait
	if err != nil {
		return nil, err
	}
	return st.Range(nil, nil), nil
}

// Close closes the tasks (their processors, then their stores: what the
// processors write while closing is not committed), the global stores
// and the state. It is idempotent.
func (s *Stepper) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	s.a.shut.start()
	defer s.a.shut.end()
	var errs []error
	if s.w != nil {
		_, err := s.w.await()
		s.w.flushMetrics()
		errs = append(errs, err, s.w.close())
	}
	s.a.m.tasks.Store(0)
	if s.g != nil {
		s.a.iq.setGlobals(nil)
		errs = append(errs, s.g.close())
	}
	errs = append(errs, s.a.closeSlots(), s.a.closeState())
	return errors.Join(errs...)
}
