package streamtest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/topology"
)

// schedule is a punctuation of a task (taskEnv.Schedule), or a one-shot
// stream-time timer (taskEnv.StreamTimer) when interval is 0.
type schedule struct {
	typ      topology.PunctuationType
	interval int64 // ms; 0: one-shot
	next     int64 // due time, ms (math.MaxInt64: never)
	f        topology.Punctuator
	canceled bool
}

// errInvalidSchedule is matched by the errors of taskEnv.Schedule.
var errInvalidSchedule = errors.New("streamtest: invalid punctuation schedule")

// StreamTime returns the task's stream time.
func (e *taskEnv) StreamTime() int64 { return e.streamTime }

// RestoreStreamTime raises the task's stream time to ts, a step's
// persisted stream time, as the runtime does. A driver's stores start
// empty, so a step has none to restore when its task is created.
func (e *taskEnv) RestoreStreamTime(ts int64) { e.streamTime = max(e.streamTime, ts) }

// CountLate does nothing: the driver keeps no app-wide metrics
// (window.Stats counts a step's late records).
func (e *taskEnv) CountLate() {}

// Schedule registers a punctuation of the task, with the runtime's
// semantics.
func (e *taskEnv) Schedule(interval time.Duration, typ topology.PunctuationType, f topology.Punctuator) (func(), error) {
	switch {
	case interval < time.Millisecond:
		return nil, fmt.Errorf("%w: interval %v: must be at least 1ms", errInvalidSchedule, interval)
	case f == nil:
		return nil, fmt.Errorf("%w: nil punctuator", errInvalidSchedule)
	case typ != topology.StreamTimePunctuation && typ != topology.WallClockPunctuation:
		return nil, fmt.Errorf("%w: unknown punctuation type %d", errInvalidSchedule, typ)
	}
	s := &schedule{typ: typ, interval: interval.Milliseconds(), f: f}
	if typ == topology.WallClockPunctuation {
		s.next = e.d.now.UnixMilli() + s.interval
	}
	e.scheds = append(e.scheds, s)
	return func() { s.canceled = true }, nil
}

// StreamTimer registers a one-shot stream-time punctuation of the task,
// disarmed, with the runtime's semantics.
func (e *taskEnv) StreamTimer(f topology.Punctuator) (set func(int64), cancel func(), err error) {
	if f == nil {
		return nil, nil, fmt.Errorf("%w: nil punctuator", errInvalidSchedule)
	}
	s := &schedule{typ: topology.StreamTimePunctuation, next: math.MaxInt64, f: f}
	e.scheds = append(e.scheds, s)
	set = func(due int64) {
		if !s.canceled {
			s.next = due
		}
	}
	return set, func() { s.canceled = true }, nil
}

// punctuate runs the task's punctuations of type typ due at now, in order
// of due time, then of scheduling; a clock that passed several due times
// fires each once (Kafka Streams' PunctuationSchedule).
func (e *taskEnv) punctuate(ctx context.Context, typ topology.PunctuationType, now int64) error {
	e.scheds = slices.DeleteFunc(e.scheds, func(s *schedule) bool { return s.canceled })
	var due []*schedule
	for _, s := range e.scheds {
		if s.typ == typ && s.next <= now {
			due = append(due, s)
		}
	}
	slices.SortStableFunc(due, func(a, b *schedule) int {
		switch {
		case a.next < b.next:
			return -1
		case a.next > b.next:
			return 1
		}
		return 0
	})
	for _, s := range due {
		if s.canceled || s.next > now {
			continue // canceled or re-armed later by an earlier punctuator
		}
		if s.interval == 0 {
			s.next = math.MaxInt64 // one-shot: fires again once set again
			if err := s.f(ctx, now); err != nil {
				return err
			}
			continue
		}
		next := s.next + s.interval
		if now >= next {
			next = s.next + ((now-s.next)/s.interval+1)*s.interval
		}
		s.next = next
		if err := s.f(ctx, now); err != nil {
			return err
		}
	}
	return nil
}

// StreamTime returns the stream time of the task of sub-topology sub and
// partition p: the largest timestamp of the records it has processed. ok
// is false before its first record or for an unknown task.
func (d *Driver) StreamTime(sub int, p int32) (t time.Time, ok bool) {
	if sub < 0 || sub >= len(d.tasks) || p < 0 || int(p) >= len(d.tasks[sub]) {
		return time.Time{}, false
	}
	st := d.tasks[sub][p].env.streamTime
	if st == topology.NoTime {
		return time.Time{}, false
	}
	return time.UnixMilli(st).UTC(), true
}

// AdvanceWallClock moves the driver's clock forward by dt and runs the
// wall-clock punctuations that are due, task by task (sub-topology, then
// partition), each task's as one commit; then the records they wrote to
// topics the topology reads are processed, as after a pipe (Kafka
// Streams' TopologyTestDriver.advanceWallClockTime). A punctuation that
// several due times passed runs once. It returns the first error (a
// punctuator's, usually a *stream.NodeError, whose state writes are
// undone), ErrClosed on a closed driver, or ctx's error. dt must not be
// negative.
func (d *Driver) AdvanceWallClock(ctx context.Context, dt time.Duration) error {
	if d.closed {
		return ErrClosed
	}
	if dt < 0 {
		return fmt.Errorf("streamtest: AdvanceWallClock(%v): must not be negative", dt)
	}
	d.now = d.now.Add(dt)
	now := d.now.UnixMilli()
	for _, tasks := range d.tasks {
		for _, t := range tasks {
			if !t.env.hasDue(topology.WallClockPunctuation, now) {
				continue
			}
			t.begin()
			if err := t.env.punctuate(ctx, topology.WallClockPunctuation, now); err != nil {
				t.env.discardStores()
				t.skip()
				return err
			}
			if err := t.commit(ctx); err != nil {
				return err
			}
		}
	}
	return d.drain(ctx)
}

// hasDue reports whether a punctuation of type typ is due at now.
func (e *taskEnv) hasDue(typ topology.PunctuationType, now int64) bool {
	for _, s := range e.scheds {
		if !s.canceled && s.typ == typ && s.next <= now {
			return true
		}
	}
	return false
}

// process runs rec through the task: its stream time moves to rec's
// event time (the source's stream.WithTimestamp extractor's, else the
// record's timestamp), the stream-time punctuations that become due run after it,
// and then the task commits. A failure undoes the task's state writes
// and its stream-time move.
func (t task) process(ctx context.Context, rec *broker.Record) error {
	e := t.env
	st := e.streamTime
	ts := rec.Timestamp.UnixMilli()
	if ets, ok := t.proc.Timestamp(rec); ok {
		ts = ets
	}
	if ts > st {
		e.streamTime = ts
	}
	t.begin()
	err := t.proc.Process(ctx, rec)
	// Also when stream time did not move: a timer (StreamTimer) set at or
	// below it is due, as in the runtime.
	if err == nil && e.streamTime != topology.NoTime && e.hasDue(topology.StreamTimePunctuation, e.streamTime) {
		err = e.punctuate(ctx, topology.StreamTimePunctuation, e.streamTime)
	}
	if err != nil {
		e.streamTime = st
		e.discardStores()
		t.skip()
		return err
	}
	return t.commit(ctx)
}

// commit flushes the task (as the runtime does before a commit), then
// logs and applies its state writes.
func (t task) commit(ctx context.Context) error {
	if err := t.proc.Flush(ctx); err != nil {
		t.env.discardStores()
		return fmt.Errorf("streamtest: task %d_%d: flush: %w", t.env.id.SubTopology, t.env.id.Partition, err)
	}
	return t.env.commitStores()
}

// begin tells the task's processor that a unit of work starts: a piped
// record with the punctuations it makes due, or a wall-clock advance
// (topology.Processor.Begin).
func (t task) begin() { t.proc.Begin() }

// skip tells the task's processor that the unit of work begun last failed
// and its state writes were discarded (topology.Processor.Skip).
func (t task) skip() { t.proc.Skip() }
