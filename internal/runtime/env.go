package runtime

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

// taskEnv is a task's view of the runtime: it implements
// topology.TaskEnv, all of it in this file. It is used by the task's
// worker goroutine only.
type taskEnv struct {
	w *worker
	t *task
}

var _ topology.TaskEnv = (*taskEnv)(nil)

func (e *taskEnv) AppID() string           { return e.w.app.appID }
func (e *taskEnv) TaskID() topology.TaskID { return e.t.id }
func (e *taskEnv) Logger() *slog.Logger    { return e.t.log }
func (e *taskEnv) Now() time.Time          { return e.w.app.cfg.Clock() }

func (e *taskEnv) TopicName(logical string, internal bool) string {
	if internal {
		return internalName(e.w.app.appID, logical)
	}
	return logical
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
	if len(w.out) == cap(w.out) {
		w.growOut()
	}
	w.out = append(w.out, rec)
	w.owner = append(w.owner, e.t.idx)
	return nil
}

// Store returns the task's partition of the store name.
func (e *taskEnv) Store(name string) (topology.KV, error) {
	for _, s := range e.t.stores {
		if s.name == name {
			return s, nil
		}
	}
	return nil, fmt.Errorf("duality: task %s has no store %q: %w", e.t.id, name, topology.ErrUnknownStore)
}

// GlobalStore returns a reader of the global store name.
func (e *taskEnv) GlobalStore(name string) (topology.GlobalKV, error) {
	if gs := e.w.app.iq.globalStore(name); gs != nil {
		return &globalKV{g: gs, t: e.t}, nil
	}
	return nil, fmt.Errorf("duality: no global store %q: %w", name, topology.ErrUnknownStore)
}

// StreamTime returns the task's stream time.
func (e *taskEnv) StreamTime() int64 { return e.t.streamTime }

// errInvalidSchedule is matched by the errors of taskEnv.Schedule.
var errInvalidSchedule = errors.New("duality: invalid punctuation schedule")

// Schedule registers a punctuation of the task.
func (e *taskEnv) Schedule(interval time.Duration, typ topology.PunctuationType, f topology.Punctuator) (func(), error) {
	switch {
	case interval < time.Millisecond:
		return nil, fmt.Errorf("%w: interval %v: must be at least 1ms", errInvalidSchedule, interval)
	case f == nil:
		return nil, fmt.Errorf("%w: nil punctuator", errInvalidSchedule)
	case typ != topology.StreamTimePunctuation && typ != topology.WallClockPunctuation:
		return nil, fmt.Errorf("%w: unknown punctuation type %d", errInvalidSchedule, typ)
	}
	t := e.t
	s := &schedule{typ: typ, interval: interval.Milliseconds(), f: f}
	if typ == topology.WallClockPunctuation {
		s.next = e.w.app.cfg.Clock().UnixMilli() + s.interval
		e.w.timed = true
	}
	// Stream-time punctuations start at 0: the first record with a
	// non-negative timestamp fires them (as in Kafka Streams).
	t.scheds = append(t.scheds, s)
	t.due()
	return func() {
		if !s.canceled {
			s.canceled = true
			t.due()
		}
	}, nil
}

// StreamTimer registers a one-shot stream-time punctuation of the task,
// disarmed. It is a schedule without interval, so it fires, commits and
// is skipped like the other punctuations, and task.due and the idle
// advance's wake-up (tick) see its due time.
func (e *taskEnv) StreamTimer(f topology.Punctuator) (set func(int64), cancel func(), err error) {
	if f == nil {
		return nil, nil, fmt.Errorf("%w: nil punctuator", errInvalidSchedule)
	}
	t := e.t
	s := &schedule{typ: topology.StreamTimePunctuation, next: math.MaxInt64, f: f}
	t.scheds = append(t.scheds, s)
	set = func(due int64) {
		if s.canceled || due == s.next {
			return
		}
		old := s.next
		s.next = due
		switch {
		case due <= t.nextStream:
			t.nextStream = due
		case old == t.nextStream:
			t.due() // it was the earliest
		}
	}
	cancel = func() {
		if !s.canceled {
			s.canceled = true
			t.due()
		}
	}
	return set, cancel, nil
}

// RestoreStreamTime raises the task's stream time to a value a step
// persisted. A task that has processed no input yet starts its idle
// advance from the largest restored time, but only once it has caught up
// with its partitions (see idleFromRestore): a backlog waiting in them,
// or stores of other tasks still restoring, must not count as idleness.
func (e *taskEnv) RestoreStreamTime(ts int64) {
	t := e.t
	t.streamTime = max(t.streamTime, ts)
	if t.lastInput.IsZero() {
		t.restored, t.restoredAt = true, e.w.fetches
	}
}

// StepCounters returns the counters of the task's steps, which the
// worker publishes after every fetched batch (task.publish).
func (e *taskEnv) StepCounters() []topology.StepCounts { return e.t.steps }

// CountLate counts a record a windowed step dropped as late
// (Metrics.LateRecordsDropped).
func (e *taskEnv) CountLate() {
	e.w.app.m.late.Add(1)
	if m := e.t.m; m != nil {
		m.late.Add(1)
	}
}

// Item runs it as a unit of work of its own under the app's error policy
// (topology.TaskEnv.Item): in a flush, a unit like a record; in a record
// or punctuation, a unit nested in it, whose store writes and output are
// marked so that they can be undone alone.
func (e *taskEnv) Item(ctx context.Context, it topology.Item) error {
	w, t := e.w, e.t
	if t.inItem {
		return it.Emit(ctx) // nested in an item: one with it
	}
	nested := t.rec != nil || t.punct != 0
	mark := len(w.out)
	t.marks = t.marks[:0]
	for _, s := range t.stores {
		if !nested {
			s.beginRecord()
		}
		t.marks = append(t.marks, s.mark())
	}
	t.inItem = true
	err := it.Emit(ctx)
	t.inItem = false
	if err == nil {
		return nil
	}
	pe := &ProcessingError{Task: t.id, Partition: -1, Offset: -1, Step: it.Step(), Item: it.String(), Err: err}
	switch {
	case t.rec != nil:
		pe.Topic, pe.Partition, pe.Offset = t.rec.Topic, t.rec.Partition, t.rec.Offset
	case t.punct != 0:
		pe.Punctuation = t.punct.String()
	default:
		pe.Flush = true
	}
	if !w.app.cfg.SkipOnError {
		t.itemErr = pe
		return pe
	}
	for i, s := range t.stores {
		s.undoTo(t.marks[i])
	}
	t.proc.Skip() // the item's in-memory effects
	clear(w.out[mark:])
	w.out, w.owner = w.out[:mark], w.owner[:mark]
	w.itemsSkipped++
	t.log.Warn("skipping an item after processing error", slog.String("step", pe.Step), slog.String("item", pe.Item),
		slog.String("topic", pe.Topic), slog.Int("partition", int(pe.Partition)), slog.Int64("offset", pe.Offset),
		slog.Bool("flush", pe.Flush), slog.String("punctuation", pe.Punctuation), slog.Any("error", pe.Err))
	if cb := w.app.cfg.OnSkip; cb != nil {
		cb(pe)
	}
	return nil
}
