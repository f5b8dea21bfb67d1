package dsl_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/dsl"
	"github.com/duality-streams/duality/internal/topology"
)

type env struct {
	sent []broker.Record
	// counts are the step counters the env hands out (nil: none).
	counts []topology.StepCounts
}

func (e *env) AppID() string           { return "app" }
func (e *env) TaskID() topology.TaskID { return topology.TaskID{SubTopology: 1, Partition: 2} }
func (e *env) TopicName(l string, internal bool) string {
	if internal {
		return "app-" + l
	}
	return l
}
func (e *env) Logger() *slog.Logger { return slog.New(slog.DiscardHandler) }
func (e *env) Now() time.Time       { return time.Time{} }
func (e *env) Send(_ context.Context, r broker.Record) error {
	e.sent = append(e.sent, r)
	return nil
}

// The env has no stores and no clock-driven time: the nodes of these
// tests use neither.
var errNoState = errors.New("test env: no stores or punctuations")

func (e *env) Store(string) (topology.KV, error)             { return nil, errNoState }
func (e *env) GlobalStore(string) (topology.GlobalKV, error) { return nil, errNoState }
func (e *env) StreamTime() int64                             { return topology.NoTime }
func (e *env) Schedule(time.Duration, topology.PunctuationType, topology.Punctuator) (func(), error) {
	return nil, errNoState
}
func (e *env) StreamTimer(topology.Punctuator) (func(int64), func(), error) {
	return nil, nil, errNoState
}
func (e *env) RestoreStreamTime(int64)                          {}
func (e *env) CountLate()                                       {}
func (e *env) StepCounters() []topology.StepCounts              { return e.counts }
func (e *env) Item(ctx context.Context, it topology.Item) error { return it.Emit(ctx) }

// countString is the count argument of dsl.Children for untyped nodes.
func countString(f func(string) error, in, out *uint64) func(string) error {
	return func(s string) error {
		*in++
		*out++
		return f(s)
	}
}

// untyped builds nodes whose behaviour passes records on as
// func(string) error, recording the path in log.
type untyped struct {
	g   *dsl.Graph
	log *[]string
}

func (u untyped) source(name string, internal bool, topics ...string) *dsl.Node {
	n := &dsl.Node{Op: "source", Kind: dsl.KindSource, Name: name, Topics: topics, Internal: internal}
	n.Instantiate = func(t *dsl.Task) (any, error) {
		kids, err := dsl.Children(t, n, countString)
		if err != nil {
			return nil, err
		}
		return dsl.SourceFunc(func(_ context.Context, rec *broker.Record) error {
			*u.log = append(*u.log, n.Name+"<"+rec.Topic)
			for _, k := range kids {
				if err := k(string(rec.Value)); err != nil {
					return err
				}
			}
			return nil
		}), nil
	}
	return u.g.AddNode(n)
}

func (u untyped) step(name string, kind dsl.Kind, topics []string, internal bool, parents ...*dsl.Node) *dsl.Node {
	n := &dsl.Node{Op: "step", Kind: kind, Name: name, Topics: topics, Internal: internal}
	n.Instantiate = func(t *dsl.Task) (any, error) {
		kids, err := dsl.Children(t, n, countString)
		if err != nil {
			return nil, err
		}
		t.OnClose(func() error { *u.log = append(*u.log, "close "+n.Name); return nil })
		return func(v string) error {
			*u.log = append(*u.log, n.Name+":"+v)
			for _, k := range kids {
				if err := k(v); err != nil {
					return err
				}
			}
			return nil
		}, nil
	}
	return u.g.AddNode(n, parents...)
}

func TestBuildSplitsAndDispatches(t *testing.T) {
	var log []string
	u := untyped{g: dsl.NewGraph(), log: &log}
	a := u.source("a", false, "t1", "t2")
	b := u.source("b", false, "t3")
	m := u.step("m", dsl.KindProcessor, nil, false, a, b) // joins a and b
	u.step("sink", dsl.KindSink, []string{"rep"}, true, m)
	c := u.source("c", true, "rep") // behind an internal topic: a new sub-topology
	u.step("out", dsl.KindSink, []string{"out"}, false, c)
	u.g.AddInternalTopic(dsl.InternalTopic{Name: "rep", Writer: u.g.Nodes()[3]})

	built, err := dsl.Build(u.g)
	require.NoError(t, err)
	topo := dsl.Unwrap(built)
	require.Len(t, topo.SubTopologies, 2)
	require.Equal(t, []topology.Source{{Topic: "t1"}, {Topic: "t2"}, {Topic: "t3"}}, topo.SubTopologies[0].Sources)
	require.Equal(t, []topology.Sink{{Topic: "rep", Internal: true}}, topo.SubTopologies[0].Sinks)
	require.Equal(t, []topology.Source{{Topic: "rep", Internal: true}}, topo.SubTopologies[1].Sources)
	require.Equal(t, []topology.InternalTopic{{Name: "rep", WrittenBy: 0, Cleanup: broker.CleanupDelete}}, topo.InternalTopics)

	// Nodes added after Build are not part of the built topology.
	u.step("late", dsl.KindProcessor, nil, false, m)

	e := &env{}
	p, err := topo.SubTopologies[0].NewTask(e)
	require.NoError(t, err)
	ctx := t.Context()
	require.NoError(t, p.Process(ctx, &broker.Record{Topic: "t2", Value: []byte("x")}))
	require.NoError(t, p.Process(ctx, &broker.Record{Topic: "t3", Value: []byte("y")}))
	err = p.Process(ctx, &broker.Record{Topic: "rep"})
	require.ErrorIs(t, err, broker.ErrUnknownTopic)
	require.ErrorContains(t, err, `task 1_2 has no source for topic "rep"`)
	require.NoError(t, p.Flush(ctx))
	require.NoError(t, p.Close())
	require.Equal(t, []string{"a<t2", "m:x", "sink:x", "b<t3", "m:y", "sink:y", "close m", "close sink"}, log,
		"m is instantiated once for both parents; close hooks run upstream first (reverse registration order)")

	log = nil
	p, err = topo.SubTopologies[1].NewTask(e)
	require.NoError(t, err)
	require.NoError(t, p.Process(ctx, &broker.Record{Topic: "app-rep", Value: []byte("z")}))
	require.Equal(t, []string{"c<app-rep", "out:z"}, log)
}

func TestNewTaskErrorClosesInstantiatedNodes(t *testing.T) {
	var log []string
	u := untyped{g: dsl.NewGraph(), log: &log}
	a := u.source("a", false, "t")
	u.step("ok", dsl.KindProcessor, nil, false, a)
	bad := &dsl.Node{Op: "bad", Kind: dsl.KindProcessor}
	errBad := errors.New("bad init")
	bad.Instantiate = func(*dsl.Task) (any, error) { return nil, errBad }
	u.g.AddNode(bad, a)
	built, err := dsl.Build(u.g)
	require.NoError(t, err)
	topo := dsl.Unwrap(built)
	_, err = topo.SubTopologies[0].NewTask(&env{})
	require.ErrorIs(t, err, errBad)
	require.ErrorContains(t, err, `instantiate "bad-2"`)
	require.Equal(t, []string{"close ok"}, log)
}

func TestChildTypeMismatch(t *testing.T) {
	var log []string
	u := untyped{g: dsl.NewGraph(), log: &log}
	a := u.source("a", false, "t")
	odd := &dsl.Node{Op: "odd", Kind: dsl.KindProcessor}
	odd.Instantiate = func(*dsl.Task) (any, error) { return func(int) error { return nil }, nil }
	u.g.AddNode(odd, a)
	built, err := dsl.Build(u.g)
	require.NoError(t, err)
	topo := dsl.Unwrap(built)
	_, err = topo.SubTopologies[0].NewTask(&env{})
	require.ErrorContains(t, err, `internal error: node "odd-1" takes func(int) error, node "a" emits func(string) error`)
}

func TestFlushHooks(t *testing.T) {
	g := dsl.NewGraph()
	var flushed []string
	errFlush := errors.New("flush failed")
	n := &dsl.Node{Op: "source", Kind: dsl.KindSource, Topics: []string{"t"}}
	n.Instantiate = func(t *dsl.Task) (any, error) {
		// Hooks run in reverse registration order (upstream first).
		t.OnFlush(func(context.Context) error { flushed = append(flushed, "third"); return nil })
		t.OnFlush(func(context.Context) error { flushed = append(flushed, "second"); return errFlush })
		t.OnFlush(func(context.Context) error { flushed = append(flushed, "first"); return nil })
		return dsl.SourceFunc(func(context.Context, *broker.Record) error { return nil }), nil
	}
	g.AddNode(n)
	built, err := dsl.Build(g)
	require.NoError(t, err)
	topo := dsl.Unwrap(built)
	p, err := topo.SubTopologies[0].NewTask(&env{})
	require.NoError(t, err)
	require.ErrorIs(t, p.Flush(t.Context()), errFlush)
	require.Equal(t, []string{"first", "second"}, flushed)
}

func TestForeignParent(t *testing.T) {
	g1, g2 := dsl.NewGraph(), dsl.NewGraph()
	var log []string
	a := untyped{g: g1, log: &log}.source("a", false, "t")
	untyped{g: g2, log: &log}.source("b", false, "u")
	untyped{g: g2, log: &log}.step("m", dsl.KindProcessor, nil, false, a, nil)
	_, err := dsl.Build(g2)
	require.ErrorIs(t, err, dsl.ErrForeignStream)
	require.Len(t, err.(interface{ Unwrap() []error }).Unwrap(), 2, "the foreign and the nil parent")
}

// TestSkipHooks: the task processor's Begin (topology.Processor) starts
// a new generation that nodes see through Task.Gen, and Skip runs every
// OnSkip hook, where a node restores what it changed in that generation.
func TestSkipHooks(t *testing.T) {
	g := dsl.NewGraph()
	var task *dsl.Task
	state, snap, snapGen := 0, 0, uint64(0)
	n := &dsl.Node{Op: "source", Kind: dsl.KindSource, Topics: []string{"t"}}
	n.Instantiate = func(tk *dsl.Task) (any, error) {
		task = tk
		tk.OnSkip(func() {
			if snapGen == tk.Gen() {
				state = snap
			}
		})
		return dsl.SourceFunc(func(context.Context, *broker.Record) error {
			if snapGen != tk.Gen() {
				snap, snapGen = state, tk.Gen()
			}
			state++
			return nil
		}), nil
	}
	g.AddNode(n)
	built, err := dsl.Build(g)
	require.NoError(t, err)
	topo := dsl.Unwrap(built)
	p, err := topo.SubTopologies[0].NewTask(&env{})
	require.NoError(t, err)
	rec := &broker.Record{Topic: "t"}
	p.Begin()
	require.NoError(t, p.Process(t.Context(), rec))
	gen := task.Gen()
	p.Begin()
	require.NotEqual(t, gen, task.Gen())
	require.NoError(t, p.Process(t.Context(), rec))
	require.NoError(t, p.Process(t.Context(), rec)) // same unit, e.g. a merge
	require.Equal(t, 3, state)
	p.Skip()
	require.Equal(t, 1, state, "the second unit is undone, the first kept")
	p.Begin()
	p.Skip() // a unit the node did not run in
	require.Equal(t, 1, state)
}

// skipEnv is env whose Item applies a skip policy, as the runtime does:
// a failed item's processor is told to Skip, and Item returns nil.
type skipEnv struct {
	env
	p       topology.Processor
	skipped int
}

func (e *skipEnv) Item(ctx context.Context, it topology.Item) error {
	if err := it.Emit(ctx); err != nil {
		e.skipped++
		e.p.Skip()
	}
	return nil
}

// funcItem is an item whose Emit is f.
type funcItem func(context.Context) error

func (f funcItem) Emit(ctx context.Context) error { return f(ctx) }
func (f funcItem) Step() string                   { return "step" }
func (f funcItem) String() string                 { return "item" }

// TestItemSnapshots: Snapshots keeps a node's state at the start of the
// record (or flushed item) and of an item nested in it; skipping the item
// restores only what changed in it, skipping the record what changed in
// the whole record, item included.
func TestItemSnapshots(t *testing.T) {
	g := dsl.NewGraph()
	var a, b int // the states of the source and of the node below the items
	var sa, sb dsl.Snapshots[int]
	down := func(tk *dsl.Task, fail bool) funcItem {
		return func(context.Context) error {
			sb.Take(tk, func(bool) int { return b })
			b++
			if fail {
				return errors.New("boom")
			}
			return nil
		}
	}
	n := &dsl.Node{Op: "source", Kind: dsl.KindSource, Topics: []string{"t"}}
	n.Instantiate = func(tk *dsl.Task) (any, error) {
		tk.OnSkip(func() {
			if s, ok := sa.Skipped(tk); ok {
				a = s
			}
			if s, ok := sb.Skipped(tk); ok {
				b = s
			}
		})
		tk.OnFlush(func(ctx context.Context) error { return tk.Item(ctx, down(tk, true)) })
		return dsl.SourceFunc(func(ctx context.Context, rec *broker.Record) error {
			sa.Take(tk, func(bool) int { return a })
			a++
			if err := tk.Item(ctx, down(tk, false)); err != nil {
				return err
			}
			return tk.Item(ctx, down(tk, string(rec.Value) == "fail"))
		}), nil
	}
	g.AddNode(n)
	built, err := dsl.Build(g)
	require.NoError(t, err)
	e := &skipEnv{}
	p, err := dsl.Unwrap(built).SubTopologies[0].NewTask(e)
	require.NoError(t, err)
	e.p = p

	p.Begin()
	require.NoError(t, p.Process(t.Context(), &broker.Record{Topic: "t", Value: []byte("fail")}))
	require.Equal(t, []int{1, 1, 1}, []int{a, b, e.skipped}, "the failed item alone is undone")
	p.Skip()
	require.Equal(t, []int{0, 0}, []int{a, b}, "skipping the record undoes its items too")

	p.Begin()
	require.NoError(t, p.Process(t.Context(), &broker.Record{Topic: "t"}))
	require.Equal(t, []int{1, 2}, []int{a, b})
	require.NoError(t, p.Flush(t.Context()))
	require.Equal(t, []int{1, 2, 2}, []int{a, b, e.skipped}, "a flushed item is a unit of its own")
}

// TestStepCounts checks the counts of the steps' records: a source counts
// what it reads, a node with two children counts a record out once, a
// merge counts what both parents pass it, and Build lists the steps of
// each sub-topology in the order of the counters.
func TestStepCounts(t *testing.T) {
	var log []string
	u := untyped{g: dsl.NewGraph(), log: &log}
	a := u.source("a", false, "t1")
	b := u.source("b", false, "t2")
	fan := u.step("fan", dsl.KindProcessor, nil, false, a)
	left := u.step("left", dsl.KindProcessor, nil, false, fan)
	u.step("merge", dsl.KindProcessor, nil, false, left, fan, b)
	u.step("sink", dsl.KindSink, []string{"out"}, false, left)
	built, err := dsl.Build(u.g)
	require.NoError(t, err)
	st := dsl.Unwrap(built).SubTopologies[0]
	require.Equal(t, []topology.Step{{Name: "a", Op: "source"}, {Name: "b", Op: "source"}, {Name: "fan", Op: "step"},
		{Name: "left", Op: "step"}, {Name: "merge", Op: "step"}, {Name: "sink", Op: "step", Sink: true}}, st.Steps)

	e := &env{counts: make([]topology.StepCounts, len(st.Steps))}
	p, err := st.NewTask(e)
	require.NoError(t, err)
	for range 3 {
		require.NoError(t, p.Process(t.Context(), &broker.Record{Topic: "t1", Value: []byte("x")}))
	}
	require.NoError(t, p.Process(t.Context(), &broker.Record{Topic: "t2", Value: []byte("y")}))
	require.Equal(t, []topology.StepCounts{
		{In: 3, Out: 3}, // a
		{In: 1, Out: 1}, // b
		{In: 3, Out: 3}, // fan: to left and merge, counted once
		{In: 3, Out: 3}, // left: to merge and sink
		{In: 3 + 3 + 1}, // merge: from left, fan and b
		{In: 3},         // sink (the runtime reports its out as its in)
	}, e.counts)

	// Without counters from the runtime, nothing is counted or wrapped.
	p, err = st.NewTask(&env{})
	require.NoError(t, err)
	require.NoError(t, p.Process(t.Context(), &broker.Record{Topic: "t1", Value: []byte("x")}))
}
