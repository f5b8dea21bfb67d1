package runtime

import (
	"context"
	"log/slog"
	"slices"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/topology"
)

// Cooperative rebalancing: when the next generation's assignment arrives
// (generation g+1 after g), the workers keep running. Each worker
// switches its commits to g+1, drops the uncommitted work of its tasks
// that moved away and closes them, and goes on with the tasks that stay,
// without closing, restoring or refetching them. The tasks that moved
// here, once their committed offsets are known, are opened by the
// workers (new ones when there are fewer than Workers): the stateless
// ones at once, the stateful ones when the replica run has restored
// their stores in the background (standby.go, handOff), so that no
// worker's tasks pause for another task's restore.
//
// A partition that moves goes in one step (one-phase), and generation
// fencing makes that safe: its new owner starts in g+1 from the group's
// committed offsets, read stable (broker.Broker.FetchOffsets includes
// every commit the broker accepted), while its old owner, which may
// process it until it hears of g+1, can commit it only in g, which the
// broker refuses once the group is at g+1 (KIP-447's generation in
// TxnOffsetCommit on Kafka; the embedded committer's generation check),
// and a refused commit leaves nothing visible, its store writes
// included (they are applied after the commit). Once the old owner
// hears of g+1 its commits carry g+1 and leave the moved partitions'
// work out (worker.commit's keep). So a record's effects are committed
// by one owner only: the overlap costs work, never correctness.
//
// A worker whose commit in g failed because the group had moved to g+1
// before it heard of it (a race with the rebalance) holds that commit
// and waits for g+1's change, which commits it again in g+1 for the
// tasks that stay (onFenced); tasks handed to it meanwhile wait for that
// change too (apply). When the change cannot take it (the group moved on
// again), the worker drops its uncommitted work and stops: its tasks
// start again, from the committed offsets, on a new worker in its slot,
// as after an eager rebalance. Skipped generations (Assignments keeps only the newest),
// a bounded run (RunToEnd) and a lost assignment take the eager path:
// the workers stop and the new assignment's start afresh.

// change is a rebalance step posted to a running worker (mailbox.postChange).
type change struct {
	// keep, when not nil, are the partitions of the member in
	// generation gen: the worker commits in gen from now on, and closes
	// its tasks whose partitions are not all in keep, dropping their
	// uncommitted work.
	keep map[broker.TopicPartition]bool
	gen  int64
	// cacheMax, when positive, is the worker's new share of
	// CacheMaxBytes (the number of workers changes).
	cacheMax int64
	// add are tasks to open and run, their positions resumed.
	add  []*task
	done chan changeResult // buffered
}

// changeResult is how a worker applied a change: fenced says its commit
// was fenced and it stopped (its tasks closed); err is its failure
// (also added to the generation's fails).
type changeResult struct {
	fenced bool
	err    error
}

// apply applies c (see change), between two records. The continuing
// tasks keep their processors, stores, buffered records and positions.
//
// While w holds a fenced commit (onFenced), a change that only adds
// tasks (a restored task handed over, the second step of a rebalance)
// is deferred: the rebalance that fenced the commit is on its way, and
// its change, which commits the held commit again for the tasks that
// stay, decides which of the added tasks w keeps; it opens those then.
// They wait unopened: nothing of them is processed or committed before,
// and nobody else commits their partitions meanwhile (this member owns
// them in the generation that handed them over and, those kept, in the
// next one), so they start from the offsets they were resumed at.
func (w *worker) apply(ctx, gctx context.Context, c *change) (fenced bool, err error) {
	if c.cacheMax > 0 {
		w.cacheMax = c.cacheMax
	}
	if c.keep == nil && w.refused != nil {
		w.deferred = append(w.deferred, c.add...)
		return false, nil
	}
	add := c.add
	if c.keep != nil {
		// The commit in flight, of the old generation, first: the
		// group fenced it if it moved on before the commit reached
		// the broker, and it is held then.
		if _, err := w.await(); err != nil {
			return false, err
		}
	}
	if w.refused != nil { // c.keep is set: refused was nil or is awaited above
		if c.gen != w.refused.gen+1 {
			w.giveUp()
			return true, nil
		}
		if fenced, err := w.recommit(ctx, c.gen, c.keep); err != nil || fenced {
			if fenced {
				w.giveUp()
			}
			return fenced, err
		}
	}
	if c.keep != nil {
		// The work of the tasks that stay is committed in the new
		// generation (in the background, as any commit); the rest is
		// dropped.
		if fenced, err := w.commit(ctx, c.gen, c.keep, false); err != nil || fenced {
			if fenced {
				w.giveUp()
			}
			return fenced, err
		}
		w.genNum = c.gen
		var kept, revoked []*task
		for _, t := range w.tasks {
			if t.keptIn(c.keep) {
				kept = append(kept, t)
			} else {
				revoked = append(revoked, t)
			}
		}
		if len(revoked) > 0 {
			w.forget(revoked)
			if err := closeTasks(revoked); err != nil {
				return false, err
			}
			w.tasks = w.tasks[:0]
			for _, t := range kept {
				w.add(t)
			}
			w.nextTask = 0
		}
		if len(w.deferred) > 0 {
			for _, t := range w.deferred {
				if t.keptIn(c.keep) {
					add = append(add, t)
				} else {
					w.app.log.Debug("task handed over while a fenced commit was held moved away before it opened",
						slog.String("task", t.id.String()))
				}
			}
			w.deferred = nil
		}
	}
	if len(add) > 0 {
		for _, t := range add {
			w.add(t)
		}
		if err := w.openTasks(gctx, add); err != nil {
			return false, err
		}
	}
	return false, nil
}

// onFenced is run's answer to a commit of w that the group fenced. A
// held commit (w.refused) waits for the rebalance that fenced it, whose
// change commits it again in the new generation for the tasks that stay
// (apply): the worker goes on (goOn) and its tasks lose nothing. The
// changes that only add tasks, posted meanwhile, are deferred to it (see
// apply). A commit not held, or one the rebalance cannot take (see
// apply), drops the uncommitted work: the worker stops and its tasks
// start again, on this instance or another, from the committed offsets.
func (w *worker) onFenced(ctx, gctx context.Context) (goOn bool, err error) {
	if w.refused == nil {
		w.drop()
		return false, nil
	}
	for {
		if c := w.mail.takeChange(); c != nil {
			fenced, err := w.apply(ctx, gctx, c)
			c.done <- changeResult{fenced: fenced, err: err}
			if err != nil || fenced {
				return false, err
			}
			if w.refused == nil {
				return true, nil
			}
			continue // adds deferred: still held
		}
		select {
		case <-gctx.Done():
			return true, nil // run's stop drops the held commit
		case <-w.mail.notify:
		}
	}
}

// recommit commits w.refused, held after the group fenced it in the
// generation before gen, again in gen, for the tasks whose partitions are
// all in keep (the member's in gen) and waits for it. Those partitions
// had no other owner in between, so the commit goes on from where the
// member's last one left them; the other tasks' part is dropped.
func (w *worker) recommit(ctx context.Context, gen int64, keep map[broker.TopicPartition]bool) (fenced bool, err error) {
	c := w.refused
	w.refused = nil
	kept := make([]bool, len(w.tasks))
	for i, t := range w.tasks {
		kept[i] = t.keptIn(keep)
	}
	n, changelog := 0, 0
	for i := range c.records {
		if kept[c.owner[i]] {
			if i >= c.outLen {
				changelog++
			}
			c.records[n], c.owner[n] = c.records[i], c.owner[i]
			n++
		}
	}
	clear(c.records[n:])
	c.records, c.owner, c.changelog = c.records[:n], c.owner[:n], changelog
	for tp := range c.offsets {
		if !keep[tp] {
			delete(c.offsets, tp)
		}
	}
	states := c.states[:0]
	for _, s := range c.states {
		if kept[s.t.idx] {
			s.sentOff = -1
			states = append(states, s)
		} else {
			s.dropSent()
		}
	}
	c.states, c.gen = states, gen
	if len(c.records) == 0 && len(c.offsets) == 0 {
		for _, s := range states {
			if err := s.applySent(); err != nil {
				return false, err
			}
		}
		w.slot.fenced = false
		return false, nil
	}
	w.app.log.Info("committing the fenced commit again in the new generation",
		slog.Int64("generation", gen), slog.Int("records", len(c.records)))
	w.launch(ctx, c)
	if fenced, err = w.await(); err == nil && !fenced {
		w.slot.fenced = false
	}
	return fenced, err
}

// giveUp drops the held commit, if any, and the uncommitted work after
// it: the worker stops, and its tasks start again from the committed
// offsets.
func (w *worker) giveUp() {
	w.deferred = nil // never opened
	if c := w.refused; c != nil {
		w.refused = nil
		for _, s := range c.states {
			s.dropSent()
		}
		clear(c.records)
	}
	w.drop()
}

// keptIn reports whether every partition of t is in keep.
func (t *task) keptIn(keep map[broker.TopicPartition]bool) bool {
	for _, ps := range t.parts {
		if !keep[ps.tp] {
			return false
		}
	}
	return true
}

// forget removes the partitions of tasks, leaving w, from w's positions
// and from its consumer. Their uncommitted work is dropped already (the
// caller's commit left it out), and no output of theirs is buffered.
func (w *worker) forget(tasks []*task) {
	var tps []broker.TopicPartition
	for _, t := range tasks {
		for _, ps := range t.parts {
			tps = append(tps, ps.tp)
			delete(w.byTP, ps.tp)
		}
	}
	gone := func(ps *partState) bool { _, ok := w.byTP[ps.tp]; return !ok }
	w.parts = slices.DeleteFunc(w.parts, gone)
	w.purgeParts = slices.DeleteFunc(w.purgeParts, gone)
	w.slot.rd.drop(tps...)
}

// rebalance moves g, running generation g.asg, to asg cooperatively
// (see above) and reports whether it did; when it did not (ok false,
// nil error), nothing changed and the caller stops g and starts asg's
// tasks afresh. An error is the failure to resume the tasks that move
// here; g is running then, and the caller stops it.
func (a *App) rebalance(ctx context.Context, g *generation, asg broker.Assignment) (ok bool, err error) {
	if a.end != nil || asg.Lost || asg.Generation != g.asg.Generation+1 {
		return false, nil
	}
	next := a.plan.tasksFor(asg)
	// Step one: every worker moves to the new generation and closes
	// its tasks that moved away, while the tasks that stay go on.
	keep := assigned(&asg)
	// More workers start while there are fewer than Workers and fewer
	// than the tasks: each gets an equal share of CacheMaxBytes.
	workers := max(len(g.workers), min(a.cfg.Workers, len(next)))
	if a.cfg.CacheMaxBytes > 0 {
		g.cacheMax = max(1, a.cfg.CacheMaxBytes/int64(max(workers, 1))) // none: only standbys or warm-ups here
	}
	changes := make([]*change, len(g.workers))
	for i, w := range g.workers {
		changes[i] = &change{keep: keep, gen: asg.Generation, cacheMax: g.cacheMax, done: make(chan changeResult, 1)}
		w.mail.postChange(changes[i])
	}
	failed := map[int]bool{}
	for i, w := range g.workers {
		if !awaitChange(g.ctx, w, changes[i]) {
			failed[i] = true
		}
	}
	if err := g.ctx.Err(); err != nil {
		return true, err // the workers wait for the stop's reason
	}
	g.asg = asg
	// The tasks that were restoring and moved away are dropped.
	var drop []*task
	for id, t := range g.restoring {
		if !t.keptIn(keep) {
			drop = append(drop, t)
			delete(g.restoring, id)
		}
	}
	// Step two: the tasks new here, and those of the workers that
	// stopped (a fenced commit), start from the committed offsets; the
	// stateful ones are restored by the replica run first (standby.go)
	// and handed to a worker when restored (handOff).
	var pool, restore []*task
	owner := map[topology.TaskID]int{}
	prevOwner, restarted, restoring := g.owner, 0, 0
	for _, t := range next {
		if g.restoring[t.id] != nil {
			restoring++ // since a previous rebalance
			continue
		}
		i, ok := prevOwner[t.id]
		if ok && !failed[i] {
			owner[t.id] = i
			continue
		}
		if ok {
			restarted++
		}
		pool = append(pool, t)
	}
	if err := a.resume(ctx, pool); err != nil {
		return true, err
	}
	started := len(pool)
	pool = slices.DeleteFunc(pool, func(t *task) bool {
		if len(t.sub.stores) == 0 {
			return false
		}
		g.restoring[t.id] = t
		restore = append(restore, t)
		return true
	})
	a.iq.assign(next, a.owners(asg))
	counts := make([]int, len(g.workers))
	for _, i := range owner {
		counts[i]++
	}
	// Stopped workers are replaced in their slots; more workers start
	// while there are fewer than Workers and fewer than the tasks.
	fresh := map[int]bool{}
	for i := range g.workers {
		if failed[i] {
			w, err := a.newSlotWorker(ctx, g, g.workers[i].idx)
			if err != nil {
				return true, err
			}
			g.workers[i], fresh[i] = w, true
		}
	}
	for len(g.workers) < workers {
		w, err := a.newSlotWorker(ctx, g, len(g.workers))
		if err != nil {
			return true, err
		}
		fresh[len(g.workers)] = true
		g.workers = append(g.workers, w)
		counts = append(counts, 0)
	}
	adds := make([][]*task, len(g.workers))
	for _, t := range pool {
		i := 0
		for j := range counts {
			if counts[j] < counts[i] {
				i = j
			}
		}
		counts[i]++
		owner[t.id] = i
		adds[i] = append(adds[i], t)
	}
	g.owner = owner
	for i, w := range g.workers {
		switch {
		case fresh[i]:
			for _, t := range adds[i] {
				w.add(t)
			}
			g.startWorker(w)
		case len(adds[i]) > 0:
			changes[i] = &change{add: adds[i], done: make(chan changeResult, 1)}
			w.mail.postChange(changes[i])
		default:
			changes[i] = nil
		}
	}
	for i, w := range g.workers {
		if !fresh[i] && changes[i] != nil {
			// A failure is in g.fails. A worker that stopped after a
			// fenced commit is replaced at the next rebalance, which
			// the fencing generation makes.
			awaitChange(g.ctx, w, changes[i])
		}
	}
	if err := g.ctx.Err(); err != nil {
		return true, err
	}
	a.updateReplicas(g, restore, drop)
	a.m.tasks.Store(int64(len(next)))
	kept := len(next) - started - restoring
	a.log.Info("rebalanced cooperatively", slog.Int64("generation", asg.Generation),
		slog.Int("partitions", len(asg.Partitions)), slog.Int("tasks", len(next)),
		slog.Int("kept", kept), slog.Int("started", len(pool)), slog.Int("restoring", len(restore)+restoring),
		slog.Int("moved_away", len(prevOwner)-kept-restarted), slog.Int("dropped_while_restoring", len(drop)),
		slog.Int("restarted", restarted), slog.Int("workers", len(g.workers)))
	return true, nil
}

// handOff gives t, a task of g that the replica run restored, to the
// worker of g with the fewest tasks, unless t was revoked meanwhile (it is
// no longer in g.restoring; the run closed its stores, and nothing of it
// was processed). The worker opens it as any task that moves here (see
// change): its restore reads what the changelog got since, normally
// nothing; a worker that holds a fenced commit opens it with the change
// of the rebalance that fenced the commit, if that keeps it (see apply).
// A worker that stopped (a fenced commit) meanwhile is replaced
// at the next rebalance, whose fencing generation restarts its tasks, t
// included. An error is the failure to start a worker.
func (a *App) handOff(ctx context.Context, g *generation, t *task) error {
	if g.restoring[t.id] != t {
		return nil
	}
	delete(g.restoring, t.id)
	if len(g.workers) == 0 {
		w, err := a.newSlotWorker(ctx, g, 0)
		if err != nil {
			return err
		}
		g.workers = append(g.workers, w)
		g.owner[t.id] = 0
		w.add(t)
		g.startWorker(w)
		return nil
	}
	counts := make([]int, len(g.workers))
	for _, i := range g.owner {
		counts[i]++
	}
	i := -1
	for j, w := range g.workers {
		select {
		case <-w.exited:
			continue // stopped: replaced at the next rebalance
		default:
		}
		if i < 0 || counts[j] < counts[i] {
			i = j
		}
	}
	if i < 0 {
		i = 0 // all stopped: t starts again with their tasks
	}
	g.owner[t.id] = i
	w := g.workers[i]
	c := &change{add: []*task{t}, done: make(chan changeResult, 1)}
	w.mail.postChange(c)
	awaitChange(g.ctx, w, c) // a failure is in g.fails
	a.log.Debug("restored task handed to a worker", slog.String("task", t.id.String()), slog.Int("worker", w.idx))
	return nil
}

// awaitChange waits until w has applied c, or ctx, the generation's,
// ends (then w stops on its own). It returns false when w did not apply
// c: it stopped (before it took c, fenced, or after a failure), its
// tasks closed; or ctx ended.
func awaitChange(ctx context.Context, w *worker, c *change) bool {
	var res changeResult
	select {
	case res = <-c.done:
	case <-ctx.Done():
		return false
	case <-w.exited:
		select {
		case res = <-c.done:
		default:
			return false
		}
	}
	if res.fenced || res.err != nil {
		select {
		case <-w.exited:
		case <-ctx.Done():
		}
		return false
	}
	return true
}
