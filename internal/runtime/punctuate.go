package runtime

import (
	"cmp"
	"context"
	"log/slog"
	"math"
	"slices"
	"time"

	"github.com/duality-streams/duality/internal/topology"
)

// schedule is one punctuation of a task (taskEnv.Schedule), or a one-shot
// stream-time timer (taskEnv.StreamTimer) when interval is 0.
type schedule struct {
	typ      topology.PunctuationType
	interval int64 // ms; 0: one-shot
	next     int64 // due time, ms (math.MaxInt64: never)
	f        topology.Punctuator
	canceled bool
}

// advance moves s past now: to its next due time, skipping the due times
// now has already passed (as Kafka Streams' PunctuationSchedule.next).
// A due time past math.MaxInt64 (a timestamp near the end of int64)
// saturates to math.MaxInt64, where the punctuation never fires again,
// instead of wrapping around to a negative time that fires at every record.
// A one-shot timer is disarmed: it fires again only once it is set again.
func (s *schedule) advance(now int64) {
	if s.interval == 0 {
		s.next = math.MaxInt64
		return
	}
	if now > math.MaxInt64-s.interval || s.next > math.MaxInt64-s.interval {
		s.next = math.MaxInt64
		return
	}
	next := s.next + s.interval
	if now >= next {
		next = s.next + ((now-s.next)/s.interval+1)*s.interval
	}
	s.next = next
}

// idleFromRestore reports whether a task whose stream time was restored
// and which has processed no input since may start its idle advance: a
// fetch has returned since the task was created, nothing is buffered, and
// every partition is caught up with its end offset (listed at most once
// per fetch).
func (w *worker) idleFromRestore(ctx context.Context, t *task) bool {
	if w.fetches <= t.restoredAt || t.buffered() {
		return false
	}
	for _, ps := range t.parts {
		if ps.listed != w.fetches {
			offs, err := w.app.b.ListOffsets(ctx, ps.tp.Topic, ps.tp.Partition)
			if err != nil {
				t.log.Debug("list offsets failed: the idle advance waits", slog.String("topic", ps.tp.Topic),
					slog.Int("partition", int(ps.tp.Partition)), slog.Any("error", err))
				return false
			}
			ps.end, ps.listed = offs.Latest, w.fetches
		}
		if ps.end > ps.fetch {
			return false
		}
	}
	return true
}

// punctuate runs t's punctuations of type typ that are due at now, in
// order of due time (then of scheduling). Each runs like a record: its
// output and store writes are committed with the worker's next commit,
// and under SkipOnError a failing one leaves nothing behind.
func (w *worker) punctuate(ctx context.Context, t *task, typ topology.PunctuationType, now int64) (fenced bool, err error) {
	// t.dueBuf is reused: a stream-time punctuation with a short
	// interval fires at almost every record.
	due := t.dueBuf[:0]
	for _, s := range t.scheds {
		if s.typ == typ && s.next <= now {
			due = append(due, s)
		}
	}
	if len(due) > 1 {
		slices.SortStableFunc(due, func(a, b *schedule) int { return cmp.Compare(a.next, b.next) })
	}
	defer func() {
		clear(due)
		t.dueBuf = due[:0]
	}()
	for _, s := range due {
		if s.canceled || s.next > now {
			continue // canceled or re-armed later by an earlier punctuator
		}
		s.advance(now)
		mark := len(w.out)
		if len(t.stores) > 0 {
			t.beginRecord()
		}
		t.proc.Begin()
		t.punct = typ
		perr := s.f(ctx, now)
		t.punct = 0
		if pe := t.itemFailure(); pe != nil {
			t.due()
			return false, pe
		}
		if perr != nil {
			pe := &ProcessingError{Task: t.id, Partition: -1, Offset: -1, Punctuation: typ.String(), Err: perr}
			if !w.app.cfg.SkipOnError {
				t.due()
				return false, pe
			}
			w.skip(t, mark, pe)
		} else {
			w.punctuated++
			t.mc.puncts++
		}
		if fenced, err := w.maybeCommit(ctx); err != nil || fenced {
			t.due()
			return fenced, err
		}
	}
	t.due()
	return false, nil
}

// tick runs what the clock makes due: wall-clock punctuations, and the
// idle advance of stream time with the stream-time punctuations it makes
// due. It returns how long until the next of them is due (at most an
// hour).
func (w *worker) tick(ctx context.Context) (next time.Duration, fenced bool, err error) {
	cfg := &w.app.cfg
	nowT := cfg.Clock()
	now := nowT.UnixMilli()
	next = time.Hour
	for _, t := range w.tasks {
		if t.proc == nil {
			continue
		}
		if t.nextWall <= now {
			if fenced, err := w.punctuate(ctx, t, topology.WallClockPunctuation, now); err != nil || fenced {
				return 0, fenced, err
			}
		}
		if t.nextWall != math.MaxInt64 {
			next = min(next, time.Duration(t.nextWall-now)*time.Millisecond)
		}
		if cfg.IdleStreamTimeAdvance > 0 && t.restored && t.lastInput.IsZero() && w.idleFromRestore(ctx, t) {
			t.lastInput, t.inputTime, t.restored = nowT, t.streamTime, false
		}
		if cfg.IdleStreamTimeAdvance <= 0 || t.lastInput.IsZero() || t.streamTime == topology.NoTime || t.buffered() {
			continue
		}
		// Idle: stream time follows the clock, cfg.IdleStreamTimeAdvance behind
		// the last input.
		if idle := nowT.Sub(t.lastInput) - cfg.IdleStreamTimeAdvance; idle > 0 {
			if st := t.inputTime + idle.Milliseconds(); st > t.streamTime {
				t.streamTime = st
			}
		}
		// Also when stream time did not move: a timer (StreamTimer) set
		// at or below it since the last record or advance is due.
		if t.streamTime >= t.nextStream {
			if fenced, err := w.punctuate(ctx, t, topology.StreamTimePunctuation, t.streamTime); err != nil || fenced {
				return 0, fenced, err
			}
		}
		if t.nextStream != math.MaxInt64 {
			// When the advance reaches the next stream-time punctuation.
			// The gap is capped so the Duration does not overflow.
			gap := min(t.nextStream-t.inputTime, int64(math.MaxInt64/time.Millisecond)/2)
			at := t.lastInput.Add(cfg.IdleStreamTimeAdvance + time.Duration(gap)*time.Millisecond)
			next = min(next, at.Sub(nowT))
		}
	}
	return max(next, 0), false, nil
}
