package window

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/internal/dsl"
	"github.com/duality-streams/duality/internal/topology"
	"github.com/duality-streams/duality/internal/windowstore"
	"github.com/duality-streams/duality/stream"
)

// stepTimer is the stream-time timer of a windowed step
// (topology.TaskEnv.StreamTimer). With WithTaskStreamTime (follow) the
// step arms it, after every record and every firing, at the next stream
// time at which it has something to do (a final result, an unmatched join
// result, an expiry), so that an idle task whose stream time the runtime
// advances punctuates only then. Without, the step's stream time follows
// its own records, and the timer is armed at the end of time
// (topology.MaxTimestamp), which only a bounded run's end advance
// (duality.App.RunToEnd) reaches: the step then closes every window.
type stepTimer struct {
	env    topology.TaskEnv
	follow bool
	set    func(int64)
	cancel func()
	// armed is the due time set last (math.MaxInt64: disarmed).
	armed int64
}

// newStepTimer registers f as t's one-shot stream-time punctuation,
// disarmed, and cancels it when the task closes. A step registers it
// before instantiating its children: timers due at the same stream time
// fire in the order of registration, so the results an upstream step
// emits when it fires reach a downstream step before that one fires.
func newStepTimer(t *dsl.Task, follow bool, f topology.Punctuator) (*stepTimer, error) {
	tm := &stepTimer{env: t.Env(), follow: follow, armed: math.MaxInt64}
	set, cancel, err := tm.env.StreamTimer(func(ctx context.Context, ts int64) error {
		tm.armed = math.MaxInt64 // the runtime disarmed it
		return f(ctx, ts)
	})
	if err != nil {
		return nil, err
	}
	tm.set, tm.cancel = set, cancel
	t.OnClose(func() error { cancel(); return nil })
	return tm, nil
}

// restoreStreamTime raises the task's stream time to st, the step's
// persisted stream time (topology.TaskEnv.RestoreStreamTime): after a
// restart the idle advance then closes windows although no record
// arrives.
func (tm *stepTimer) restoreStreamTime(st int64) { tm.env.RestoreStreamTime(st) }

// arm sets the timer to fire when the task's stream time reaches due
// (math.MaxInt64: never).
func (tm *stepTimer) arm(due int64) {
	if due != tm.armed {
		tm.armed = due
		tm.set(due)
	}
}

// endDue returns the due time to arm for a step that does not follow the
// task's stream time, at stream time st: the end of time, unless the step
// has no stream time (nor state) or is there already.
func endDue(st int64) int64 {
	if st == noTime || st >= topology.MaxTimestamp {
		return math.MaxInt64
	}
	return topology.MaxTimestamp
}

// timerDue returns the due time to arm for a step at stream time st whose next
// work is at next: never before st + 1, so a firing that finds nothing to
// do does not fire again until stream time moves; nothing while the step
// has no stream time (it has no state either).
func timerDue(st, next int64) int64 {
	if st == noTime {
		return math.MaxInt64
	}
	return max(next, st+1)
}

// expiryDue returns the stream time at which expire (of a window or
// join store: floor((st - ret) / seg) segments are deleted) deletes the
// segment minSeg, the oldest holding data (math.MaxInt64: none).
func expiryDue(minSeg, seg, ret int64) int64 {
	if minSeg == math.MaxInt64 || minSeg+1 > (math.MaxInt64-ret)/seg {
		return math.MaxInt64
	}
	return (minSeg+1)*seg + ret
}

// firstTime returns the time that follows the space byte in the first key
// of kv at or after from, within from's space (from[0]): the segment of
// the oldest stored window or record (space 0x01), the close time of the
// next final or unmatched result (space 0x02). It is math.MaxInt64 when
// the space holds no key from there. One iterator seek.
func firstTime(kv topology.KV, from []byte) (int64, error) {
	seq, errf := kv.Range(from, []byte{from[0] + 1})
	t := int64(math.MaxInt64)
	bad := -1 // length of a key too short to hold a time
	for key := range seq {
		if len(key) < 9 {
			bad = len(key)
		} else {
			t = windowstore.ReadTime(key[1:9])
		}
		break
	}
	if err := errf(); err != nil {
		return 0, fmt.Errorf("range: %w", err)
	}
	if bad >= 0 {
		return 0, fmt.Errorf("%w: key of %d bytes in space %#x", codec.ErrInvalid, bad, from[0])
	}
	return t, nil
}

// spaceFrom returns the first key of space from time t on (noTime: the
// whole space).
func spaceFrom(space byte, t int64) []byte {
	if t == noTime {
		return []byte{space}
	}
	return windowstore.AppendTime([]byte{space}, t)
}

// fire is the timer's punctuator of a windowed aggregation: it moves the
// step to the task's stream time ts (punctuate) and arms the timer again.
func (p *proc[K, V, A]) fire(ctx context.Context, ts int64) error {
	p.begin() // so that a failure here is skipped (and re-armed) by skip
	if err := p.punctuate(ctx, ts); err != nil {
		return err
	}
	if err := p.rearm(); err != nil {
		return p.nodeErr(&stream.RecordContext{Timestamp: time.UnixMilli(ts)}, err)
	}
	return nil
}

// rearm arms p's timer at the next stream time at which p has work
// (WithTaskStreamTime): the close time of the next final result
// (nextClose, found with one seek of the close index when unknown) and
// the expiry of the oldest stored window's segment (minSeg, found with one
// seek when unknown or expired; expire deletes it at the first advance
// after the one that reaches its expiry, the timer then being armed at
// the next millisecond). It runs after every record and firing,
// so p punctuates only when something is due. Without the option, p's
// timer waits for the end of time (endDue).
func (p *proc[K, V, A]) rearm() error {
	if !p.timer.follow {
		p.timer.arm(endDue(p.st))
		return nil
	}
	if p.st == noTime {
		p.timer.arm(math.MaxInt64)
		return nil
	}
	next := int64(math.MaxInt64)
	if p.final {
		if p.nextClose == noTime {
			// The index holds no entry at or below closedUpTo.
			from := []byte{windowstore.SpaceClose}
			if p.closedUpTo != noTime {
				from = windowstore.AppendTime(from, p.closedUpTo+1)
			}
			c, err := firstTime(p.kv, from)
			if err != nil {
				return p.storeErr("close index", err)
			}
			p.nextClose = c
		}
		next = p.nextClose
	}
	if p.minSeg == noTime || (p.lowSeg != noTime && p.minSeg < p.lowSeg) {
		s, err := firstTime(p.kv, spaceFrom(windowstore.SpaceWindow, p.lowSeg))
		if err != nil {
			return p.storeErr("windows", err)
		}
		p.minSeg = s
	}
	p.timer.arm(timerDue(p.st, min(next, expiryDue(p.minSeg, p.seg, p.ret))))
	return nil
}

// resetTimer re-arms p's timer after skip restored p's state: the store
// writes of the unit were undone, so what rearm knew of the stored
// windows is stale.
func (p *proc[K, V, A]) resetTimer() {
	p.minSeg = noTime
	if err := p.rearm(); err != nil {
		p.timer.arm(timerDue(p.st, p.st+1)) // early: the firing finds out
	}
}

// fire is the timer's punctuator of a join: it moves the join to the
// task's stream time ts (punctuate; n is the side node that runs it) and
// arms the timer again.
func (p *joinProc[K, V1, V2, VR]) fire(ctx context.Context, n *dsl.Node, ts int64) error {
	p.begin() // so that a failure here is skipped (and re-armed) by skip
	if err := p.punctuate(ctx, n, ts); err != nil {
		return err
	}
	if err := p.rearm(); err != nil {
		return &stream.NodeError{Node: n.Name, Err: err}
	}
	return nil
}

// rearm arms p's timer at the next stream time at which p has work
// (WithTaskStreamTime): the close time of the next unmatched record of a
// left or outer join (nextUnmatched, found with one seek when unknown or
// passed) and the expiry of the oldest stored record's segment (minSeg,
// found with one seek when unknown or expired). It runs after every
// record and firing, so the join punctuates only when something is due.
// Without the option, p's timer waits for the end of time (endDue).
func (p *joinProc[K, V1, V2, VR]) rearm() error {
	if !p.timer.follow {
		p.timer.arm(endDue(p.st))
		return nil
	}
	if p.st == noTime {
		p.timer.arm(math.MaxInt64)
		return nil
	}
	next := int64(math.MaxInt64)
	if p.jn.kind != innerJoin {
		if p.nextUnmatched == noTime || p.nextUnmatched <= p.st {
			// The entries at or below closedUpTo were emitted.
			from := []byte{windowstore.SpaceClose}
			if p.closedUpTo != noTime {
				from = windowstore.AppendTime(from, p.closedUpTo+1)
			}
			c, err := firstTime(p.kv, from)
			if err != nil {
				return fmt.Errorf("store %q: unmatched index: %w", p.jn.store, err)
			}
			p.nextUnmatched = c
		}
		next = p.nextUnmatched
	}
	if p.minSeg == noTime || (p.lowSeg != noTime && p.minSeg < p.lowSeg) {
		s, err := firstTime(p.kv, spaceFrom(windowstore.SpaceWindow, p.lowSeg))
		if err != nil {
			return fmt.Errorf("store %q: records: %w", p.jn.store, err)
		}
		p.minSeg = s
	}
	p.timer.arm(timerDue(p.st, min(next, expiryDue(p.minSeg, p.seg, p.ret))))
	return nil
}

// resetTimer re-arms p's timer after skip restored p's state: the store
// writes of the unit were undone, so what rearm knew of the store is
// stale.
func (p *joinProc[K, V1, V2, VR]) resetTimer() {
	p.minSeg, p.nextUnmatched = noTime, noTime
	if err := p.rearm(); err != nil {
		p.timer.arm(timerDue(p.st, p.st+1)) // early: the firing finds out
	}
}
