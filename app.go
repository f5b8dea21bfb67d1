package duality

import (
	"context"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/dsl"
	"github.com/duality-streams/duality/internal/runtime"
	"github.com/duality-streams/duality/internal/topology"
	"github.com/duality-streams/duality/store"
	"github.com/duality-streams/duality/stream"
)

// App runs a topology against a broker as one member of the consumer group
// named by its app id. Create it with [New] and run it with [App.Run]
// (until canceled: the hot path) or [App.RunToEnd] (a bounded input to
// its end: a batch job, a backfill). Metrics is safe for concurrent use;
// an App runs once: Run or RunToEnd may be called once.
type App struct {
	rt    *runtime.App
	appID string
	topo  *dsl.Topology
}

// New returns an App that runs topo on b. appID names the app: it is the
// consumer group and the prefix of internal topics ("<appID>-<name>"), so it
// must be a valid topic name. New does not touch the broker and starts no
// goroutine. It returns an error matching [ErrInvalidConfig] for a bad app
// id, a nil broker or invalid options, and one matching
// [ErrInvalidTopology] for a topology the runtime cannot run; all problems
// are reported at once.
func New(appID string, topo *stream.Topology, b broker.Broker, opts ...Option) (*App, error) {
	cfg := runtime.DefaultConfig()
	for _, o := range opts {
		if o != nil {
			o.apply(&cfg)
		}
	}
	if text := (*dsl.Topology)(topo).Describe(appID); text != "" {
		// Published when Run starts, for duality describe.
		cfg.Descriptions = map[string]string{
			topology.DescriptionText:    text,
			topology.DescriptionMermaid: (*dsl.Topology)(topo).Mermaid(appID),
		}
	}
	rt, err := runtime.New(appID, dsl.Unwrap((*dsl.Topology)(topo)), b, cfg)
	if err != nil {
		return nil, err
	}
	return &App{rt: rt, appID: appID, topo: (*dsl.Topology)(topo)}, nil
}

// Describe returns the description of the app's topology
// ([stream.Topology.Describe]) with the names the app gives its internal
// topics on the broker: "<appID>-<name>-repartition" for a repartition
// topic, "<appID>-<store>-changelog" for a store's changelog. It is safe
// for concurrent use.
func (a *App) Describe() string { return a.topo.Describe(a.appID) }

// Mermaid returns the app's topology as a Mermaid flowchart
// ([stream.Topology.Mermaid]) with the names the app gives its internal
// topics on the broker, as [App.Describe] does. It is safe for concurrent
// use.
func (a *App) Mermaid() string { return a.topo.Mermaid(a.appID) }

// Graph returns the app's topology as nodes and edges
// ([stream.Topology.Graph]), the structure [App.Mermaid] draws, with the
// names the app gives its internal topics on the broker. It is safe for
// concurrent use.
func (a *App) Graph() stream.Graph { return a.topo.Graph(a.appID) }

// ID returns the app id the app was created with (see [New]).
func (a *App) ID() string { return a.appID }

// Run runs the app until ctx is canceled or a fatal error occurs.
//
// It first checks that every external source and sink topic exists (a
// *[MissingTopicsError] lists those that do not), creates missing internal
// topics, publishes the topology's descriptions ([App.Describe],
// [App.Mermaid]) to the compacted topic "<appID>-topology", where the
// duality command's describe reads them (a failure to publish is logged
// at Warn and the app goes on), bootstraps the global stores (up to the end of their topics;
// then a goroutine follows the topics until Run returns) and joins the
// group. On every assignment it creates the tasks for
// the assigned partitions, resumes them from the group's committed offsets
// (the earliest offset when none is committed) and runs them on the
// workers. On a rebalance it stops the workers between two records,
// commits, closes the tasks and starts the new task set.
//
// When ctx is canceled, Run stops the workers between two records (the
// records fetched but not processed are processed by the next run),
// flushes and commits, closes the tasks, leaves the group and
// returns nil. A fatal error (a processing error under [FailOnError], a
// failed commit, a broker error) is returned wrapped with context; the
// other workers still commit their work. Run returns only after every
// goroutine it started has exited, so it also waits for processors: a
// Process call that never returns blocks shutdown. The one exception is a
// broker call still running [ShutdownTimeout] after Run began to stop:
// Run abandons it and returns an error matching [ErrShutdownTimeout]
// that says what was not committed; the call's goroutine exits when the
// call returns. A failure is also
// logged, once, at Error with the app's [Logger] ("run failed", with the
// attributes "app" and "error"). A second call of Run or [App.RunToEnd]
// returns [ErrRunCalled].
func (a *App) Run(ctx context.Context) error { return a.rt.Run(ctx) }

// RunToEnd runs the app over a bounded input: the records its source
// topics hold when it starts. It processes them through every stage of
// the topology, then advances stream time to the end so that every window
// closes, commits and returns nil. Kafka Streams has no such mode; with
// it, one topology serves the hot path ([App.Run], following the topics)
// and a batch or backfill job over the same topics (the lambda
// architecture's hot and cold paths from one codebase).
//
// It starts as Run does (topics checked and created, global stores
// bootstrapped, the group joined), then lists the end offset of every
// partition of the external source topics: that is the end of the input.
// Records appended after that are not processed, and a partition at its
// end never holds a task back (see [MaxTaskIdle]). Topics the topology
// writes and reads (repartition topics, a foreign-key join's internal
// topics, an external topic it writes with To and reads back) carry the
// work of earlier stages: they are read until caught up. Global stores
// are bootstrapped and then followed as with Run. Tasks resume
// from the group's committed offsets, as with Run, so a run over input a
// previous run of the app id processed processes only what was appended
// since.
//
// The input is processed when the group's committed offsets say so: every
// external source partition's at or past its end, every partition of the
// topics the topology writes and reads at its latest offset. The app
// commits a task's output with its input offsets, so all output is then
// written. RunToEnd then advances the sub-topologies to the end of time
// ([stream.MaxTimestamp]), upstream ones first: each task's stream time
// moves through the due times of its windows and joins in order to
// MaxTimestamp, firing the stream-time punctuations due on the way, as if
// input had gone on. Windowed aggregations close all their windows (with
// window.EmitOnWindowClose they emit every final result, sessions
// included), left and outer stream-stream joins emit their unmatched
// records, and
// [stream.Process] punctuators scheduled on stream time fire. What a
// sub-topology emits then is processed by the stages downstream before
// they are advanced in turn, so a downstream window never drops an
// upstream final result as late. Sub-topologies that feed each other in
// a cycle (a foreign-key join) are advanced together. Wall-clock
// punctuations run as with Run; [IdleStreamTimeAdvance] is ignored (the
// end advance closes the windows instead, independently of the speed of
// the run). A window whose end plus grace falls after MaxTimestamp (year
// 9999) does not close.
//
// Afterwards the app's state is at the end of time: every window has
// expired, and the stream time persisted by windowed steps is
// MaxTimestamp, so any later record is late for them. Give a bounded run
// of a topology with windows or joins its own app id (a new one per run
// of a batch job), not the hot path's. Without windows (counts, tables,
// stateless steps), repeated bounded runs under one app id continue from
// one another, each processing what was appended since.
//
// Errors are Run's. When ctx is canceled, RunToEnd stops and commits as
// Run does, then returns an error matching ctx's error (context.Canceled
// or context.DeadlineExceeded): the run did not reach the end, and a
// later run of the app id resumes the input from what was committed. The
// run's decision that the input is processed holds for any number of
// workers ([Workers]); with several instances of the app, each advances
// only its own tasks, and the order between instances is not
// coordinated: run a bounded job as one instance. A second call of
// RunToEnd or [App.Run] returns [ErrRunCalled].
func (a *App) RunToEnd(ctx context.Context) error { return a.rt.RunToEnd(ctx) }

// Metrics returns a snapshot of the app's counters. It is cheap and safe
// for concurrent use. Workers publish their record counts after every
// fetched batch, so the counts lag processing by at most one batch.
func (a *App) Metrics() Metrics { return a.rt.Metrics() }

// StateMetrics returns the metrics of the app's state database (see
// [StateDir]) while Run runs: its stores and size on disk, the memory its
// Pebble holds in memtables (zombies included: flushed ones still read
// or kept for reuse) and in its block cache, its open tables, write-ahead
// log and compaction debt. Pebble allocates memtables and cached blocks
// outside the Go heap, so they show in the process's resident memory but
// not in runtime.MemStats. Without StateDir (state in memory), before Run
// opens the state, after it closes it, and while corrupt state is being
// rebuilt, it returns an error matching [ErrStoreNotReady]. It is safe
// for concurrent use; it takes Pebble's lock briefly, so sample it every
// few seconds rather than per record.
func (a *App) StateMetrics() (store.Metrics, error) { return a.rt.StateMetrics() }

// Metrics is a snapshot of an app's counters since New, returned by
// [App.Metrics]. The counters cover the whole app (all workers, all
// generations):
//
//   - RecordsProcessed counts the input records processed without error,
//     also those whose output a later failure or fencing discarded;
//     RecordsSkipped those skipped under [SkipOnError]; ItemsSkipped the
//     items steps emitted on their own that SkipOnError skipped (the
//     record, punctuation or flush that emitted them went on).
//   - Commits counts the successful broker commits, LastCommitDuration is
//     how long the latest took, RecordsProduced counts the records they
//     appended, of which ChangelogRecords went to changelogs, and
//     CacheFlushes counts the commits made early because the record
//     caches held more than [CacheMaxBytes].
//   - EnforcedProcessing counts the records processed after waiting
//     [MaxTaskIdle] for a lagging partition (possibly out of timestamp
//     order).
//   - Punctuations counts the punctuator calls that succeeded.
//   - LateRecordsDropped counts the records windowed steps dropped as
//     late, attempts included: a record processed again counts again.
//   - RepartitionPurges counts the purges of internal topics' partitions
//     up to their committed offset (see [RepartitionPurgeInterval]).
//   - Tasks is the number of tasks of the current assignment (0 while
//     not running); Assignments counts the group assignments received.
//   - StateQuarantines counts the times the app found its [StateDir]
//     state corrupt (at open, or on a store's read or write), moved it
//     into the directory's quarantine directory and rebuilt every store
//     from its changelog (see the package documentation's "Corrupt
//     state").
//   - ProcessLatency is the distribution of the steps' time per input
//     record over every task (one record in [ProcessLatencySample]
//     measured), CommitLatency that of the successful commits' durations
//     and CommitRecords that of the records they appended.
//
// [App.TaskMetrics] breaks the counts down per task, partition, store and
// step.
type Metrics = runtime.Metrics
