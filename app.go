package duality

import (
	"context"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/dsl"
	"github.com/duality-streams/duality/internal/runtime"
	"github.com/duality-streams/duality/stream"
)

// App runs a topology against a broker as one member of the consumer group
// named by its app id. Create it with [New] and run it with [App.Run].
// Metrics is safe for concurrent use; Run may be called once.
type App struct {
	rt *runtime.App
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
	rt, err := runtime.New(appID, dsl.Unwrap((*dsl.Topology)(topo)), b, cfg)
	if err != nil {
		return nil, err
	}
	return &App{rt: rt}, nil
}

// Run runs the app until ctx is canceled or a fatal error occurs.
//
// It first checks that every external source and sink topic exists (a
// *[MissingTopicsError] lists those that do not), creates missing internal
// topics, bootstraps the global stores (up to the end of their topics;
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
// Process call that never returns blocks shutdown. A second call returns
// [ErrRunCalled].
func (a *App) Run(ctx context.Context) error { return a.rt.Run(ctx) }

// Metrics returns a snapshot of the app's counters. It is cheap and safe
// for concurrent use. Workers publish their record counts after every
// fetched batch, so the counts lag processing by at most one batch.
func (a *App) Metrics() Metrics { return a.rt.Metrics() }

// Metrics is a snapshot of an app's counters since New, returned by
// [App.Metrics]: records processed, skipped and produced, changelog
// records, early commits of full caches, records processed while waiting
// for a lagging partition, punctuations, late records dropped, purges,
// commits and the last commit's duration, tasks and assignments. The
// counters cover the whole app (all workers, all generations); each
// field's comment says what it counts.
type Metrics = runtime.Metrics
