package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync/atomic"
	"time"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/topology"
)

// A bounded run (App.RunToEnd) processes the input its sources hold when
// it starts, then moves stream time to the end of time, so that every
// window closes and every final result comes out, commits and returns.
//
// The sources split in two. A bounded source is an external topic the
// topology does not write: its end offsets are listed when the run
// starts, and the workers read it up to them (partState.stop). A staged
// source is a topic the topology writes itself (a repartition topic, a
// foreign-key join's subscription and response topics, an external topic
// it writes with To and reads back): its records are the work of earlier
// stages, so it is read until caught up.
//
// The controller (App.loop) decides from the broker when the input is
// processed (complete), so that the decision holds whatever the number of
// workers. It then advances the sub-topologies to the end one group at a
// time in topological order (plan.endOrder): a group's tasks move their
// stream time to topology.MaxTimestamp (worker.advanceTask) and commit,
// the stages downstream process what that emitted, and only then is the
// next group advanced, so a downstream window never sees the final
// results of an upstream one as late. After the last group and a last
// check, the run stops as Run does on cancellation. A Stepper runs the
// same advance, group by group (Stepper.EndOrder, Stepper.AdvanceToEnd),
// for streamtest's Driver.AdvanceToEnd.

// endRun is the state of a bounded run, owned by the goroutine running
// App.loop; workers read only ends (through start) and poke progress.
type endRun struct {
	// ends are the end offsets (latest) of the partitions of the bounded
	// sources when the run started: the records below them are its
	// input. bounded lists those partitions, staged the partitions of
	// the staged sources, all both (for FetchOffsets).
	ends            map[broker.TopicPartition]int64
	bounded, staged []broker.TopicPartition
	all             []broker.TopicPartition
	// groups are the sub-topology IDs in the order they are advanced
	// (plan.endOrder); advanced counts those done, req is the advance
	// in progress (nil: none).
	groups   [][]int
	advanced int
	req      *advanceReq
	// progress is poked after every commit of a worker and by a ticker:
	// the controller then checks whether the input is processed.
	progress chan struct{}
}

// endCheckInterval is how often a bounded run checks for completion when
// no commit of its own pokes it (another instance's commits, records
// deleted before they were processed).
const endCheckInterval = time.Second

// startEnd lists the end offsets of the bounded sources (topics are the
// partition counts of the existing topics).
func (a *App) startEnd(ctx context.Context, topics map[string]int32) (*endRun, error) {
	e := &endRun{ends: map[broker.TopicPartition]int64{}, groups: a.plan.endOrder(), progress: make(chan struct{}, 1)}
	for _, topic := range a.plan.sourceTopics {
		for p := range topics[topic] {
			tp := broker.TopicPartition{Topic: topic, Partition: p}
			if a.plan.staged[topic] {
				e.staged = append(e.staged, tp)
				continue
			}
			offs, err := a.b.ListOffsets(ctx, topic, p)
			if err != nil {
				return nil, fmt.Errorf("list end offsets of %s/%d: %w", topic, p, err)
			}
			e.ends[tp] = offs.Latest
			e.bounded = append(e.bounded, tp)
		}
	}
	e.all = slices.Concat(e.bounded, e.staged)
	a.log.Info("bounded run: recorded the end offsets of the input",
		slog.Int("partitions", len(e.bounded)), slog.Int("staged_partitions", len(e.staged)))
	return e, nil
}

// poke asks the controller to check for completion, without blocking.
func (e *endRun) poke() {
	select {
	case e.progress <- struct{}{}:
	default:
	}
}

// restarted tells a bounded run (nil: none) that the tasks were started
// again, after a rebalance or a heal of their state: an advance in
// progress was lost with the old generation's workers, so check again,
// then redo it.
func (e *endRun) restarted() {
	if e != nil {
		e.req = nil
		e.poke()
	}
}

// stop returns the offset at which a worker stops reading tp: its end
// offset for a bounded source (0 for a partition that did not exist when
// the run started), none (math.MaxInt64) for a staged one.
func (e *endRun) stop(tp broker.TopicPartition, staged bool) int64 {
	if staged {
		return math.MaxInt64
	}
	return e.ends[tp]
}

// complete reports whether the input is processed, from the group's
// committed offsets: every bounded partition's at or past its end offset,
// every staged partition's at its latest offset. The committed offsets
// are read first: a commit landing after them adds records to staged
// partitions beyond the offsets read, so the check fails rather than
// passing early. A commit holds a task's output with its input offsets,
// so nothing processed is left unwritten. A partition without a
// committed offset is at its earliest offset, and records deleted before
// they were processed count as processed (the worker skips them too).
func (a *App) complete(ctx context.Context, e *endRun) (bool, error) {
	committed, err := a.b.FetchOffsets(ctx, a.appID, e.all)
	if err != nil {
		return false, fmt.Errorf("fetch committed offsets: %w", err)
	}
	position := func(tp broker.TopicPartition) (pos int64, offs broker.Offsets, err error) {
		offs, err = a.b.ListOffsets(ctx, tp.Topic, tp.Partition)
		if err != nil {
			return 0, offs, fmt.Errorf("list offsets of %s/%d: %w", tp.Topic, tp.Partition, err)
		}
		pos = offs.Earliest
		if off, ok := committed[tp]; ok {
			pos = max(off, pos)
		}
		return pos, offs, nil
	}
	for _, tp := range e.bounded {
		if off, ok := committed[tp]; ok && off >= e.ends[tp] {
			continue
		}
		pos, _, err := position(tp)
		if err != nil || pos < e.ends[tp] {
			return false, err
		}
	}
	for _, tp := range e.staged {
		pos, offs, err := position(tp)
		if err != nil || pos < offs.Latest {
			return false, err
		}
	}
	return true, nil
}

// endStep checks whether the input is processed (complete); if so, it
// starts the end advance of the next group of sub-topologies, or reports
// that the run is done when every group was advanced.
func (a *App) endStep(ctx context.Context, gen *generation, e *endRun) (done bool, err error) {
	ok, err := a.complete(ctx, e)
	if err != nil || !ok {
		return false, err
	}
	if e.advanced == len(e.groups) {
		return true, nil
	}
	g := e.groups[e.advanced]
	a.log.Info("bounded run: input processed, advancing stream time to the end", slog.Any("sub_topologies", g))
	e.req = gen.advance(g)
	return false, nil
}

// advanceReq asks every worker of a generation to advance its tasks of
// some sub-topologies to the end and commit.
type advanceReq struct {
	subs map[int]bool
	left atomic.Int32
	done chan struct{} // closed once every worker has committed its advance
}

func (r *advanceReq) ack() {
	if r.left.Add(-1) == 0 {
		close(r.done)
	}
}

// advance posts an advance of the sub-topologies subs to every worker of
// g and returns it.
func (g *generation) advance(subs []int) *advanceReq {
	r := &advanceReq{subs: map[int]bool{}, done: make(chan struct{})}
	for _, id := range subs {
		r.subs[id] = true
	}
	r.left.Store(int32(len(g.workers)))
	if len(g.workers) == 0 {
		close(r.done)
	}
	for _, w := range g.workers {
		w.mail.postAdvance(r)
	}
	return r
}

// toEnd advances the worker's tasks of the sub-topologies subs to the end
// (advanceToEnd), then commits and waits for the commit, so that their
// output is in the broker when the controller hears of it.
func (w *worker) toEnd(ctx context.Context, subs map[int]bool) (fenced bool, err error) {
	if fenced, err := w.advanceToEnd(ctx, subs); err != nil || fenced {
		return fenced, err
	}
	return w.commit(ctx, w.genNum, nil, true)
}

// advanceToEnd advances the worker's tasks of the sub-topologies subs to
// the end (advanceTask), without committing. Stepper.AdvanceToEnd runs it
// too.
func (w *worker) advanceToEnd(ctx context.Context, subs map[int]bool) (fenced bool, err error) {
	for _, t := range w.tasks {
		if t.proc == nil || !subs[t.sub.st.ID] {
			continue
		}
		if fenced, err := w.advanceTask(ctx, t); err != nil || fenced {
			return fenced, err
		}
	}
	return false, nil
}

// advanceTask moves t's stream time to the end of time
// (topology.MaxTimestamp) as if input had gone on: to the due time of each
// of its one-shot timers in turn (a window's next close, a join's next
// unmatched record), running the stream-time punctuations due there, then
// to MaxTimestamp. Periodic punctuations fire at most once per step, as
// when a record moves stream time by several intervals. Each step moves
// stream time forward, and a timer is armed past the stream time it fired
// at, so the steps end.
func (w *worker) advanceTask(ctx context.Context, t *task) (fenced bool, err error) {
	for {
		if t.streamTime >= t.nextStream {
			if fenced, err := w.punctuate(ctx, t, topology.StreamTimePunctuation, t.streamTime); err != nil || fenced {
				return fenced, err
			}
		}
		if t.streamTime >= topology.MaxTimestamp {
			return false, nil
		}
		next := topology.MaxTimestamp
		for _, s := range t.scheds {
			if s.typ == topology.StreamTimePunctuation && s.interval == 0 && !s.canceled && s.next > t.streamTime {
				next = min(next, s.next)
			}
		}
		t.streamTime = next
	}
}

// endOrder returns the sub-topologies in the order a bounded run advances
// them to the end: groups of sub-topology IDs, each after every group
// that writes a topic it reads, directly or through other groups.
// Sub-topologies that reach each other through the topics they write and
// read (a foreign-key join's subscription and response topics) form one
// group, advanced together. Groups without an order between them come in
// the order of their smallest ID.
func (p *plan) endOrder() [][]int {
	n := len(p.subs)
	reach := make([][]bool, n) // reach[i][j]: sub i writes a topic sub j reads, maybe through others
	index := map[*subPlan]int{}
	for i, sp := range p.subs {
		index[sp] = i
		reach[i] = make([]bool, n)
	}
	for i, sp := range p.subs {
		for _, sink := range sp.sinks {
			if r := p.bySource[sink]; r != nil {
				reach[i][index[r]] = true
			}
		}
	}
	for k := range n {
		for i := range n {
			if !reach[i][k] {
				continue
			}
			for j := range n {
				reach[i][j] = reach[i][j] || reach[k][j]
			}
		}
	}
	var groups [][]int // of indexes into p.subs
	grouped := make([]bool, n)
	for i := range n {
		if grouped[i] {
			continue
		}
		g := []int{i}
		grouped[i] = true
		for j := i + 1; j < n; j++ {
			if !grouped[j] && reach[i][j] && reach[j][i] {
				g = append(g, j)
				grouped[j] = true
			}
		}
		groups = append(groups, g)
	}
	// Kahn's algorithm over the groups: take the first group (by smallest
	// member) that no other group left reaches.
	reaches := func(h, g []int) bool {
		for _, i := range h {
			for _, j := range g {
				if reach[i][j] {
					return true
				}
			}
		}
		return false
	}
	var out [][]int
	for len(groups) > 0 {
		next := 0 // the groups' graph has no cycle, so one is free
		for gi, g := range groups {
			free := true
			for hi, h := range groups {
				if hi != gi && reaches(h, g) {
					free = false
					break
				}
			}
			if free {
				next = gi
				break
			}
		}
		ids := make([]int, 0, len(groups[next]))
		for _, i := range groups[next] {
			ids = append(ids, p.subs[i].st.ID)
		}
		out = append(out, ids)
		groups = slices.Delete(groups, next, next+1)
	}
	return out
}
