package runtime

import (
	"log/slog"
	"math"
	"slices"
	"time"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/topology"
)

// task is one instance of a sub-topology for one partition number.
type task struct {
	id     topology.TaskID
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

	// The unit of work being run, for the items its steps emit as units
	// of their own (taskEnv.Item): rec is the record being processed and
	// punct the punctuation being run (neither: a flush). inItem says an
	// item is being emitted; itemErr is an item's failure under
	// FailOnError, which fails the unit it was emitted in. marks is
	// taskEnv.Item's scratch. Package dsl's Task keeps its own view of
	// the nesting (dsl.Task.Item): generation numbers of the units for
	// the steps' in-memory snapshots, which the runtime does not see;
	// this one serves what only the runtime does (undoing store writes
	// and output, naming the unit in errors) for any processor, also one
	// that calls Item from within an item, as the contract allows.
	rec     *broker.Record
	punct   topology.PunctuationType
	inItem  bool
	itemErr *ProcessingError
	marks   []storeMark
	// corrupt is set by the first read or write of the task's state
	// that met corruption (noteCorrupt); it ends the unit of work.
	corrupt *corruptState
	// m are the task's published metrics (taskmetrics.go), mc its
	// counts not published yet.
	m  *taskMetrics
	mc taskCounts
	// steps are the counts of the task's steps not published yet (see
	// topology.TaskEnv.StepCounters), nil when its sub-topology lists
	// no steps.
	steps []topology.StepCounts
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
	// bufFetch is the worker's fetch (worker.fetches) whose records buf
	// is a part of, 0 when buf is a slice of its own (see
	// worker.recycle).
	bufFetch uint64
	// headTS is the event time of buf[0] when headOK.
	headTS int64
	headOK bool
	// end is the partition's end offset as last listed (0: unknown);
	// listed is the worker's fetch count at that listing.
	end    int64
	listed uint64
	// stop is the offset at which a bounded run stops reading the
	// partition, its end when the run started (math.MaxInt64: never).
	// Once fetch reaches it the records below are buffered or processed,
	// and next moves to it when they are (caughtUp).
	stop int64
	// purge says the partition is of an internal topic the worker purges
	// (see RepartitionPurgeInterval); committed is the newest offset
	// committed for it (0: none known) and purged the offset its last
	// successful purge deleted the records below.
	purge             bool
	committed, purged int64
	// m is the partition's published position (taskmetrics.go).
	m *partMetrics
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

// beginRecord starts recording the changes of one input record (or
// punctuation) to the task's stores, so that skipRecord can undo them.
func (t *task) beginRecord() {
	for _, s := range t.stores {
		s.beginRecord()
	}
}

// skipRecord undoes the store writes of the record being processed.
func (t *task) skipRecord() {
	for _, s := range t.stores {
		s.skipRecord()
	}
}

// itemFailure returns the failure that ends the unit of work just run,
// whatever the unit returned: corrupt local state it read or wrote (see
// noteCorrupt), which the app heals by rebuilding the state; otherwise
// the failure, which it clears, of an item the unit emitted under
// FailOnError (see taskEnv.Item): the unit's error, which wraps it, is
// reported as it, since it names the item.
func (t *task) itemFailure() error {
	if t.corrupt != nil {
		return t.corrupt
	}
	pe := t.itemErr
	t.itemErr = nil
	if pe == nil {
		return nil
	}
	return pe
}

// due recomputes the earliest due times of t's punctuations and drops the
// canceled ones.
func (t *task) due() {
	t.nextStream, t.nextWall = math.MaxInt64, math.MaxInt64
	t.scheds = slices.DeleteFunc(t.scheds, func(s *schedule) bool { return s.canceled })
	for _, s := range t.scheds {
		if s.typ == topology.StreamTimePunctuation {
			t.nextStream = min(t.nextStream, s.next)
		} else {
			t.nextWall = min(t.nextWall, s.next)
		}
	}
}

// buffered reports whether t has fetched records not processed yet.
func (t *task) buffered() bool {
	for _, ps := range t.parts {
		if len(ps.buf) > 0 {
			return true
		}
	}
	return false
}
