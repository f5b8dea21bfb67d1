package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/topology"
	"github.com/duality-streams/duality/store"
)

// App runs a topology against a broker as one member of the consumer group
// named by its app id: the runtime behind duality.App, which documents
// its behaviour for users. Create it with [New] and run it with
// [App.Run]. Metrics and the store readers are safe for concurrent use;
// Run may be called once.
type App struct {
	appID string
	plan  *plan
	b     broker.Broker
	cfg   Config
	log   *slog.Logger
	ran   atomic.Bool
	m     metrics
	obs   observed // per-task metrics and distributions (taskmetrics.go)
	// db holds the stores while Run runs (nil without stores).
	db store.DB
	// pebble is db when it is a Pebble database that StateMetrics may
	// read: set after the database opens, cleared with the query gate
	// closed before it closes.
	pebble atomic.Pointer[store.PebbleDB]
	// maxRecordBytes is the broker's record size limit (0: none known):
	// Send refuses a larger record as an error of the record that made it.
	maxRecordBytes int
	// deadLetter is the dead-letter topic under the dead-letter policy
	// (Config.DeadLetter), "" otherwise.
	deadLetter string
	// iq is the registry of store partitions open for queries.
	iq queries
	// end is the state of a bounded run (RunToEnd), nil for Run. It is
	// set before the first generation starts.
	end *endRun
	// shut bounds the stop of Run, which sets it.
	shut *shutdown
	// glob runs the global stores while Run runs (nil without them).
	glob *globalRun
	// healed says Run has quarantined its state, when the commit count
	// was healCommits (see heal).
	healed      bool
	healCommits uint64
	// instanceID is Config.InstanceID or the id derived for it; slots are
	// the workers' consumers and committers (see workerSlot), created as
	// generations need them and closed when Run returns.
	instanceID string
	slots      []*workerSlot
	// standbyRd reads the changelogs of the standby tasks (standby.go),
	// created by the first generation that has some.
	standbyRd *reader
	// topics are the partition counts of the topics that exist, set
	// before Run joins the group (the placement reads them).
	topics map[string]int32
	// copies are the local copies of stateful tasks (copies.go).
	copies localCopies
	// probed are the warm-up numbers of the last generation whose
	// caught-up warm-ups made this member ask for a rebalance (see
	// standbyRun.probe).
	probed []int32
}

// New returns an App that runs topo, a topology package dsl validated, on
// b with cfg. appID names the app: it is the consumer group and the
// prefix of internal topics ("<appID>-<name>"), so it must be a valid
// topic name. New does not touch the broker and starts no goroutine. It
// returns an error matching [ErrInvalidConfig] for a bad app id, a nil
// broker or an invalid cfg, and one matching [ErrInvalidTopology] for a
// topology the app cannot run under appID (see newPlan); all problems are
// reported at once.
func New(appID string, topo *topology.Topology, b broker.Broker, cfg Config) (*App, error) {
	var errs []error
	if err := broker.ValidateTopicName(appID); err != nil {
		errs = append(errs, fmt.Errorf("%w: app id: %w", ErrInvalidConfig, err))
	}
	if b == nil {
		errs = append(errs, fmt.Errorf("%w: nil broker", ErrInvalidConfig))
	}
	errs = append(errs, cfg.validate())
	p, err := newPlan(appID, topo)
	errs = append(errs, err)
	dlq := deadLetterName(appID, &cfg)
	if p != nil && dlq != "" {
		errs = append(errs, p.checkDeadLetter(dlq))
		if len(cfg.Descriptions) > 0 && dlq == topology.TopologyTopic(appID) {
			errs = append(errs, fmt.Errorf("%w: dead-letter topic %q is where the app publishes its topology: dead letters need a topic of their own", ErrInvalidConfig, dlq))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	maxRecordBytes := 0
	if l, ok := b.(broker.RecordLimiter); ok {
		maxRecordBytes = l.MaxRecordBytes()
	}
	a := &App{
		maxRecordBytes: maxRecordBytes,
		deadLetter:     dlq,
		appID:          appID,
		plan:           p,
		b:              b,
		cfg:            cfg,
		log:            cfg.Logger.With(slog.String("app", appID)),
	}
	a.iq.endpoint = cfg.Endpoint
	if err := a.checkTopologyTopic(); err != nil {
		return nil, err
	}
	return a, nil
}

// ExternalTopics returns the topics of a's topology that Run needs to
// exist and does not create (see MissingTopicsError): the external source
// and sink topics and the topics of the global stores, sorted.
func (a *App) ExternalTopics() []string { return slices.Clone(a.plan.external) }

// Run runs the app until ctx is canceled or a fatal error occurs (see
// duality.App.Run for the contract): it checks and creates the topics
// (plan.ensureTopics), opens the state (StateDir, or memory), bootstraps
// the global stores and follows them on a goroutine, joins the group and
// runs one generation of workers per assignment (loop). It returns only
// after every goroutine it started has exited, except broker calls it
// abandoned at the shutdown's deadline (see shutdown). A second call of Run
// or RunToEnd returns [ErrRunCalled]. Run logs its failure, once, at Error
// ("run failed", with the error), and returns it: no other layer logs it.
func (a *App) Run(ctx context.Context) error { return a.runOnce(ctx, false) }

// RunToEnd is Run for a bounded input (see duality.App.RunToEnd and
// endRun): it processes the records its external sources hold when it
// joins the group, advances stream time to the end, commits and returns
// nil. A canceled ctx stops it as it stops Run, and it then returns an
// error matching ctx.Err(): the run did not reach the end. Its failure is
// logged as Run's.
func (a *App) RunToEnd(ctx context.Context) error { return a.runOnce(ctx, true) }

// runOnce runs the app once (run), bounded or not, and logs its failure.
func (a *App) runOnce(ctx context.Context, bounded bool) error {
	if !a.ran.CompareAndSwap(false, true) {
		return ErrRunCalled
	}
	err := a.run(ctx, bounded)
	if err != nil {
		a.log.Error("run failed", slog.Any("error", err))
	}
	return err
}

// run is Run, or RunToEnd when bounded, after runOnce's first-call check.
func (a *App) run(ctx context.Context, bounded bool) (err error) {
	// Run returns nil when it stops because ctx ended; a bounded run
	// returns the error, as it did not reach the end.
	canceled := func(err error) bool { return !bounded && ctx.Err() != nil && errors.Is(err, ctx.Err()) }
	if bounded {
		// The idle advance would move stream time with the clock while a
		// task waits for the records of an upstream stage, closing
		// windows early; the end advance closes them instead.
		a.cfg.IdleStreamTimeAdvance = 0
	}
	a.shut = newShutdown(ctx, a.cfg.ShutdownTimeout)
	defer a.shut.end()
	topics, err := a.plan.ensureTopics(ctx, a.b, a.deadLetter)
	if err != nil {
		if canceled(err) {
			return nil
		}
		return fmt.Errorf("duality: app %q: %w", a.appID, err)
	}
	a.publishTopology(ctx)
	static, err := a.resolveInstanceID()
	if err != nil {
		return fmt.Errorf("duality: app %q: %w", a.appID, err)
	}
	if err := a.openState(topics); err != nil {
		return fmt.Errorf("duality: app %q: %w", a.appID, err)
	}
	a.topics = topics
	if a.db != nil {
		a.copies.reset(a.db)
		a.copies.found(a.plan, topics)
	}
	defer func() {
		if cerr := a.closeState(); cerr != nil && err == nil {
			err = fmt.Errorf("duality: app %q: %w", a.appID, cerr)
		}
	}()
	defer func() {
		if cerr := errors.Join(a.closeSlots(), a.closeStandbys()); cerr != nil && err == nil {
			err = fmt.Errorf("duality: app %q: %w", a.appID, cerr)
		}
	}()
	if len(a.plan.globals) > 0 {
		// Global stores are bootstrapped before any task starts, then
		// followed by a goroutine of their own until Run returns.
		if gerr := a.startGlobals(ctx, topics); gerr != nil {
			if canceled(gerr) {
				return nil
			}
			return fmt.Errorf("duality: app %q: %w", a.appID, gerr)
		}
		defer func() {
			if cerr := a.stopGlobals(); cerr != nil && err == nil {
				err = fmt.Errorf("duality: app %q: %w", a.appID, cerr)
			}
		}()
	}
	var join broker.JoinOptions
	if static {
		join.InstanceID = a.instanceID
	}
	join.UserData = memberMeta{Endpoint: a.cfg.Endpoint}.encode()
	// At every join the instance advertises its local copies, and the
	// member that computes the group's assignment places the tasks
	// (placement.go).
	join.UserDataFunc = a.userData
	join.Balance = a.balance
	m, err := a.b.JoinGroup(ctx, a.appID, a.plan.sourceTopics, join)
	if err != nil {
		if canceled(err) {
			return nil
		}
		return fmt.Errorf("duality: app %q: join group: %w", a.appID, err)
	}
	a.log.Info("joined group", slog.String("member", m.MemberID()), slog.String("instance", a.instanceID),
		slog.Any("topics", a.plan.sourceTopics))
	if bounded {
		a.end, err = a.startEnd(ctx, topics)
	}
	if err == nil {
		err = a.loop(ctx, m, topics)
	}
	// The app stops, also when ctx has not ended (a fatal error, a
	// bounded run at its end): leaving the group is bounded too.
	a.shut.start()
	a.m.tasks.Store(0)
	if lerr := a.shut.call(m.Leave); lerr != nil {
		// Also beside a fatal error: an abandoned Leave is part of what
		// the shutdown's error reports.
		err = errors.Join(err, fmt.Errorf("leave group: %w", lerr))
	}
	if err != nil {
		return fmt.Errorf("duality: app %q: %w", a.appID, err)
	}
	a.log.Info("stopped")
	return nil
}

// openState opens the database of the app's stores, when the topology
// has any: Pebble in StateDir (quarantined and opened empty when it is
// corrupt, see openPebble), or memory. topics are the partition counts of
// the existing topics, which give the stores' partition counts to
// queries.
func (a *App) openState(topics map[string]int32) error {
	if !a.plan.hasStores() {
		return nil
	}
	if a.cfg.StateDirSet {
		db, err := a.openPebble()
		if err != nil {
			return fmt.Errorf("open state: %w", err)
		}
		a.db = db
		a.pebble.Store(db)
	} else {
		a.db = store.NewMemoryDB()
	}
	a.iq.setPartitions(a.plan, topics)
	return nil
}

// closeState closes what openState opened, once the queries in flight
// are done.
func (a *App) closeState() error {
	if a.db == nil {
		return nil
	}
	a.iq.stop() // waits for the queries in flight
	a.pebble.Store(nil)
	a.copies.reset(nil)
	if err := a.db.Close(); err != nil {
		return fmt.Errorf("close state: %w", err)
	}
	return nil
}

// loop follows the group's assignments until ctx ends, a worker fails or
// the goroutine following the global stores fails; in a bounded run
// (a.end) also until the input is processed to the end. A failure that
// corrupt local state caused, or corruption Pebble reports on its own
// (store.PebbleDB.Corrupted), is healed (see heal) and the loop goes on.
// topics are the partition counts of the topics known to exist.
func (a *App) loop(ctx context.Context, m broker.Membership, topics map[string]int32) error {
	var gen *generation
	e := a.end
	var progress <-chan struct{}
	var tick <-chan time.Time
	if e != nil {
		progress = e.progress
		t := time.NewTicker(endCheckInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		var failed <-chan struct{}
		var restored <-chan *task
		if gen != nil {
			failed, restored = gen.fails.signal, gen.restored
		}
		var advanced <-chan struct{}
		if e != nil && e.req != nil {
			advanced = e.req.done
		}
		var globalErr <-chan error
		if a.glob != nil {
			globalErr = a.glob.errc
		}
		// Corruption Pebble found where no caller gets an error: a
		// background compaction, a query.
		var corrupted <-chan struct{}
		pdb, _ := a.db.(*store.PebbleDB)
		if pdb != nil {
			corrupted = pdb.Corrupted()
		}
		select {
		case <-ctx.Done():
			var err error
			if gen != nil {
				err = gen.stop(stopReason{})
			}
			if e != nil {
				err = errors.Join(err, fmt.Errorf("bounded run stopped before the end of its input: %w", ctx.Err()))
			}
			return err
		case <-failed:
			err := gen.fails.take()
			if err == nil {
				break // taken by an earlier signal's take
			}
			if a.healable(err) {
				gen, err = a.heal(ctx, m, gen, topics, err)
				if err != nil {
					return a.stopped(ctx, err)
				}
				e.restarted()
				break
			}
			// Stop the other workers; they commit their own work.
			return errors.Join(err, gen.stop(stopReason{}))
		case <-corrupted:
			var err error
			gen, err = a.heal(ctx, m, gen, topics, pdb.CorruptionError())
			if err != nil {
				return a.stopped(ctx, err)
			}
			e.restarted()
		case err := <-globalErr:
			if a.healable(err) {
				gen, err = a.heal(ctx, m, gen, topics, err)
				if err != nil {
					return a.stopped(ctx, err)
				}
				e.restarted()
				break
			}
			if gen != nil {
				err = errors.Join(err, gen.stop(stopReason{}))
			}
			return err
		case asg, ok := <-m.Assignments():
			if !ok {
				err := errors.New("group membership ended")
				if gen != nil {
					err = errors.Join(err, gen.stop(stopReason{}))
				}
				return err
			}
			if asg.Lost {
				// The partitions may be another member's by now: stop
				// at once, dropping the uncommitted work, and start
				// again when the member has rejoined.
				a.log.Warn("assignment lost: the member fell out of the group; stopping the tasks until it rejoins",
					slog.Int64("generation", asg.Generation))
				if gen != nil {
					if err := gen.stop(stopReason{lost: true}); err != nil {
						return err
					}
					gen = nil
				}
				a.m.tasks.Store(0)
				a.iq.assign(nil, nil)
				break
			}
			a.m.rebalances.Add(1)
			if gen != nil {
				moved, err := a.rebalance(ctx, gen, asg)
				if err != nil {
					return a.stopped(ctx, errors.Join(err, gen.stop(stopReason{})))
				}
				if moved {
					break
				}
				if err := gen.stop(stopReason{next: &asg}); err != nil {
					return err
				}
				gen = nil
			}
			var err error
			if gen, err = a.start(ctx, m, asg, topics); err != nil {
				return a.stopped(ctx, err)
			}
			e.restarted()
		case t := <-restored:
			if err := a.handOff(ctx, gen, t); err != nil {
				return a.stopped(ctx, errors.Join(err, gen.stop(stopReason{})))
			}
		case <-tick:
			e.poke()
		case <-progress:
			if gen == nil || e.req != nil {
				break
			}
			done, err := a.endStep(ctx, gen, e)
			if err != nil {
				if ctx.Err() == nil && !broker.IsRetryable(err) {
					return errors.Join(fmt.Errorf("bounded run: %w", err), gen.stop(stopReason{}))
				}
				// Checked again after the next commit or tick.
				a.log.Debug("bounded run: completion check failed", slog.Any("error", err))
			}
			if done {
				a.log.Info("bounded run: input processed to the end")
				return gen.stop(stopReason{})
			}
		case <-advanced:
			e.req = nil
			e.advanced++
			e.poke()
		}
	}
}

// stopReason says why a generation stops: next is the new assignment of a
// rebalance, nil for a shutdown; heal says the local state is corrupt
// (see App.heal): the workers drop their uncommitted work, which the
// next generation redoes from the committed offsets, and the app goes on.
type stopReason struct {
	next *broker.Assignment
	heal bool
	// lost says the member fell out of the group (Assignment.Lost): the
	// workers drop their uncommitted work, as for heal, and the tasks
	// start again at the next assignment.
	lost bool
}

// generation is the set of workers running one assignment, and the ones
// after it that cooperative rebalances moved it to (see rebalance.go).
// Only the app's loop reads and writes its fields but fails and wg.
type generation struct {
	asg      broker.Assignment
	workers  []*worker
	shut     *shutdown
	ctx      context.Context // the workers' and the replica run's
	cancel   context.CancelFunc
	reason   stopReason
	decided  chan struct{} // closed once reason is set
	wg       sync.WaitGroup
	fails    failures // of its goroutines
	memberID string
	topics   map[string]int32
	cacheMax int64 // each worker's share of CacheMaxBytes
	// owner gives the worker (index in workers) running each task.
	owner map[topology.TaskID]int
	// replicas keeps the standby and warm-up replicas current and
	// restores the tasks that move here in a cooperative rebalance
	// (standby.go; nil: not started).
	replicas *standbyRun
	// restoring are the tasks of the assignment that replicas restores
	// before a worker runs them; restored carries each once it is
	// (see App.handOff).
	restoring map[topology.TaskID]*task
	restored  chan *task
	// rebalance asks the group for a rebalance (the membership's).
	rebalance func(context.Context) error
}

// failures collects the errors of a generation's goroutines (workers,
// the replacements a cooperative rebalance starts, the replica run):
// adding one never blocks, however many there are.
type failures struct {
	mu struct {
		sync.Mutex
		errs []error
	}
	// signal (buffered) is signaled by add; the loop then takes the errors.
	signal chan struct{}
}

func newFailures() failures { return failures{signal: make(chan struct{}, 1)} }

// add records err and signals it.
func (f *failures) add(err error) {
	f.mu.Lock()
	f.mu.errs = append(f.mu.errs, err)
	f.mu.Unlock()
	select {
	case f.signal <- struct{}{}:
	default:
	}
}

// take returns the errors added since the last take, joined (nil: none).
func (f *failures) take() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	err := errors.Join(f.mu.errs...)
	f.mu.errs = nil
	return err
}

// stop tells the workers why they stop, interrupts their fetches and waits
// until all have exited. It returns their errors. Without a next
// assignment, unless the app goes on (heal, a lost assignment), the app
// stops: the shutdown's deadline starts, so that the workers' last
// commits are bounded whatever stopped the app. (The deadline cannot be
// taken back: started for a lost assignment, it canceled every broker
// call of the app ShutdownTimeout later, and the app failed with
// ErrShutdownTimeout while it ran on.)
func (g *generation) stop(r stopReason) error {
	if r.next == nil && !r.heal && !r.lost {
		g.shut.start()
	}
	g.reason = r
	close(g.decided)
	g.cancel()
	g.wg.Wait()
	return g.fails.take()
}

// stopped returns err, the failure of a (re)start of the tasks or of the
// state under them, as loop returns it: nil when it is Run's ctx ending
// (a bounded run reports it, as it did not reach the end).
func (a *App) stopped(ctx context.Context, err error) error {
	if a.end == nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return nil
	}
	return err
}

// globalRun is the goroutine that follows the global stores.
type globalRun struct {
	g      *globals
	cancel context.CancelFunc
	done   chan struct{}
	errc   chan error // its failure (buffered)
}

// startGlobals opens the global stores in a.db, bootstraps them, makes
// them readable and starts following them (a.glob) until stopGlobals. On
// failure it closes what it opened.
func (a *App) startGlobals(ctx context.Context, topics map[string]int32) error {
	g, err := a.openGlobals(ctx, topics)
	if err != nil {
		return errors.Join(err, g.close())
	}
	a.iq.setGlobals(g.stores)
	gctx, cancel := context.WithCancel(ctx)
	r := &globalRun{g: g, cancel: cancel, done: make(chan struct{}), errc: make(chan error, 1)}
	go func() {
		defer close(r.done)
		if ferr := g.follow(gctx); ferr != nil {
			r.errc <- fmt.Errorf("global stores: %w", ferr)
		}
	}()
	a.glob = r
	return nil
}

// stopGlobals stops following the global stores, makes them unreadable
// and closes them; without global stores running it does nothing.
func (a *App) stopGlobals() error {
	r := a.glob
	if r == nil {
		return nil
	}
	a.glob = nil
	r.cancel()
	<-r.done
	a.iq.setGlobals(nil)
	if err := r.g.close(); err != nil {
		return fmt.Errorf("close global stores: %w", err)
	}
	return nil
}

// start creates the tasks of asg, resumes them from the committed offsets
// and starts the workers, and the standby tasks of the member (see
// standby.go).
func (a *App) start(ctx context.Context, m broker.Membership, asg broker.Assignment, topics map[string]int32) (*generation, error) {
	tasks := a.plan.tasksFor(asg)
	if err := a.resume(ctx, tasks); err != nil {
		return nil, err
	}
	n := min(a.cfg.Workers, len(tasks))
	a.iq.assign(tasks, a.owners(asg))
	a.m.tasks.Store(int64(len(tasks)))
	a.log.Info("assigned", slog.Int64("generation", asg.Generation),
		slog.Int("partitions", len(asg.Partitions)), slog.Int("tasks", len(tasks)), slog.Int("workers", n))

	gctx, cancel := context.WithCancel(ctx)
	g := &generation{asg: asg, shut: a.shut, ctx: gctx, cancel: cancel, decided: make(chan struct{}),
		fails: newFailures(), memberID: m.MemberID(), topics: topics, owner: map[topology.TaskID]int{},
		restoring: map[topology.TaskID]*task{}, restored: make(chan *task), rebalance: m.Rebalance}
	// CacheMaxBytes is the instance's bound: each worker gets an equal
	// share (at least a byte) for the record caches of its tasks' stores.
	// A cooperative rebalance that starts more workers shares it anew.
	if a.cfg.CacheMaxBytes > 0 {
		g.cacheMax = max(1, a.cfg.CacheMaxBytes/int64(max(n, 1)))
	}
	workers := make([]*worker, n)
	for i := range workers {
		w, err := a.newSlotWorker(ctx, g, i)
		if err != nil {
			cancel()
			return nil, err
		}
		workers[i] = w
	}
	g.workers = workers
	for i, t := range tasks {
		workers[i%n].add(t)
		g.owner[t.id] = i % n
	}
	for _, w := range workers {
		g.startWorker(w)
	}
	a.updateReplicas(g, nil, nil)
	return g, nil
}

// newSlotWorker returns a worker of g, without tasks, on the app's worker
// slot i.
func (a *App) newSlotWorker(ctx context.Context, g *generation, i int) (*worker, error) {
	s, err := a.workerSlot(ctx, i)
	if err != nil {
		return nil, err
	}
	w := newWorker(a, g, g.memberID, s, g.topics, g.cacheMax)
	w.idx = i
	w.exited = make(chan struct{})
	return w, nil
}

// startWorker runs w, a worker of g, on a goroutine of g.
func (g *generation) startWorker(w *worker) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer close(w.exited)
		if err := w.run(g.ctx); err != nil {
			g.fails.add(err)
		}
	}()
}

// resume sets the position of every partition of tasks: the group's
// committed offset, or the partition's earliest offset when none was
// committed.
func (a *App) resume(ctx context.Context, tasks []*task) error {
	var tps []broker.TopicPartition
	for _, t := range tasks {
		for _, ps := range t.parts {
			tps = append(tps, ps.tp)
		}
	}
	// FetchOffsets is stable: it includes every commit the broker accepted
	// before it, in particular one of the previous generation that passed
	// its fence check just before the rebalance, so no record is processed
	// twice (the broker conformance suite checks this).
	committed, err := a.b.FetchOffsets(ctx, a.appID, tps)
	if err != nil {
		return fmt.Errorf("fetch committed offsets: %w", err)
	}
	for _, t := range tasks {
		for _, ps := range t.parts {
			if a.end != nil {
				ps.stop = a.end.stop(ps.tp, a.plan.staged[ps.tp.Topic])
			}
			if off, ok := committed[ps.tp]; ok {
				ps.next, ps.known, ps.committed = off, true, off
				continue
			}
			offs, err := a.b.ListOffsets(ctx, ps.tp.Topic, ps.tp.Partition)
			if err != nil {
				return fmt.Errorf("list offsets of %s/%d: %w", ps.tp.Topic, ps.tp.Partition, err)
			}
			ps.next = offs.Earliest
		}
	}
	return nil
}
