package dsl

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/topology"
)

// SourceFunc is the per-task behaviour of a source node: it decodes one
// input record and pushes it through the node's children. rec.Topic is the
// broker topic name.
type SourceFunc func(ctx context.Context, rec *broker.Record) error

// Task is one instantiation of a sub-topology. Node Instantiate functions
// get it to reach their children, the task's environment and its close
// hooks. It is used by one goroutine at a time.
type Task struct {
	env      topology.TaskEnv
	children [][]*Node // snapshot taken by Build, by node ID
	inst     []any
	busy     []bool
	closers  []func() error
	flushers []func(context.Context) error
	stampers map[*Node]func(*broker.Record) (time.Time, bool)
	skippers []func()
	// gen numbers the units of work begun; outer is the record,
	// punctuation or flushed item being run, inner the item nested in it
	// (0: none). flushing says the runtime is in Flush; inItem that an
	// item is being emitted.
	gen, outer, inner uint64
	flushing, inItem  bool

	// Current is the node running user code, set by node behaviours
	// before they call user functions or codecs; sources read it to name
	// the node when they recover a panic.
	Current *Node

	// counts are the counters of the sub-topology's steps, from the
	// runtime (nil: it counts nothing); stepOf gives a node's index in
	// counts by node ID. spare takes the counts nobody reads.
	counts []topology.StepCounts
	stepOf []int
	spare  uint64
}

// EdgeCounters returns the counters a node increments each time it passes
// a record to its child c: c's records in, and n's records out. A node
// passes each record to all its children (so only its first child's edge
// counts it out) unless it routes (Node.Routes: each edge counts). ok is
// false when the runtime counts nothing: then the edge needs no counting.
// Nodes that reach their children with [Children] get counted edges; the
// others wrap each child's function with a counting one themselves.
func (t *Task) EdgeCounters(n, c *Node) (in, out *uint64, ok bool) {
	if t.counts == nil || n.ID >= len(t.stepOf) || c.ID >= len(t.stepOf) {
		return nil, nil, false
	}
	in, out = &t.counts[t.stepOf[c.ID]].In, &t.spare
	if n.Routes || (len(t.children[n.ID]) > 0 && t.children[n.ID][0] == c) {
		out = &t.counts[t.stepOf[n.ID]].Out
	}
	return in, out, true
}

// CountLate counts one record n dropped as late: for the step's metrics
// and the app's (topology.TaskEnv.CountLate).
func (t *Task) CountLate(n *Node) {
	if t.counts != nil && n.ID < len(t.stepOf) {
		t.counts[t.stepOf[n.ID]].Late++
	}
	t.env.CountLate()
}

// CountRecords returns f, the input function of a child step taking
// records of the shape (ctx, record context, key, value), counting each
// call in in and out (see [Task.EdgeCounters]); the count argument of
// [Children] for such steps.
func CountRecords[R, K, V any](f func(context.Context, R, K, V) error, in, out *uint64) func(context.Context, R, K, V) error {
	return func(ctx context.Context, rc R, k K, v V) error {
		*in++
		*out++
		return f(ctx, rc, k, v)
	}
}

// Env returns the task's environment.
func (t *Task) Env() topology.TaskEnv { return t.env }

// OnClose registers f to run when the task closes, after hooks registered
// later (reverse order). Nodes instantiate their children before
// registering, so upstream nodes close first.
func (t *Task) OnClose(f func() error) { t.closers = append(t.closers, f) }

// OnFlush registers f to run before every commit of the task. Hooks run
// in reverse registration order: nodes instantiate their children before
// registering, so upstream nodes flush first, and what an upstream hook
// emits reaches a downstream node before that node flushes. Stateful
// nodes write their caches out here, each cached item through
// [Task.Item], so that each is a unit of work under the error policy.
func (t *Task) OnFlush(f func(context.Context) error) { t.flushers = append(t.flushers, f) }

// OnSkip registers f to run when the runtime discards the unit of work
// last begun, which failed (topology.Processor.Skip): a record, a
// punctuation, or an item (see [Task.Item]). f restores the node's
// in-memory state to what it was when that unit began. Nodes keep that
// state with [Snapshots].
func (t *Task) OnSkip(f func()) { t.skippers = append(t.skippers, f) }

// Gen returns the generation of the unit of work being run (the item,
// inside one): it changes each time a unit begins.
func (t *Task) Gen() uint64 {
	if t.inner != 0 {
		return t.inner
	}
	return t.outer
}

// Item emits it as a unit of work of its own under the app's error policy
// (topology.TaskEnv.Item): a node emits through Item what it emits on its
// own rather than for the record being processed (a held change, a
// cached update, a final result), so that an item that fails downstream
// fails alone and is not emitted again. In a flush the item is a unit
// like a record; in a record or punctuation it is nested in that unit;
// inside another item it is part of that item. Under the skip policy a
// failed item's effects are undone ([Task.OnSkip] hooks see the item as
// the unit skipped) and Item returns nil; otherwise it returns the
// failure, which the node must return. it.Emit must recover the panics of
// the steps it runs, with [Task.RecoverStep], as sources do.
func (t *Task) Item(ctx context.Context, it topology.Item) error {
	if t.inItem {
		return it.Emit(ctx)
	}
	t.gen++
	if t.flushing {
		t.outer, t.inner = t.gen, 0
	} else {
		t.inner = t.gen
	}
	t.inItem = true
	err := t.env.Item(ctx, it)
	t.inItem, t.inner = false, 0
	return err
}

// RecoverStep turns a panic of the steps a node runs into the node's
// error: a *NodeError naming the step that panicked (t.Current, or n
// when no step has set it) and the input record at topic, partition and
// offset, wrapping a *PanicError, stored in *errp. Nodes that run steps
// below them on their own (sources, and what a node emits through
// [Task.Item]) defer it, so that a panic fails the record or item and not
// the process:
//
//	defer t.RecoverStep(&err, n, rec.Topic, rec.Partition, rec.Offset)
//
// It must be the deferred call itself (recover works only there).
func (t *Task) RecoverStep(errp *error, n *Node, topic string, partition int32, offset int64) {
	r := recover()
	if r == nil {
		return
	}
	cur := t.Current
	if cur == nil {
		cur = n
	}
	*errp = &NodeError{Node: cur.Name, Topic: topic, Partition: partition, Offset: offset,
		Err: &PanicError{Value: r, Stack: debug.Stack()}}
}

// Snapshots keeps a node's in-memory state S as it was at the start of
// the units of work being run, so that the node's skip hook
// ([Task.OnSkip]) can restore it: the state at the start of the record,
// punctuation or flushed item, and, inside an item nested in one of
// those, the state at the start of the item. The zero value is ready.
type Snapshots[S any] struct {
	s   [2]S
	gen [2]uint64
}

// Take keeps the state snap returns as the state at the start of each
// unit being run that the node has not run in yet: the outer unit first
// (snap(true): the node may reset logs it keeps per unit), then the item.
// Call it each time the node runs, before it changes its state.
func (u *Snapshots[S]) Take(t *Task, snap func(outer bool) S) {
	if u.gen[0] != t.outer {
		u.s[0], u.gen[0] = snap(true), t.outer
	}
	if t.inner != 0 && u.gen[1] != t.inner {
		u.s[1], u.gen[1] = snap(false), t.inner
	}
}

// Skipped returns, from the node's skip hook, the state to restore: the
// node's state at the start of the unit being skipped, and false when the
// node did not run in that unit.
func (u *Snapshots[S]) Skipped(t *Task) (S, bool) {
	if t.inner != 0 {
		return u.s[1], u.gen[1] == t.inner
	}
	return u.s[0], u.gen[0] == t.outer
}

// OnTimestamp registers f as the timestamp extractor of source n (see
// topology.Processor.Timestamp): f returns the event time of a record of
// one of n's topics, false when the broker timestamp is it. The source's Process
// must fail a record whose event time is invalid (see [CheckTimestamp]).
func (t *Task) OnTimestamp(n *Node, f func(rec *broker.Record) (time.Time, bool)) {
	if t.stampers == nil {
		t.stampers = map[*Node]func(*broker.Record) (time.Time, bool){}
	}
	t.stampers[n] = f
}

// Children returns n's children as of Build.
func (t *Task) Children(n *Node) []*Node {
	if n.ID < len(t.children) {
		return t.children[n.ID]
	}
	return nil
}

// Get returns n's per-task behaviour, instantiating it on first use. A node
// with several parents (a merge) is instantiated once.
func (t *Task) Get(n *Node) (any, error) {
	if n.ID >= len(t.inst) {
		return nil, fmt.Errorf("stream: internal error: node %q was added after Build", n.Name)
	}
	if v := t.inst[n.ID]; v != nil {
		return v, nil
	}
	if t.busy[n.ID] {
		return nil, fmt.Errorf("stream: internal error: cycle through node %q", n.Name)
	}
	t.busy[n.ID] = true
	v, err := n.Instantiate(t)
	t.busy[n.ID] = false
	if err != nil {
		return nil, fmt.Errorf("instantiate %q: %w", n.Name, err)
	}
	t.inst[n.ID] = v
	return v, nil
}

// Children returns the per-task behaviours of n's children, each asserted
// to E (the function type of n's output) and, when the runtime counts the
// steps' records, wrapped with count and the edge's counters (see
// [Task.EdgeCounters]): count returns a function that increments in and
// out and calls f, such as [CountRecords]. The assertion and wrapping
// happen here, once per task, never per record.
func Children[E any](t *Task, n *Node, count func(f E, in, out *uint64) E) ([]E, error) {
	kids := t.Children(n)
	out := make([]E, 0, len(kids))
	for _, c := range kids {
		v, err := t.Get(c)
		if err != nil {
			return nil, err
		}
		f, ok := v.(E)
		if !ok {
			var want E
			return nil, fmt.Errorf("stream: internal error: node %q takes %T, node %q emits %T", c.Name, v, n.Name, want)
		}
		if in, o, ok := t.EdgeCounters(n, c); ok {
			f = count(f, in, o)
		}
		out = append(out, f)
	}
	return out, nil
}

func (t *Task) close() error {
	var errs []error
	for i := len(t.closers) - 1; i >= 0; i-- {
		errs = append(errs, t.closers[i]())
	}
	t.closers = nil
	return errors.Join(errs...)
}

// taskProcessor implements topology.Processor for one task.
type taskProcessor struct {
	task *Task
	// one is the single source topic fast path.
	oneTopic string
	oneFunc  SourceFunc
	oneIn    *uint64
	byTopic  map[string]source
	// stamps are the timestamp extractors by topic (nil: none).
	stamps map[string]func(*broker.Record) (time.Time, bool)
}

// source is a source node's function and the counter of the records it
// reads.
type source struct {
	f  SourceFunc
	in *uint64
}

func newTask(env topology.TaskEnv, children [][]*Node, sources []*Node, stepOf []int) (topology.Processor, error) {
	t := &Task{
		env:      env,
		children: children,
		inst:     make([]any, len(children)),
		busy:     make([]bool, len(children)),
	}
	if counts := env.StepCounters(); counts != nil && len(stepOf) == len(children) {
		t.counts, t.stepOf = counts, stepOf
	}
	p := &taskProcessor{task: t, byTopic: make(map[string]source)}
	for _, src := range sources {
		v, err := t.Get(src)
		if err != nil {
			return nil, errors.Join(err, t.close())
		}
		f, ok := v.(SourceFunc)
		if !ok {
			return nil, errors.Join(fmt.Errorf("stream: internal error: source %q instantiated as %T", src.Name, v), t.close())
		}
		in := &t.spare
		if t.counts != nil {
			in = &t.counts[t.stepOf[src.ID]].In
		}
		for _, topic := range src.Topics {
			p.byTopic[env.TopicName(topic, src.Internal)] = source{f: f, in: in}
			if ts := t.stampers[src]; ts != nil {
				if p.stamps == nil {
					p.stamps = map[string]func(*broker.Record) (time.Time, bool){}
				}
				p.stamps[env.TopicName(topic, src.Internal)] = ts
			}
		}
	}
	if len(p.byTopic) == 1 {
		for k, v := range p.byTopic {
			p.oneTopic, p.oneFunc, p.oneIn = k, v.f, v.in
		}
	}
	return p, nil
}

// Process dispatches rec to the source that reads rec.Topic, counting it
// as a record in of the source.
func (p *taskProcessor) Process(ctx context.Context, rec *broker.Record) error {
	if p.oneFunc != nil && rec.Topic == p.oneTopic {
		*p.oneIn++
		return p.oneFunc(ctx, rec)
	}
	s, ok := p.byTopic[rec.Topic]
	if !ok {
		return fmt.Errorf("stream: task %d_%d has no source for topic %q: %w",
			p.task.env.TaskID().SubTopology, p.task.env.TaskID().Partition, rec.Topic, broker.ErrUnknownTopic)
	}
	*s.in++
	return s.f(ctx, rec)
}

// Begin starts a new unit of work (topology.Processor).
func (p *taskProcessor) Begin() {
	t := p.task
	t.gen++
	t.outer, t.inner = t.gen, 0
}

// Skip runs the skip hooks of the task's nodes (topology.Processor).
func (p *taskProcessor) Skip() {
	for _, f := range p.task.skippers {
		f()
	}
}

// Timestamp returns the event time of rec as its source's extractor
// gives it (topology.Processor), false when rec's broker timestamp is
// it. An invalid event time (see [CheckTimestamp]) is reported as -1:
// every source fails such a record, so it is processed as soon as it is
// the first of its partition, instead of holding the partition back
// behind the task's other partitions until their records reach year
// 9999, and it does not move the task's stream time.
func (p *taskProcessor) Timestamp(rec *broker.Record) (int64, bool) {
	if p.stamps != nil {
		if f := p.stamps[rec.Topic]; f != nil {
			if ts, ok := f(rec); ok {
				return orderTime(ts), true
			}
		}
	}
	if !ValidTimestamp(rec.Timestamp) {
		return -1, true
	}
	return 0, false
}

// Flush runs the flush hooks of the task's nodes, upstream nodes first
// (see [Task.OnFlush]); stateless nodes register none, so for them it does
// nothing.
func (p *taskProcessor) Flush(ctx context.Context) error {
	p.task.flushing = true
	defer func() { p.task.flushing = false }()
	for i := len(p.task.flushers) - 1; i >= 0; i-- {
		if err := p.task.flushers[i](ctx); err != nil {
			return err
		}
	}
	return nil
}

// Close runs the close hooks of the task's nodes.
func (p *taskProcessor) Close() error { return p.task.close() }

// MaxScratch is the capacity above which a step drops a scratch buffer it
// reuses across records (Scratch) rather than keep it: one large record
// must not leave its size allocated for the task's lifetime.
const MaxScratch = 64 << 10

// Scratch returns b for reuse by the next record, or nil if b grew beyond
// MaxScratch.
func Scratch(b []byte) []byte {
	if cap(b) > MaxScratch {
		return nil
	}
	return b
}
