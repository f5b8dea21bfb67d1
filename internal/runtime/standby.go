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

// This file holds standby replicas (Kafka Streams' standby tasks,
// Config.NumStandbyReplicas): warm copies of the stores of tasks active
// on other instances, kept in the local state and current from the
// stores' changelogs, so that when such a task moves here (its owner
// stopped or failed) its restore (worker.restore) reads only the
// changelog records the copy had not applied yet.
//
// A standby copy is a store partition like an active one: the same
// name and partition in the same database, holding a prefix of its
// changelog and the offset of that prefix's last record (the checkpoint
// changelogStart reads), or of the last offset before the end a fetch
// read the changelog to: offsets without records (on Kafka, the
// transaction markers after each commit's records) count as read, so
// that a restore from a caught-up copy reads nothing. Only committed records are applied (the
// consumer reads read_committed), so the copy is always state the
// active task committed. Standby copies are written by one goroutine of
// the instance (standbyRun.follow), for all its standby tasks, beside
// the workers of the same generation, which it belongs to: it stops
// with the generation, before the next one restores its tasks, so a
// store partition is never written by a standby and a task at once.
// Standbys never write to changelogs and are not open for queries.
//
// Warm-up replicas (placement.go) are standby copies too: of tasks the
// placement wants to move here while this instance's copy is behind.
// They are followed the same way; once they have caught up, the instance
// asks for a probing rebalance that moves the tasks (see probe).

// standbyTasks returns the stateful tasks this member (self) keeps
// standby copies of in asg, with n standby replicas per task, sorted by
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

// standbyStore is a standby copy of one store partition.
type standbyStore struct {
	task  topology.TaskID
	name  string
	tp    broker.TopicPartition // its changelog partition
	st    store.Store           // nil until opened
	batch store.Batch
	// next is the next changelog offset to read; ckpt the offset the
	// store recorded (-1: none); end is the changelog's end as last
	// known (a listing, or a fetch that read the partition to its end,
	// which atEnd says was the last one).
	next, ckpt, end int64
	atEnd           bool
	// warmup says the copy is a warm-up replica's (placement.go).
	warmup bool
}

// standbyRun follows the changelogs of a generation's standby tasks.
type standbyRun struct {
	a      *App
	stores []*standbyStore
	byTP   map[broker.TopicPartition]*standbyStore
	reqs   []broker.FetchRequest
	log    *slog.Logger
	// listed is when the changelogs' ends were last listed (for the lag).
	listed time.Time
	// probe is nil without warm-ups.
	probe *probe
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

// startStandbys starts, on a goroutine of g (which stop waits for), the
// standby and warm-up replicas of this member (memberID) in g's
// assignment (see replicaTasks). A failure of theirs that corrupt local
// state caused is added to g.fails and healed
// like a worker's; others are logged and retried, since the active tasks
// do not depend on them. With warm-ups, the goroutine asks for a probing
// rebalance (see standbyRun.probe).
func (a *App) startStandbys(g *generation) {
	standbys, warmups, warmupNums := a.replicaTasks(g.asg, g.memberID)
	if len(warmups) == 0 {
		a.probed = nil
	}
	if len(standbys)+len(warmups) == 0 {
		return
	}
	r := &standbyRun{a: a, byTP: map[broker.TopicPartition]*standbyStore{}, log: a.log.With(slog.String("role", "standby"))}
	var ids, warm []string
	for i, t := range slices.Concat(standbys, warmups) {
		isWarmup := i >= len(standbys)
		if isWarmup {
			warm = append(warm, t.id.String())
		} else {
			ids = append(ids, t.id.String())
		}
		a.copies.add(t.id, t.sub.stores)
		for _, sp := range t.sub.stores {
			s := &standbyStore{task: t.id, name: sp.name, tp: broker.TopicPartition{Topic: sp.changelog, Partition: t.id.Partition}, warmup: isWarmup}
			r.stores = append(r.stores, s)
			r.byTP[s.tp] = s
		}
	}
	if len(warmups) > 0 {
		r.probe = &probe{nums: warmupNums, early: !slices.Equal(a.probed, warmupNums),
			next: time.Now().Add(a.cfg.ProbingRebalanceInterval), rebalance: g.rebalance}
	}
	a.m.standbyTasks.Store(int64(len(standbys)))
	a.m.warmupTasks.Store(int64(len(warmups)))
	a.log.Info("standby tasks assigned", slog.Int64("generation", g.asg.Generation), slog.Any("tasks", ids), slog.Any("warmups", warm))
	ctx, cancel := context.WithCancel(g.ctx)
	h := &standbyHandle{cancel: cancel, done: make(chan struct{})}
	g.standby = h
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer close(h.done)
		if err := r.run(ctx); err != nil {
			g.fails.add(err)
		}
	}()
}

// standbyHandle stops a generation's standby tasks.
type standbyHandle struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// stopStandbys stops g's standby tasks, if any, and waits until they
// have closed their stores. A failure of theirs is in g.fails.
func (g *generation) stopStandbys() {
	if h := g.standby; h != nil {
		g.standby = nil
		h.cancel()
		<-h.done
	}
}

// probe asks the group for a rebalance that moves the tasks this member
// warms up, as Kafka Streams' probing rebalances do: once every warm-up
// has caught up (at most AcceptableRecoveryLag behind the changelog ends
// last known), and in any case every ProbingRebalanceInterval. Asking
// early happens once per set of warm-ups: when the rebalance it caused
// left the same warm-ups here (the owner had moved on meanwhile), the
// member waits for the interval, so that probes never follow each other
// back to back.
type probe struct {
	nums      []int32 // the warm-ups' partition numbers
	early     bool    // may still ask once the warm-ups caught up
	next      time.Time
	rebalance func(context.Context) error
}

// run keeps the standby copies current until ctx ends, then closes
// them. It returns only a failure caused by corrupt local state (see
// quarantine.go); it retries others.
func (r *standbyRun) run(ctx context.Context) error {
	defer func() {
		for _, s := range r.stores {
			if s.st != nil {
				if err := s.st.Close(); err != nil {
					r.log.Debug("closing a standby store failed", slog.String("store", s.name), slog.Any("error", err))
				}
			}
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
	opened := false
	for ctx.Err() == nil {
		if !opened {
			err = r.open(ctx)
		} else {
			err = r.poll(ctx, rd)
		}
		if err == nil {
			opened = true
			bo.reset()
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
		opened = false
		rd.release()
		bo.wait(ctx)
	}
	return nil
}

// open opens the standby stores and positions each after its offset
// (changelogStart: a store whose offset does not fit its changelog is
// dropped and read from the changelog's beginning).
func (r *standbyRun) open(ctx context.Context) error {
	r.reqs = r.reqs[:0]
	for _, s := range r.stores {
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
		r.reqs = append(r.reqs, broker.FetchRequest{Topic: s.tp.Topic, Partition: s.tp.Partition})
	}
	r.listed = time.Now()
	r.publishLag()
	return nil
}

// poll fetches the changelog records after the copies' positions,
// waiting up to FetchMaxWait for some, and applies them.
func (r *standbyRun) poll(ctx context.Context, rd *reader) error {
	if time.Since(r.listed) >= standbyLagInterval {
		r.listEnds(ctx)
	}
	for i := range r.reqs {
		q := &r.reqs[i]
		q.Offset = r.byTP[broker.TopicPartition{Topic: q.Topic, Partition: q.Partition}].next
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
		applied += uint64(j - i)
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
		if s.warmup {
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

// listEnds lists the changelogs' ends of the copies that are behind, for
// the lag; a failure leaves the ends as they were.
func (r *standbyRun) listEnds(ctx context.Context) {
	r.listed = time.Now()
	for _, s := range r.stores {
		if s.atEnd {
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
// copies are behind the ends last known.
func (r *standbyRun) publishLag() {
	var lag int64
	for _, s := range r.stores {
		lag += max(0, s.end-s.next)
	}
	r.a.m.standbyLag.Store(lag)
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
