package duality

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/duality-streams/duality/store"
)

// Option configures an [App]. Options are applied in order; a later option
// overrides an earlier one of the same kind. [New] validates them all at
// once and reports every problem in one error matching [ErrInvalidConfig].
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// Defaults of the options.
const (
	DefaultCommitInterval        = 100 * time.Millisecond
	DefaultMaxUncommittedRecords = 100_000
	DefaultFetchMaxWait          = 500 * time.Millisecond
	DefaultFetchMaxRecords       = 10_000
	DefaultCacheMaxBytes         = 10 << 20
)

type config struct {
	workers        int
	commitInterval time.Duration
	maxUncommitted int
	cacheMaxBytes  int64
	fetchMaxWait   time.Duration
	fetchMaxRecs   int
	logger         *slog.Logger
	policy         ErrorPolicy
	now            func() time.Time
	stateDir       string
	stateDirSet    bool
	stateOpts      []store.Option
	onRestore      func(RestoreProgress)
}

func defaultConfig() config {
	return config{
		workers:        runtime.GOMAXPROCS(0),
		commitInterval: DefaultCommitInterval,
		maxUncommitted: DefaultMaxUncommittedRecords,
		cacheMaxBytes:  DefaultCacheMaxBytes,
		fetchMaxWait:   DefaultFetchMaxWait,
		fetchMaxRecs:   DefaultFetchMaxRecords,
		logger:         slog.New(slog.DiscardHandler),
		now:            time.Now,
	}
}

// validate reports every problem of c, each matching ErrInvalidConfig.
func (c *config) validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if c.workers < 1 {
		bad("Workers(%d): must be at least 1", c.workers)
	}
	if c.commitInterval <= 0 {
		bad("CommitInterval(%v): must be positive", c.commitInterval)
	}
	if c.maxUncommitted < 1 {
		bad("MaxUncommittedRecords(%d): must be at least 1", c.maxUncommitted)
	}
	if c.cacheMaxBytes < 0 {
		bad("CacheMaxBytes(%d): must be 0 (no record cache) or positive", c.cacheMaxBytes)
	}
	if c.fetchMaxWait <= 0 {
		bad("FetchMaxWait(%v): must be positive", c.fetchMaxWait)
	}
	if c.fetchMaxRecs < 1 {
		bad("FetchMaxRecords(%d): must be at least 1", c.fetchMaxRecs)
	}
	if c.logger == nil {
		bad("Logger(nil): use slog.New(slog.DiscardHandler) for no logging")
	}
	if c.stateDirSet && c.stateDir == "" {
		bad("StateDir(\"\"): a directory is required (leave the option out for in-memory state)")
	}
	if c.now == nil {
		bad("Clock(nil): a clock function is required")
	}
	return errors.Join(errs...)
}

// Workers sets the number of worker goroutines that run tasks. An app runs
// min(n, tasks) workers and spreads its tasks over them. Default
// runtime.GOMAXPROCS(0). n must be at least 1.
func Workers(n int) Option { return optionFunc(func(c *config) { c.workers = n }) }

// CommitInterval sets how often a worker commits: it flushes its tasks and
// appends their output together with their input offsets in one atomic
// broker commit. Default [DefaultCommitInterval] (100 ms). d must be
// positive.
func CommitInterval(d time.Duration) Option {
	return optionFunc(func(c *config) { c.commitInterval = d })
}

// MaxUncommittedRecords makes a worker commit before the commit interval
// elapses when its buffered output records plus the changelog records its
// tasks' store writes will make (one per written key with the record
// cache, one per write without, see [CacheMaxBytes]) exceed n, which
// bounds memory.
// Default [DefaultMaxUncommittedRecords] (100000). n must be at least 1.
func MaxUncommittedRecords(n int) Option {
	return optionFunc(func(c *config) { c.maxUncommitted = n })
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
	return optionFunc(func(c *config) { c.cacheMaxBytes = n })
}

// FetchMaxWait bounds how long a worker's fetch waits for new input when
// none is available. A worker with uncommitted work waits at most until its
// next commit is due, and shutdown and rebalances interrupt the wait, so
// this only matters for idle workers. Default [DefaultFetchMaxWait]
// (500 ms). d must be positive.
func FetchMaxWait(d time.Duration) Option {
	return optionFunc(func(c *config) { c.fetchMaxWait = d })
}

// FetchMaxRecords bounds the records one fetch of a worker returns over all
// its partitions. Default [DefaultFetchMaxRecords] (10000). n must be at
// least 1.
func FetchMaxRecords(n int) Option {
	return optionFunc(func(c *config) { c.fetchMaxRecs = n })
}

// Logger sets the app's logger. The runtime logs lifecycle events at Info
// (joins, assignments, fencing), skipped records and offset resets at Warn,
// and uses the stable attribute keys "app", "task", "topic", "partition" and
// "offset". Default: discard everything.
func Logger(l *slog.Logger) Option { return optionFunc(func(c *config) { c.logger = l }) }

// Clock sets the function behind TaskEnv.Now, which processors use as the
// wall clock (for example to stamp records). Commit timing always uses the
// real clock. Default time.Now.
func Clock(now func() time.Time) Option { return optionFunc(func(c *config) { c.now = now }) }

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
// store.ErrInvalidConfig.
func StateDir(dir string, opts ...store.Option) Option {
	return optionFunc(func(c *config) { c.stateDir, c.stateDirSet, c.stateOpts = dir, true, opts })
}

// OnRestore sets a hook that reports the restoration of a store partition
// from its changelog, before its task processes input: called from the
// worker that restores it after each applied batch of changelog records
// but the last, then once with Done set. A partition already up to date
// is not reported. The hook must not block for long; it may be called
// concurrently by several workers. Restorations are also logged at Info
// (at the start, every 5 s, at the end) with the attributes "store" and
// "partition". Default: no hook.
func OnRestore(f func(RestoreProgress)) Option {
	return optionFunc(func(c *config) { c.onRestore = f })
}

// OnProcessingError sets what happens when a processor returns an error for
// an input record. Default [FailOnError].
func OnProcessingError(p ErrorPolicy) Option {
	return optionFunc(func(c *config) { c.policy = p })
}

// ErrorPolicy says what the runtime does when a processor fails on a
// record. The zero value is [FailOnError].
type ErrorPolicy struct {
	skip     bool
	callback func(*ProcessingError)
}

// FailOnError is the default policy: [App.Run] stops and returns the
// *[ProcessingError]. The failing worker's output since its last commit is
// discarded, not committed, so after fixing the cause a restart processes
// those records again from the last committed offsets.
func FailOnError() ErrorPolicy { return ErrorPolicy{} }

// SkipOnError skips failing records: the record's partial output (records
// the processor sent before failing) is dropped, its offset is committed as
// processed, it is logged at Warn and counted in [Metrics].RecordsSkipped,
// and callback, when not nil, is called with the error from the worker's
// goroutine (it must not block for long; it may be called concurrently by
// several workers).
func SkipOnError(callback func(*ProcessingError)) ErrorPolicy {
	return ErrorPolicy{skip: true, callback: callback}
}
