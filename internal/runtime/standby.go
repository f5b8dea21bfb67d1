package runtime

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/topology"
	"github.com/duality-streams/duality/store"
)

// This file holds the replica run: the goroutine of a generation that
// keeps standby and warm-up replicas current and restores the tasks that
// move here in a cooperative rebalance, as Kafka Streams' state updater
// does.
//
// Standby replicas (Kafka Streams' standby tasks,
// Config.NumStandbyReplicas) are warm copies of the stores of tasks
// active on other instances, kept in the local state and current from the
// stores' changelogs, so that when such a task moves here (its owner
// stopped or failed) its restore reads only the changelog records the
// copy had not applied yet.
//
// A standby copy is a store partition like an active one: the same
// name and partition in the same database, holding a prefix of its
// changelog and the offset of that prefix's last record (the checkpoint
// changelogStart reads), or of the last offset before the end a fetch
// read the changelog to: offsets without records (on Kafka, the
// transaction markers after each commit's records) count as read, so
// that a restore from a caught-up copy reads nothing. Only committed
// records are applied (the consumer reads read_committed), so the copy
// is always state the active task committed. Standbys never write to
// changelogs and are not open for queries.
//
// Warm-up replicas (placement.go) are standby copies too: of tasks the
// placement wants to move here while this instance's copy is behind.
// They are followed the same way; once they have caught up, the instance
// asks for a probing rebalance that moves the tasks (see probe).
//
// # Restoring in the background
//
// A stateful task that moves here in a cooperative rebalance is not
// given to a worker at once: the worker would restore its stores before
// processing anything else, and its tasks that stay would pause for the
// whole restore. The replica run restores it instead, beside the
// workers, up to the changelogs' ends as listed when its restoration
// started, and then hands it to the app's loop (generation.restored),
// which gives it to a worker (App.handOff). The worker opens it as any
// task: its restore (worker.restore) reads only what was appended since,
// normally nothing, since nobody else commits the task's partitions in
// the generation. The task starts from the committed offsets its
// assignment resumed (App.resume), which nobody else commits either, so
// its restored state and its positions match. A task revoked while it
// restores is dropped: its stores keep the prefix restored so far (a
// copy like any other) and nothing of it was processed or committed.
// While a task restores, the standbys and warm-ups wait (their
// changelogs are not fetched), as Kafka Streams pauses standby
// changelogs while active tasks restore.
//
// # One writer per store partition
//
// A store partition is never written by the run and a worker at once.
// The run of a generation lives as long as the generation, across its
// cooperative rebalances: each rebalance posts it the new replicas and
// the tasks to restore and to drop (replicaUpdate) once the workers have
// closed the tasks that moved away, so a task that leaves and gets a
// standby copy here is closed before the run opens its copy; a task that
// moves here goes through the run, which closes its stores before it
// hands it over. The run stops with the generation, before the next one
// opens its tasks. The run keeps its copies open and their positions
// across the updates: only new copies list their changelogs, and the
// probing rebalance's timer goes on.

// partition, then sub-topology, for an assignment that carries no
// placement (see replicaTasks).
//
// It is computed by every member from the assignment alone: with the
// members sorted by id, the standbys of a task whose active owner is the
// i-th member are the members i+1, ..., i+n (modulo the member count),
// never the owner itself, and fewer than n when the group has n members
// or fewer.
func (p *plan) standbyTasks(asg broker.Assignment, self string, n int) []*task {
	members := slices.SortedFunc(slices.Values(asg.Members), func(x, y broker.Member) int { return cmp.Compare(x.ID, y.ID) })
	me := slices.IndexFunc(members, func(m broker.Member) bool { return m.ID == self })
	if n <= 0 || me < 0 {
		return nil
	}
	k := min(n, len(members)-1) // standbys per task
	var tasks []*task
	for i, m := range members {
		// Whether this member is among the k after the i-th.
		if d := (me - i + len(members)) % len(members); d == 0 || d > k {
			continue
		}
		for _, t := range p.tasksFor(broker.Assignment{Partitions: m.Partitions}) {
			if len(t.sub.stores) > 0 {
				tasks = append(tasks, t)
			}
		}
	}
	slices.SortFunc(tasks, func(x, y *task) int {
		return cmp.Or(cmp.Compare(x.id.Partition, y.id.Partition), cmp.Compare(x.id.SubTopology, y.id.SubTopology))
	})
	return tasks
}

// replicaKind says what a copy of the replica run is for.
type replicaKind uint8

const (
	kindStandby replicaKind = iota
	kindWarmup              // a warm-up replica's (placement.go)
	kindRestore             // a task's that moved here, restored before it runs
)

// standbyStore is a copy of one store partition kept by the replica run.
type standbyStore struct {
	task  topology.TaskID
	name  string
	tp    broker.TopicPartition // its changelog partition
	st    store.Store           // nil until opened
	batch store.Batch
	kind  replicaKind
	// positioned says next, ckpt and end are set (changelogStart): false
	// for a new copy, after a failure, and when a copy starts restoring.
	positioned bool
	// next is the next changelog offset to read; ckpt the offset the
	// store recorded (-1: none); end is the changelog's end as last
	// known (a listing, or a fetch that read the partition to its end,
	// which atEnd says was the last one).
	next, ckpt, end int64
	atEnd           bool
	// rs is the restoration of a kindRestore copy.
	rs *restoration
}

// restoration is the progress of a copy of a task that moved here: the
// changelog end when it started (target), the records to read to it and
// the records applied, for the OnRestore hook, the log and the task's
// published metrics m (TaskMetrics shows the restoration from its start,
// before the task runs).
type restoration struct {
	t               *task
	target          int64
	total, restored int64
	started, logged time.Time
	done            bool
	log             *slog.Logger
	m               *storeMetrics
}

// newRestoration returns the restoration of t's store name, published in
// t's task metrics (created here when t has not run on this instance
// yet), which show t's positions, those its assignment resumed
// (App.resume), from now on. Nothing else touches t until the run hands
// it over: the app's loop set its positions before it posted t.
func (r *standbyRun) newRestoration(t *task, name string) *restoration {
	m := r.a.obs.taskMetrics(t)
	for i, ps := range t.parts {
		if i < len(m.parts) && m.parts[i].tp == ps.tp {
			m.parts[i].position.Store(ps.next)
			if ps.known {
				m.parts[i].committed.Store(ps.next)
			}
		}
	}
	return &restoration{t: t, m: m.store(name)}
}

// abandon marks rs, a restoration not finished that the run gives up
// (its task was revoked, or the run stops), as not restoring any more in
// the task's metrics; nil does nothing.
func (rs *restoration) abandon() {
	if rs != nil && !rs.done {
		rs.m.restoring.Store(false)
	}
}

// restoringTask is a task the replica run restores before a worker runs
// it.
type restoringTask struct {
	t      *task
	stores []*standbyStore
}

// standbyRun is the replica run of a generation (see above).
type standbyRun struct {
	a      *App
	stores []*standbyStore
	byTP   map[broker.TopicPartition]*standbyStore
	reqs   []broker.FetchRequest
	log    *slog.Logger
	// listed is when the changelogs' ends were last listed (for the lag).
	listed time.Time
	// probe is nil without warm-ups.
	probe     *probe
	rebalance func(context.Context) error
	// restoring are the tasks being restored; each goes to restored
	// (the generation's) once its stores have caught up.
	restoring []*restoringTask
	restored  chan<- *task
	mail      mailbox // its updates (takeUpdate)
	// gone are the changelog partitions of the copies closed since the
	// reader last dropped them.
	gone []broker.TopicPartition
}

// replicaUpdate is what the app's loop posts to the replica run: the
// replicas of the generation (replacing the run's) and the tasks to
// restore and to drop (added to those posted before).
type replicaUpdate struct {
	gen               int64
	standbys, warmups []*task
	warmupNums        []int32
	restore, drop     []*task
}

// post posts u to the run, merged with an update not taken yet: u's
// replicas replace its replicas; its tasks to restore and drop add up.
// The replica metrics are u's from now on (see publishLag).
func (r *standbyRun) post(u *replicaUpdate) {
	m := &r.mail
	m.mu.Lock()
	defer m.mu.Unlock()
	r.a.m.standbyTasks.Store(int64(len(u.standbys)))
	r.a.m.warmupTasks.Store(int64(len(u.warmups)))
	if len(u.standbys)+len(u.warmups) == 0 {
		r.a.m.standbyLag.Store(0)
	}
	if old := m.mu.update; old != nil {
		restore := slices.DeleteFunc(old.restore, func(t *task) bool { return slices.Contains(u.drop, t) })
		u.restore = append(restore, u.restore...)
		u.drop = append(old.drop, u.drop...)
	}
	m.mu.update = u
	m.postedLocked()
}

// standbyLagInterval is the least time between two listings of the
// changelogs' ends for the standby lag, while a standby is behind.
const standbyLagInterval = 10 * time.Second

// replicaTasks returns the stateful tasks this member (self) keeps
// standby and warm-up replicas of in asg, sorted by partition, then
// sub-topology, and the partition numbers of the warm-ups: as the
// placement in asg.Data says (placement.go), or, when asg carries none
// (the group's assignment was computed by an instance without
// placement), the standbys standbyTasks computes and no warm-ups.
func (a *App) replicaTasks(asg broker.Assignment, self string) (standbys, warmups []*task, warmupNums []int32) {
	if asg.Data == nil {
		return a.plan.standbyTasks(asg, self, a.cfg.NumStandbyReplicas), nil, nil
	}
	pl, err := decodePlacement(asg.Data)
	if err != nil {
		a.log.Warn("placement unreadable: no standby or warm-up replicas this generation", slog.Any("error", err))
		return nil, nil, nil
	}
	mine := pl[self]
	return a.plan.statefulTasksAt(a.topics, mine.standbys), a.plan.statefulTasksAt(a.topics, mine.warmups), mine.warmups
}

// statefulTasksAt returns the tasks that keep state at the partition
// numbers nums (topics gives the partition counts), sorted by partition,
// then sub-topology.
func (p *plan) statefulTasksAt(topics map[string]int32, nums []int32) []*task {
	var tps []broker.TopicPartition
	for _, n := range nums {
		for _, src := range p.sourceTopics {
			if n < topics[src] {
				tps = append(tps, broker.TopicPartition{Topic: src, Partition: n})
			}
		}
	}
	return slices.DeleteFunc(p.tasksFor(broker.Assignment{Partitions: tps}), func(t *task) bool { return len(t.sub.stores) == 0 })
}

// updateReplicas posts g's replicas (see replicaTasks), and the tasks to
// restore here and to drop (revoked while restoring), to g's replica
// run, starting it, on a goroutine of g (which stop waits for), when
// there is something to do and it has not started. A failure of the run
// that corrupt local state caused is added to g.fails and healed like a
// worker's; others are logged and retried, since the active tasks do not
// depend on them. With warm-ups, the run asks for a probing rebalance
// (see standbyRun.probe). The caller has closed the tasks that moved
// away from the workers.
func (a *App) updateReplicas(g *generation, restore, drop []*task) {
	standbys, warmups, warmupNums := a.replicaTasks(g.asg, g.memberID)
	u := &replicaUpdate{gen: g.asg.Generation, standbys: standbys, warmups: warmups, warmupNums: warmupNums,
		restore: restore, drop: drop}
	if r := g.replicas; r != nil {
		r.post(u)
		return
	}
	if len(warmups) == 0 {
		a.probed = nil
	}
	if len(standbys)+len(warmups)+len(restore) == 0 {
		return
	}
	r := &standbyRun{a: a, byTP: map[broker.TopicPartition]*standbyStore{}, log: a.log.With(slog.String("role", "standby")),
		rebalance: g.rebalance, restored: g.restored}
	r.mail.init()
	r.post(u)
	g.replicas = r
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := r.run(g.ctx); err != nil {
			g.fails.add(err)
		}
	}()
}

// update applies u (see replicaUpdate): it closes the copies no longer
// wanted, keeps the others open where they are (a standby copy of a task
// that moved here restores from where it is), adds the new ones, to be
// positioned, and moves the probing rebalance's state on (see probe).
func (r *standbyRun) update(u *replicaUpdate) {
	a := r.a
	type want struct {
		t    *task
		kind replicaKind
		rt   *restoringTask
	}
	// The tasks restoring: those not dropped, and the new ones.
	r.restoring = slices.DeleteFunc(r.restoring, func(rt *restoringTask) bool { return slices.Contains(u.drop, rt.t) })
	for _, t := range u.restore {
		r.restoring = append(r.restoring, &restoringTask{t: t})
	}
	wanted := map[broker.TopicPartition]want{}
	add := func(t *task, kind replicaKind, rt *restoringTask) {
		a.copies.add(t.id, t.sub.stores)
		for _, sp := range t.sub.stores {
			wanted[broker.TopicPartition{Topic: sp.changelog, Partition: t.id.Partition}] = want{t: t, kind: kind, rt: rt}
		}
	}
	for _, t := range u.standbys {
		add(t, kindStandby, nil)
	}
	for _, t := range u.warmups {
		add(t, kindWarmup, nil)
	}
	for _, rt := range r.restoring {
		add(rt.t, kindRestore, rt)
		rt.stores = rt.stores[:0]
	}
	kept := r.stores[:0]
	for _, s := range r.stores {
		w, ok := wanted[s.tp]
		if !ok {
			s.rs.abandon()
			r.closeStore(s)
			delete(r.byTP, s.tp)
			r.gone = append(r.gone, s.tp)
			continue
		}
		delete(wanted, s.tp)
		switch {
		case w.kind == kindRestore && (s.kind != kindRestore || s.rs.t != w.t):
			// It restores from where it is, to the end as listed now.
			s.rs.abandon()
			s.positioned, s.rs = false, r.newRestoration(w.t, s.name)
		case w.kind != kindRestore:
			s.rs.abandon()
			s.rs = nil
		}
		s.kind = w.kind
		if w.rt != nil {
			w.rt.stores = append(w.rt.stores, s)
		}
		kept = append(kept, s)
	}
	r.stores = kept
	for tp, w := range wanted {
		s := &standbyStore{task: w.t.id, tp: tp, kind: w.kind}
		for _, sp := range w.t.sub.stores {
			if sp.changelog == tp.Topic {
				s.name = sp.name
			}
		}
		if w.kind == kindRestore {
			s.rs = r.newRestoration(w.t, s.name)
		}
		r.stores = append(r.stores, s)
		r.byTP[tp] = s
		if w.rt != nil {
			w.rt.stores = append(w.rt.stores, s)
		}
	}
	slices.SortFunc(r.stores, func(x, y *standbyStore) int {
		return cmp.Or(cmp.Compare(x.tp.Partition, y.tp.Partition), cmp.Compare(x.tp.Topic, y.tp.Topic))
	})

	// The probing rebalance: its timer goes on across rebalances; asking
	// early happens once per set of warm-ups.
	switch {
	case len(u.warmups) == 0:
		r.probe, a.probed = nil, nil
	case r.probe == nil:
		r.probe = &probe{nums: u.warmupNums, early: !slices.Equal(a.probed, u.warmupNums),
			next: time.Now().Add(a.cfg.ProbingRebalanceInterval), rebalance: r.rebalance}
	case !slices.Equal(r.probe.nums, u.warmupNums):
		r.probe.nums, r.probe.early = u.warmupNums, !slices.Equal(a.probed, u.warmupNums)
	}
	ids := func(ts []*task) []string {
		out := make([]string, len(ts))
		for i, t := range ts {
			out[i] = t.id.String()
		}
		return out
	}
	r.log.Info("standby tasks assigned", slog.Int64("generation", u.gen), slog.Any("tasks", ids(u.standbys)),
		slog.Any("warmups", ids(u.warmups)), slog.Any("restoring", ids(u.restore)))
	r.publishLag()
}

// closeStore closes s's store, if open.
func (r *standbyRun) closeStore(s *standbyStore) {
	if s.st == nil {
		return
	}
	if err := s.st.Close(); err != nil {
		r.log.Debug("closing a standby store failed", slog.String("store", s.name), slog.Any("error", err))
	}
	s.st = nil
}

// probe asks the group for a rebalance that moves the tasks this member
// warms up, as Kafka Streams' probing rebalances do: once every warm-up
// has caught up (at most AcceptableRecoveryLag behind the changelog ends
// last known), and in any case every ProbingRebalanceInterval. Asking
// early happens once per set of warm-ups: when the rebalance it caused
// left the same warm-ups here (the owner had moved on meanwhile), the
// member waits for the interval, so that probes never follow each other
// back to back. The interval runs from the first generation with
// warm-ups, or the last probe: the cooperative rebalances in between do
// not restart it.
type probe struct {
	nums      []int32 // the warm-ups' partition numbers
	early     bool    // may still ask once the warm-ups caught up
	next      time.Time
	rebalance func(context.Context) error
}

// run keeps the copies current, restores the tasks that move here and
// hands them over, applying the updates posted meanwhile, until ctx ends;
// then it closes the copies. It returns only a failure caused by corrupt
// local state (see quarantine.go); it retries others.
func (r *standbyRun) run(ctx context.Context) error {
	defer func() {
		for _, s := range r.stores {
			s.rs.abandon()
			r.closeStore(s)
		}
		r.a.m.standbyTasks.Store(0)
		r.a.m.warmupTasks.Store(0)
		r.a.m.standbyLag.Store(0)
	}()
	rd, err := r.a.standbyReader()
	if err != nil {
		return fmt.Errorf("standby tasks: %w", err)
	}
	defer rd.release()
	var bo backoff
	for ctx.Err() == nil {
		if u := r.mail.takeUpdate(); u != nil {
			r.update(u)
			rd.drop(r.gone...)
			r.gone = r.gone[:0]
			continue
		}
		err = nil
		switch {
		case slices.ContainsFunc(r.stores, func(s *standbyStore) bool { return !s.positioned }):
			err = r.open(ctx)
		case len(r.stores) == 0:
			select {
			case <-ctx.Done():
			case <-r.mail.notify:
			}
			continue
		default:
			fctx, done, ok := r.mail.fetchContext(ctx)
			if !ok {
				continue
			}
			err = r.poll(fctx, rd)
			interrupted := fctx.Err() != nil
			done()
			if err != nil && interrupted && ctx.Err() == nil {
				continue // an update came
			}
		}
		if err == nil {
			bo.reset()
			if !r.handOver(ctx) {
				return nil
			}
			rd.drop(r.gone...)
			r.gone = r.gone[:0]
			r.maybeProbe(ctx)
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, store.ErrCorrupt) {
			// The database is the unit of integrity (see
			// quarantine.go): the app heals all of it, standby copies
			// included, which then start over from the changelogs.
			return fmt.Errorf("standby tasks: %w", err)
		}
		// Positions unknown or out of range: start over from the
		// stores' offsets, which changelogStart checks.
		r.log.Warn("standby tasks: following the changelogs failed, retrying", slog.Any("error", err))
		for _, s := range r.stores {
			s.positioned = false
		}
		rd.release()
		bo.wait(ctx)
	}
	return nil
}

// open opens the copies not positioned and positions each after its
// offset (changelogStart: a store whose offset does not fit its
// changelog is dropped and read from the changelog's beginning). A copy
// of a task that moved here starts its restoration: to the changelog's
// end as listed now.
func (r *standbyRun) open(ctx context.Context) error {
	for _, s := range r.stores {
		if s.positioned {
			continue
		}
		if s.st == nil {
			st, err := r.a.db.Store(s.name, s.tp.Partition)
			if err != nil {
				return fmt.Errorf("open standby store %s/%d: %w", s.name, s.tp.Partition, err)
			}
			s.st = st
		}
		log := r.log.With(slog.String("task", s.task.String()), slog.String("store", s.name), slog.Int("partition", int(s.tp.Partition)))
		next, offs, err := changelogStart(ctx, r.a.b, s.st, s.tp.Topic, log)
		if err != nil {
			return fmt.Errorf("standby store %s/%d: %w", s.name, s.tp.Partition, err)
		}
		s.next, s.ckpt, s.end, s.atEnd = next, next-1, offs.Latest, next >= offs.Latest
		s.positioned = true
		if s.kind == kindRestore {
			r.startRestore(s, next, offs.Latest)
		}
	}
	r.listed = time.Now()
	r.publishLag()
	return nil
}

// poll fetches the changelog records after the copies' positions,
// waiting up to FetchMaxWait for some, and applies them. While a task
// that moved here restores, only its changelogs are fetched.
func (r *standbyRun) poll(ctx context.Context, rd *reader) error {
	if time.Since(r.listed) >= standbyLagInterval {
		r.listEnds(ctx)
	}
	restoring := slices.ContainsFunc(r.stores, func(s *standbyStore) bool { return s.kind == kindRestore && !s.rs.done })
	r.reqs = r.reqs[:0]
	for _, s := range r.stores {
		if restoring && (s.kind != kindRestore || s.rs.done) {
			continue
		}
		r.reqs = append(r.reqs, broker.FetchRequest{Topic: s.tp.Topic, Partition: s.tp.Partition, Offset: s.next})
	}
	if len(r.reqs) == 0 {
		return nil // the restored tasks wait for handOver
	}
	polled, err := rd.fetchRetrying(ctx, r.reqs, r.a.cfg.FetchMaxWait, r.log, "standby fetch failed, retrying")
	if err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	recs := polled.Records
	var applied uint64
	for i := 0; i < len(recs); {
		tp := broker.TopicPartition{Topic: recs[i].Topic, Partition: recs[i].Partition}
		s := r.byTP[tp]
		if s == nil {
			return fmt.Errorf("fetch returned a record of unrequested partition %s/%d", tp.Topic, tp.Partition)
		}
		j := i + 1
		for j < len(recs) && recs[j].Partition == tp.Partition && recs[j].Topic == tp.Topic {
			j++
		}
		s.next, s.atEnd = recs[j-1].Offset+1, false
		if end, ok := polled.Ends[tp]; ok {
			s.next, s.atEnd = max(s.next, end), true
		}
		if err := applyChangelog(s.st, &s.batch, recs[i:j], s.next-1); err != nil {
			return fmt.Errorf("standby store %s/%d: %w", s.name, s.tp.Partition, err)
		}
		s.ckpt = s.next - 1
		s.end = max(s.end, s.next)
		if s.kind == kindRestore {
			r.restoredSome(s, int64(j-i))
		} else {
			applied += uint64(j - i)
		}
		i = j
	}
	for tp, end := range polled.Ends {
		s := r.byTP[tp]
		if s == nil {
			continue
		}
		s.next = max(s.next, end)
		s.end, s.atEnd = s.next, true
		if s.ckpt < s.next-1 {
			// Offsets without records (transaction markers, aborted
			// or compacted records) up to the end: record them too,
			// so that a restore from here reads nothing.
			s.batch.Reset()
			s.batch.SetOffset(s.next - 1)
			if err := s.st.Apply(&s.batch); err != nil {
				return fmt.Errorf("standby store %s/%d: %w", s.name, s.tp.Partition, err)
			}
			s.ckpt = s.next - 1
		}
		if s.kind == kindRestore {
			r.restoredSome(s, 0)
		}
	}
	r.a.m.standbyRecords.Add(applied)
	r.publishLag()
	return nil
}

// maybeProbe asks for a probing rebalance when one is due (see probe).
// A failed request is logged; the next is due an interval later.
func (r *standbyRun) maybeProbe(ctx context.Context) {
	p := r.probe
	if p == nil {
		return
	}
	now := time.Now()
	early := p.early && r.warmupsCaughtUp()
	if !early && now.Before(p.next) {
		return
	}
	if early {
		p.early = false
		r.a.probed = p.nums
	}
	p.next = now.Add(r.a.cfg.ProbingRebalanceInterval)
	r.a.m.probes.Add(1)
	r.log.Info("asking for a probing rebalance", slog.Bool("caughtUp", early), slog.Any("warmups", p.nums))
	if err := p.rebalance(ctx); err != nil && ctx.Err() == nil {
		r.log.Warn("probing rebalance request failed", slog.Any("error", err))
	}
}

// warmupsCaughtUp reports whether every warm-up task's copy is at most
// AcceptableRecoveryLag changelog offsets, summed over its stores, behind
// the ends last known.
func (r *standbyRun) warmupsCaughtUp() bool {
	lag := map[topology.TaskID]int64{}
	for _, s := range r.stores {
		if s.kind == kindWarmup {
			lag[s.task] = satAdd(lag[s.task], max(0, s.end-s.next))
		}
	}
	for _, l := range lag {
		if l > r.a.cfg.AcceptableRecoveryLag {
			return false
		}
	}
	return true
}

// listEnds lists the changelogs' ends of the standby and warm-up copies
// that are behind, for the lag; a failure leaves the ends as they were.
// It gives up after standbyLagInterval, so that a slow or unreachable
// broker holds the copies up by that much at most per interval.
func (r *standbyRun) listEnds(ctx context.Context) {
	r.listed = time.Now()
	ctx, cancel := context.WithTimeout(ctx, standbyLagInterval)
	defer cancel()
	for _, s := range r.stores {
		if ctx.Err() != nil {
			return
		}
		if s.atEnd || s.kind == kindRestore {
			continue
		}
		offs, err := r.a.b.ListOffsets(ctx, s.tp.Topic, s.tp.Partition)
		if err != nil {
			r.log.Debug("standby lag: list offsets failed", slog.String("topic", s.tp.Topic),
				slog.Int("partition", int(s.tp.Partition)), slog.Any("error", err))
			continue
		}
		s.end = max(s.end, offs.Latest)
	}
}

// publishLag sets the standby lag metric: the changelog offsets the
// standby and warm-up copies are behind the ends last known. While an
// update waits, the copies are the old ones: the metric stays as post
// set it.
func (r *standbyRun) publishLag() {
	var lag int64
	for _, s := range r.stores {
		if s.kind != kindRestore && s.positioned {
			lag += max(0, s.end-s.next)
		}
	}
	r.mail.mu.Lock()
	defer r.mail.mu.Unlock()
	if r.mail.mu.update == nil {
		r.a.m.standbyLag.Store(lag)
	}
}

// standbyReader returns the reader of the standby tasks' changelogs,
// created on first use and kept across generations (see closeStandbys).
func (a *App) standbyReader() (*reader, error) {
	if a.standbyRd == nil {
		rd, err := newReader(a.b, a.cfg.FetchMaxRecords)
		if err != nil {
			return nil, fmt.Errorf("consumer: %w", err)
		}
		a.standbyRd = rd
	}
	return a.standbyRd, nil
}

// closeStandbys releases the standby tasks' reader, once Run's
// generations have stopped.
func (a *App) closeStandbys() error {
	if a.standbyRd == nil {
		return nil
	}
	rd := a.standbyRd
	a.standbyRd = nil
	if err := rd.close(); err != nil {
		return fmt.Errorf("close standby consumer: %w", err)
	}
	return nil
}
