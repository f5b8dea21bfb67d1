package duality

import (
	"log/slog"
	"time"

	"github.com/duality-streams/duality/internal/runtime"
	"github.com/duality-streams/duality/store"
)

// Option configures an [App]. Options are applied in order; a later option
// overrides an earlier one of the same kind. [New] validates them all at
// once and reports every problem in one error matching [ErrInvalidConfig].
type Option interface{ apply(*runtime.Config) }

type optionFunc func(*runtime.Config)

func (f optionFunc) apply(c *runtime.Config) { f(c) }

// Defaults of the options.
const (
	DefaultCommitInterval        = runtime.DefaultCommitInterval
	DefaultMaxUncommittedRecords = runtime.DefaultMaxUncommittedRecords
	DefaultFetchMaxWait          = runtime.DefaultFetchMaxWait
	DefaultFetchMaxRecords       = runtime.DefaultFetchMaxRecords
	DefaultCacheMaxBytes         = runtime.DefaultCacheMaxBytes
	DefaultMaxTaskIdle           = runtime.DefaultMaxTaskIdle
	DefaultRepartitionPurge      = runtime.DefaultRepartitionPurge
	DefaultShutdownTimeout       = runtime.DefaultShutdownTimeout
)

// Workers sets the number of worker goroutines that run tasks. An app runs
// min(n, tasks) workers and spreads its tasks over them. Default
// runtime.GOMAXPROCS(0). n must be at least 1.
func Workers(n int) Option { return optionFunc(func(c *runtime.Config) { c.Workers = n }) }

// CommitInterval sets how often a worker commits: it flushes its tasks and
// appends their output together with their input offsets in one atomic
// broker commit. The interval is kept however slow the steps are: once it
// has passed (and the commit before has finished), the worker commits
// between two records, also in the middle of a fetched batch. It also
// bounds the work a crash makes the app redo and, with the broker's
// latency, how long output waits to be visible. Default
// [DefaultCommitInterval] (100 ms). d must be positive.
func CommitInterval(d time.Duration) Option {
	return optionFunc(func(c *runtime.Config) { c.CommitInterval = d })
}

// MaxUncommittedRecords makes a worker commit before the commit interval
// elapses when its buffered output records plus the changelog records its
// tasks' store writes will make (one per written key with the record
// cache, one per write without, see [CacheMaxBytes]) exceed n, which
// bounds memory.
// Default [DefaultMaxUncommittedRecords] (100000). n must be at least 1.
func MaxUncommittedRecords(n int) Option {
	return optionFunc(func(c *runtime.Config) { c.MaxUncommittedRecords = n })
}

// CacheMaxBytes bounds the record cache of the app instance's state
// stores, in bytes: the uncommitted writes of each store partition are kept
// as the newest value per key (a write-back cache), so repeated updates of
// a hot key between two commits cost one changelog record and one store
// write. The bound is for the whole instance and is divided equally among
// the workers of each assignment (as Kafka Streams divides
// statestore.cache.max.bytes among its stream threads); a worker whose
// caches hold more than its share commits early, which empties them. A
// cached entry counts its key and value bytes plus a fixed per-entry
// overhead (96 bytes); during a commit, the cache being written is held
// besides the new one. Output records and written keys are also bounded by
// [MaxUncommittedRecords].
//
// n = 0 turns the cache off: every store write is then its own changelog
// record, in write order, and the store applies them in that order at the
// commit ([Metrics].ChangelogRecords shows the difference). Default
// [DefaultCacheMaxBytes] (10 MiB, as Kafka Streams). n must not be
// negative.
func CacheMaxBytes(n int64) Option {
	return optionFunc(func(c *runtime.Config) { c.CacheMaxBytes = n })
}

// FetchMaxWait bounds how long a worker's fetch waits for new input when
// none is available. A worker with uncommitted work waits at most until its
// next commit is due, and shutdown and rebalances interrupt the wait, so
// this only matters for idle workers. Default [DefaultFetchMaxWait]
// (500 ms). d must be positive.
func FetchMaxWait(d time.Duration) Option {
	return optionFunc(func(c *runtime.Config) { c.FetchMaxWait = d })
}

// FetchMaxRecords bounds the records one fetch of a worker returns over all
// its partitions. Default [DefaultFetchMaxRecords] (10000). n must be at
// least 1.
func FetchMaxRecords(n int) Option {
	return optionFunc(func(c *runtime.Config) { c.FetchMaxRecords = n })
}

// Logger sets the app's logger. The runtime logs lifecycle events at Info
// (joins, assignments, fencing), skipped records, offset resets and
// records windowed steps drop as late (rate-limited) at Warn, the failure
// [App.Run] returns at Error, and uses the stable attribute keys "app", "task", "topic", "partition" and
// "offset". Default: discard everything.
func Logger(l *slog.Logger) Option { return optionFunc(func(c *runtime.Config) { c.Logger = l }) }

// Clock sets the app's wall clock: what processors read as the time (for
// example to stamp records), what drives wall-clock punctuations, the
// [MaxTaskIdle] wait and the [IdleStreamTimeAdvance]. Tests inject a clock
// they move themselves; the runtime re-reads it at least every
// [FetchMaxWait]. Commit and purge timing ([RepartitionPurgeInterval])
// always use the real clock. Default time.Now.
func Clock(now func() time.Time) Option { return optionFunc(func(c *runtime.Config) { c.Clock = now }) }

// MaxTaskIdle bounds how long a task that reads several partitions (the
// co-partitioned topics of a join or a merge) holds back its buffered
// records while one of its partitions has none buffered but has records
// not fetched yet.
//
// A task processes its buffered records in timestamp order: always the
// head record with the smallest timestamp over its partitions (ties: the
// source listed first), as Kafka Streams' PartitionGroup does. That order
// needs a record of every partition; when a partition has none buffered
// and the broker lists its end offset past the task's fetch position (for
// example when the app starts with a backlog: a table topic written an
// hour before the orders that join with it), the task waits while the
// worker fetches them, at most d by the [Clock], then processes the other
// partitions' records anyway (counted in [Metrics].EnforcedProcessing).
// The wait normally lasts one fetch. A partition that is caught up (no
// records beyond its fetch position) never holds a task back, so a sparse
// input adds no latency.
//
// Kafka Streams' max.task.idle.ms differs: its default 0 waits for a
// lagging partition without a time bound, and a positive value also waits
// that long for caught-up partitions (for producers that are late); this
// runtime does not wait for caught-up partitions.
//
// d <= 0 turns waiting off: buffered records are still taken smallest
// timestamp first, but a partition without buffered records never holds
// the others back. Default [DefaultMaxTaskIdle] (10 s).
func MaxTaskIdle(d time.Duration) Option {
	return optionFunc(func(c *runtime.Config) { c.MaxTaskIdle = d })
}

// IdleStreamTimeAdvance lets an idle task's stream time move with the
// [Clock]: once a task has processed no input for d (and has none
// buffered), its stream time advances with the clock from the stream
// time of its last input, d behind: after an idle time of d+x it is the
// last input's stream time plus x. Stream-time punctuations fire as it
// advances, so windowed aggregations that close windows from a
// punctuation emit final results although input stopped.
//
// By default (d = 0) stream time moves only with records, as in Kafka
// Streams, where a task whose input stops keeps its last windows open,
// and final results (suppress, emit on window close) wait for the next
// record, however long that takes. The advance is a heuristic: a record
// that arrives later with a timestamp below the advanced stream time is
// late for the windows the advance closed. The runtime does not persist
// stream time itself: after a restart or a rebalance a task's stream time
// starts again at its first record, unless a step of the task persisted
// one (package window's steps with WithTaskStreamTime do): the task then
// starts from the largest of those, and its idle advance starts once it
// has caught up with its partitions (a backlog is processed first). d
// must not be negative.
func IdleStreamTimeAdvance(d time.Duration) Option {
	return optionFunc(func(c *runtime.Config) { c.IdleStreamTimeAdvance = d })
}

// RepartitionPurgeInterval sets how often a worker purges the internal
// topics it reads (repartition topics, and a foreign-key join's
// subscription and response topics; never changelogs): at most every d,
// after a successful commit, it deletes the records of each partition it
// owns below the offset committed for it ([broker.Broker] DeleteRecords),
// in the background, without holding up processing. Those records are
// processed and their results committed, so nothing reads them again.
// Kafka Streams does the same (repartition.purge.interval.ms). Without
// purging, these topics keep every record (they have no time retention,
// see the package documentation) and grow with the input. A failed purge
// is logged at Warn and retried at the next interval; it never fails the
// app. [Metrics].RepartitionPurges counts the partition purges. The
// interval is timed by the real clock, like commits. d = 0 turns purging
// off; d must not be negative. Default [DefaultRepartitionPurge] (30 s,
// as Kafka Streams).
func RepartitionPurgeInterval(d time.Duration) Option {
	return optionFunc(func(c *runtime.Config) { c.RepartitionPurgeInterval = d })
}

// ShutdownTimeout bounds how long [App.Run] waits for the broker once it
// stops (its context ended, a fatal error, or the end of [App.RunToEnd]'s
// input): the workers stop between
// two records, flush and commit, and the app leaves its group, and d
// after the stop began Run gives up waiting for the broker calls still
// running, even calls that ignore their context (a hung broker). What it
// abandons it returns in an error matching [ErrShutdownTimeout] (logged
// at Error like every failure of Run), naming the tasks, the number of
// records and the input offsets that were not committed, or whose commit
// was still running (the broker applies a commit entirely or not at all;
// either way a restart resumes from the offsets it finds committed).
// An abandoned call's goroutine exits when the call returns, after Run.
// The bound covers broker calls, not processing: a step that never
// returns still blocks Run. Default [DefaultShutdownTimeout] (30 s). d
// must be positive.
func ShutdownTimeout(d time.Duration) Option {
	return optionFunc(func(c *runtime.Config) { c.ShutdownTimeout = d })
}

// StateDir keeps the app's state stores in one Pebble database in dir
// (created if missing; one App per directory at a time), opened by Run
// with [store.OpenPebble] and opts, which tune Pebble (block cache,
// memtable, bloom filters; the store package's tuned values by default).
// The database logs through the app's [Logger] unless opts set another.
// On start each store catches up from the changelog offset it recorded,
// so a restart reads only the changelog records written since. Default:
// state in memory, rebuilt from the changelog topics at every start —
// correct, but a start then reads every changelog from its beginning. dir
// must not be empty; invalid opts make Run fail with an error matching
// store.ErrInvalidConfig. A corrupt database is moved aside under
// dir/quarantine and rebuilt from the changelogs (see "Corrupt state" in
// the package documentation).
func StateDir(dir string, opts ...store.Option) Option {
	return optionFunc(func(c *runtime.Config) { c.StateDir, c.StateDirSet, c.StateOptions = dir, true, opts })
}

// InstanceID sets the app instance's stable identity: the same id across
// restarts of one instance, a different one for every instance of the
// app running at the same time. Each worker commits through a committer
// whose id is "<app id>-<instance id>-<worker index>" (on Kafka, its
// transactional id); a restarted instance's committers fence those of its
// previous run, so a zombie of that run (a process that stalled rather
// than died) can no longer commit. With an id set, the instance also
// joins the group as a static member of that id (Kafka's
// group.instance.id): a restart within the session timeout keeps its
// partitions, and a stop does not leave the group (its partitions wait
// for the restart, or for the session timeout).
//
// Default: the id kept in the [StateDir] directory, in the file
// DUALITY-INSTANCE-ID, which the first run writes with a random id, so
// each state directory is one instance (its committers fence their
// zombies; the member is dynamic, as in Kafka Streams without
// group.instance.id); without StateDir, a random id per run, which fences
// no zombie of an earlier run. Two instances running
// with the same id fence each other: give each its own. id must be 1 to
// 200 ASCII letters, digits, '.', '_' or '-'.
func InstanceID(id string) Option {
	return optionFunc(func(c *runtime.Config) { c.InstanceID, c.InstanceIDSet = id, true })
}

// NumStandbyReplicas keeps n standby replicas of each stateful task:
// warm copies of the task's stores in the state of n other instances of
// the app, kept current from the stores' changelogs (committed records
// only) as the active task writes them. When the active instance stops
// or fails and the task moves to an instance that holds a standby copy,
// the task restores only the changelog records the copy had not applied
// yet, instead of the whole changelog, so it resumes processing sooner
// (Kafka Streams' num.standby.replicas). Each instance follows the
// changelogs of all its standby tasks on one goroutine, beside its
// workers; standby copies are not open for queries and never write to
// the changelogs. [Metrics] reports StandbyTasks, StandbyRecords and
// StandbyLag.
//
// Standbys are placed with the tasks (see [MaxWarmupReplicas]): never on
// the instance that runs the task nor on one that warms it up, first on
// the instances whose copy of the task's state is the most advanced (a
// standby stays where it is), then on the least loaded; fewer than n
// when the group has n members or fewer (none for a single instance). A
// task whose instance leaves moves to a caught-up standby. Copies
// live in [StateDir] when set (memory otherwise, where they help only
// while the instance runs); a standby copy of corrupt local state is
// rebuilt with the rest of it (see "Corrupt state" in the package
// documentation). Default 0 (no standby replicas). n must not be
// negative.
//
// Measured (benchmarks/failover, a 1M-key count store, the time from the
// stop of its instance until another has processed a new record, medians
// on a loaded 2-core machine): 5.9 s without standby and 0.42 s with one
// on the embedded broker, 14.8 s and 0.41 s on Kafka (kfake); with the
// standby, the other instance restored no record and the takeover was
// the stopping instance's own stop.
func NumStandbyReplicas(n int) Option {
	return optionFunc(func(c *runtime.Config) { c.NumStandbyReplicas = n })
}

// MaxWarmupReplicas bounds the warm-up replicas of the group at once
// (Kafka Streams' max.warmup.replicas). Tasks are placed as Kafka
// Streams' high-availability assignor places them: every instance tells
// the group, when it joins, how far its local copy of each stateful
// task's state goes, and a stateful task goes only to an instance that
// is caught up on it (within [AcceptableRecoveryLag]). When balance wants
// a task on an instance that is not (a new instance, when the app scales
// out), the task stays where it runs and the new instance gets a warm-up
// replica of it: a copy of its stores it keeps current from their
// changelogs, as a standby does ([NumStandbyReplicas]). Once the copy has
// caught up, the instance asks for a probing rebalance (see
// [ProbingRebalanceInterval]) that moves the task, which then restores
// only the tail of its changelog: scaling out never pauses a task for a
// full restore. At most n partitions are warmed up at once (the tasks
// of all sub-topologies at one partition number move together, as they
// are assigned together); the others wait for a later rebalance, on
// their instance. [Metrics] reports
// WarmupTasks and ProbingRebalances. Stateless tasks move at once.
// Default 2; n must be at least 1.
func MaxWarmupReplicas(n int) Option {
	return optionFunc(func(c *runtime.Config) { c.MaxWarmupReplicas = n })
}

// AcceptableRecoveryLag is how many changelog offsets (summed over a
// task's stores) an instance's copy of a task's state may be behind the
// most advanced copy in the group and still count as caught up, so that
// the task may move there with a short restore instead of a warm-up (see
// [MaxWarmupReplicas]; Kafka Streams' acceptable.recovery.lag, whose
// leader measures against the changelogs' end offsets: here the instance
// that runs the task advertises its committed position, the end as of its
// last commit). The instance that ran a task in the previous generation
// is caught up whatever its lag. Default 10000; lag must not be
// negative.
func AcceptableRecoveryLag(lag int64) Option {
	return optionFunc(func(c *runtime.Config) { c.AcceptableRecoveryLag = lag })
}

// ProbingRebalanceInterval is the most time an instance with warm-up
// replicas (see [MaxWarmupReplicas]) waits before it asks the group for a
// probing rebalance, which moves the tasks whose warm-ups have caught up
// and places new warm-ups (Kafka Streams' probing.rebalance.interval.ms).
// An instance asks at once when all its warm-ups have caught up, once per
// set of warm-ups; the interval bounds the wait when they catch up
// while their task moves on, and spaces out the probes after that: it
// runs from the instance's first assignment with warm-ups, or its last
// probe, and other cooperative rebalances meanwhile do not restart it.
// Every probing rebalance is a rebalance of the group. Default 10
// minutes; d must be positive.
func ProbingRebalanceInterval(d time.Duration) Option {
	return optionFunc(func(c *runtime.Config) { c.ProbingRebalanceInterval = d })
}

// Endpoint sets the URL at which this instance answers queries, which it
// advertises to the other instances of the app through the group (in its
// member metadata): an absolute http or https URL with a host and an
// optional path, e.g. "http://10.0.0.7:8080", reachable by the other
// instances, where an [httpquery] handler (or a query service of your
// own) is served. With it, a query on another instance for a key this
// instance owns fails with a *[NotOwnedError] whose Owner is endpoint,
// [ReadOnlyStore.Owner] names it, and httpquery forwards such requests
// here, so that any instance answers any key (see "Queries across
// instances" in the README). Default: none; the instance's keys are
// still answered by itself, and other instances report them as owned by
// an instance without endpoint. An endpoint that is not such a URL, has
// user information (every member of the group sees it), a query or a
// fragment, or exceeds 2048 bytes is an error of [New] matching
// [ErrInvalidConfig].
//
// [httpquery]: https://pkg.go.dev/github.com/duality-streams/duality/httpquery
func Endpoint(endpoint string) Option {
	return optionFunc(func(c *runtime.Config) { c.Endpoint, c.EndpointSet = endpoint, true })
}

// ProcessingGuarantee sets what a worker's commit promises about the input
// it covers: [ExactlyOnce] (the default) or [AtLeastOnce], Kafka Streams'
// processing.guarantee exactly_once_v2 and at_least_once. Any other
// value makes [New] fail with an error matching [ErrInvalidConfig].
//
// Under ExactlyOnce each commit is atomic: output records, changelog
// records and input offsets become visible together or not at all
// (on Kafka one transaction per commit, see "Commits and exactly-once" in
// the package documentation). Under AtLeastOnce a commit appends the
// output and changelog records, waits until the broker has acknowledged
// every one, and only then commits the input offsets, fenced by the group
// generation as before. A crash, or a fenced or failed commit, between
// the two leaves records whose input is processed again: output records
// appear twice downstream, and an aggregate restored from its changelog
// can count that input twice. No input is ever lost: offsets are only
// committed after everything their input produced. Reads stay
// read_committed. Side effects outside the broker are at-least-once
// under either guarantee.
//
// On Kafka, AtLeastOnce uses an idempotent producer without transactions
// and commits offsets with OffsetCommit: no transaction round trips, no
// commit markers, no wait for the last stable offset. On the embedded
// broker it changes nothing: a commit is one Pebble batch behind one
// write-ahead-log sync whichever the guarantee, so the broker keeps its
// atomic commits and an app gets exactly-once there at the same cost.
//
// Measured on an in-process kfake cluster (go run ./benchmarks/guarantee;
// figures in the README, "Moving from the embedded broker to Kafka"): a
// commit of 100 records and one offset takes 0.54 ms instead of 1.6 ms,
// and a keyed count runs about 1.2 times as fast with 10 to 22% less CPU
// per record, a gain close to the noise of the 2-core machine measured.
// The saving is per commit (the transaction's round trips and markers),
// so it grows with the network's round-trip time and with the number of
// commits.
//
// Switching an app from ExactlyOnce to AtLeastOnce after a run that
// crashed: the transactions that run left open hold back read_committed
// readers of the partitions it wrote until the cluster aborts them at
// their timeout (kafka.WithTransactionTimeout), since the new run opens
// no transactional producer that would abort them at once.
func ProcessingGuarantee(g Guarantee) Option {
	return optionFunc(func(c *runtime.Config) { c.Guarantee = g })
}

// Guarantee is a processing guarantee, set by [ProcessingGuarantee]. Its
// String method returns Kafka Streams' name for it.
type Guarantee = runtime.Guarantee

// The processing guarantees.
const (
	// ExactlyOnce commits output, changelog records and input offsets
	// atomically: neither lost nor repeated after a crash. The default.
	ExactlyOnce = runtime.ExactlyOnce
	// AtLeastOnce commits the input offsets after the records their input
	// produced are durable: never lost, repeated after a crash.
	AtLeastOnce = runtime.AtLeastOnce
)

// OnRestore sets a hook that reports the restoration of a store partition
// from its changelog, before its task processes input: called after each
// applied batch of changelog records but the last, then once with Done
// set, from the goroutine that restores it: the worker that will run the
// task when an assignment starts, or, for a task that moves here in a
// cooperative rebalance, the instance's replica goroutine (the one that
// keeps standby copies), while the workers go on with their tasks. A
// partition already up to date is not reported. The hook must not block
// for long: it holds up that goroutine; it may be called concurrently by
// several of them. Restorations are also logged at Info (at the start,
// every 5 s, at the end) with the attributes "store" and "partition".
// Default: no hook.
func OnRestore(f func(RestoreProgress)) Option {
	return optionFunc(func(c *runtime.Config) { c.OnRestore = f })
}

// OnProcessingError sets what happens when a processor returns an error for
// an input record: [FailOnError] (the default), [SkipOnError] or
// [DeadLetterOnError].
func OnProcessingError(p ErrorPolicy) Option {
	return optionFunc(func(c *runtime.Config) {
		c.SkipOnError, c.OnSkip = p.skip, p.callback
		c.DeadLetter, c.DeadLetterTopic = p.deadLetter, p.topic
	})
}

// ErrorPolicy says what the runtime does when a processor fails on a
// record. The zero value is [FailOnError].
type ErrorPolicy struct {
	skip       bool
	callback   func(*ProcessingError)
	deadLetter bool
	topic      string
}

// FailOnError is the default policy: [App.Run] stops and returns the
// *[ProcessingError]. The failing worker's output since its last commit is
// discarded, not committed, so after fixing the cause a restart processes
// those records again from the last committed offsets. A record that can
// never be processed (a poison record, see [ProcessingError]) fails
// every restart: get past it with [DeadLetterOnError] or [SkipOnError].
func FailOnError() ErrorPolicy { return ErrorPolicy{} }

// SkipOnError skips failing records: the record's partial output (records
// the processor sent before failing) is dropped, its offset is committed as
// processed, it is logged at Warn and counted in [Metrics].RecordsSkipped,
// and callback, when not nil, is called with the error from the worker's
// goroutine (it must not block for long; it may be called concurrently by
// several workers).
//
// Steps also emit items on their own, which run the steps downstream of
// them: the changes table's EmitPerCommit holds and the updates window's
// CacheUpdates holds (emitted when the task flushes before a commit),
// windows' final results and joins' unmatched records (emitted while a
// record or punctuation moves stream time). Each item is a unit of its
// own: one that fails is skipped alone (its output and state changes are
// undone, the flush, record or punctuation goes on, and the item is not
// emitted again), logged at Warn, counted in [Metrics].ItemsSkipped, and
// passed to callback with a [ProcessingError] whose Step and Item name
// it (and Flush is set for a flush). Under [FailOnError] a failed item
// stops the app like a failed record.
func SkipOnError(callback func(*ProcessingError)) ErrorPolicy {
	return ErrorPolicy{skip: true, callback: callback}
}

// DeadLetterOnError sends failing records to a dead-letter topic: the
// record's partial output and state changes are dropped as under
// [SkipOnError], and the record itself (its key and value bytes,
// timestamp and headers, as the app read them) is written to the
// dead-letter topic in the same commit as its input offset, with headers
// that say what failed (see "Dead letters" in the package documentation:
// [DeadLetterErrorHeader], [DeadLetterStepHeader], [DeadLetterTopicHeader],
// [DeadLetterPartitionHeader], [DeadLetterOffsetHeader],
// [DeadLetterTaskHeader], [DeadLetterAppHeader]). Under [ExactlyOnce]
// every input record is then either processed, its output committed, or
// in the dead-letter topic, exactly once. The record is logged at Warn,
// counted in [Metrics].RecordsDeadLettered, and passed to callback when
// it is not nil (called from the worker's goroutine; it must not block
// for long; it may be called concurrently by several workers).
//
// The topic is "<app id>-dlq" unless [DeadLetterTopic] names another.
// [App.Run] creates it when it does not exist, with the partition count
// of the app's source topic that has the most (a dead letter goes to its
// record's partition number, modulo the count of an existing topic),
// cleanup by deletion, and no time retention (dead letters keep their
// records' timestamps, however old). An existing dead-letter topic that
// is compacted makes Run fail. Its name must not be a topic of the
// topology, or [New] fails with an error matching [ErrInvalidConfig].
//
// Errors that are not a record's (a punctuation's, or an item's a step
// emitted on its own, see [SkipOnError]) have no record to send: they are
// skipped as under SkipOnError, and passed to callback. An error that
// wraps one the broker reports as retryable (broker.IsRetryable: the
// broker failed, not the record, e.g. when a step sends to a topic and
// the broker cannot describe it) stops the app as [FailOnError] does, so
// that a good record never becomes a dead letter. A dead letter
// larger than the broker's record limit (its record's size plus the
// headers; the error text is cut after 8 KiB) stops the app as
// [FailOnError] would: nothing is lost, and the next run meets the record
// again.
func DeadLetterOnError(callback func(*ProcessingError), opts ...DeadLetterOption) ErrorPolicy {
	p := ErrorPolicy{skip: true, callback: callback, deadLetter: true}
	for _, o := range opts {
		if o != nil {
			o.apply(&p)
		}
	}
	return p
}

// DeadLetterOption configures [DeadLetterOnError].
type DeadLetterOption interface{ apply(*ErrorPolicy) }

type deadLetterOptionFunc func(*ErrorPolicy)

func (f deadLetterOptionFunc) apply(p *ErrorPolicy) { f(p) }

// DeadLetterTopic names the dead-letter topic of [DeadLetterOnError].
// Default "<app id>-dlq". A name that is not a valid topic name makes
// [New] fail with an error matching [ErrInvalidConfig]; an empty name
// keeps the default.
func DeadLetterTopic(name string) DeadLetterOption {
	return deadLetterOptionFunc(func(p *ErrorPolicy) { p.topic = name })
}
