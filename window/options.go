package window

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/duality-streams/duality/internal/dsl"
	"github.com/duality-streams/duality/stream"
)

// config is what this package's options set, kept in the step's
// dsl.StepConfig (dsl.Ext under extKey).
type config struct {
	final bool
	cache bool
	task  bool
	stats *Stats
	late  any // func(LateRecord[K, V]) for the aggregation's K and V
}

const extKey = "window"

// Option names of package window.
const (
	optEmitOnWindowClose  = "EmitOnWindowClose"
	optCacheUpdates       = "CacheUpdates"
	optWithTaskStreamTime = "WithTaskStreamTime"
	optWithStats          = "WithStats"
	optOnLate             = "OnLate"
)

// aggregateOpts are the options of windowed aggregations. Joins take
// them too, and report the ones that do not apply to joins with one error.
var aggregateOpts = []string{dsl.OptNamed, dsl.OptWithValueCodec, optEmitOnWindowClose, optCacheUpdates, optWithTaskStreamTime, optWithStats, optOnLate}

// option is an option of package window; it is a stream.Option.
type option func(*dsl.StepConfig)

func (f option) ApplyStep(c *dsl.StepConfig) { f(c) }

// windowOption returns the option name, which applies to the steps where
// says, and sets c's window config with set.
func windowOption(name, where string, set func(*config)) stream.Option {
	return option(func(c *dsl.StepConfig) {
		c.Mark(name, where)
		set(dsl.Ext[config](c, extKey))
	})
}

// windowConfig returns the window options in c.
func windowConfig(c *dsl.StepConfig) config { return *dsl.Ext[config](c, extKey) }

// EmitOnWindowClose makes the aggregation emit only final results: exactly
// one record per window, once stream time reaches the window's end plus
// grace (plus the gap, for sessions), instead of one record per update
// (the default). This is Kafka Streams' emitStrategy(onWindowClose) and
// suppress(untilWindowCloses). Windows waiting to close are tracked in
// the aggregation's store, so a restart neither loses nor repeats a final
// result: the emitted records and the store's progress commit together.
// Sessions merged away before closing are never emitted, so no tombstones
// are emitted in this mode. The table steps below the aggregation see the
// final results only, and its lookups find a window once its final result
// is out (see the package documentation, "Windowed tables"). Each final
// result is emitted as a unit of work of its own under the app's error
// policy (see duality.SkipOnError): one that fails downstream is skipped
// alone and never emitted again, while the record that closed its window
// goes on.
func EmitOnWindowClose() stream.Option {
	return windowOption(optEmitOnWindowClose, "windowed aggregations", func(c *config) { c.final = true })
}

// CacheUpdates makes an aggregation that emits every update (the default
// strategy) emit only the newest update of each window per commit, as
// Kafka Streams does with its record cache on: updates are buffered per
// task and written out when the runtime flushes the task before its
// commit, in the order of each window's first buffered update. A session
// created and merged away between two flushes is never emitted, so no
// tombstone is emitted for it either. The buffer holds the windows
// updated in one commit interval (the runtime's CommitInterval and
// MaxUncommittedRecords bound it). With [EmitOnWindowClose] it is an
// error (stream.ErrInvalidOption at Build): final results are emitted
// once anyway. Default: off, every update is emitted as it happens. The
// test driver (streamtest) flushes after every record, so there it only
// merges the updates one record makes. The table steps below the
// aggregation get the same changes, each from the window's value at the
// previous flush. Each buffered update is emitted as a unit of work of its
// own under the app's error policy (see duality.SkipOnError): one that
// fails downstream is skipped alone and leaves the buffer.
func CacheUpdates() stream.Option {
	return windowOption(optCacheUpdates, "windowed aggregations", func(c *config) { c.cache = true })
}

// WithTaskStreamTime makes the step's stream time (an aggregation's or a
// join's) also follow the task's stream time, which the runtime computes
// from the timestamps of all the task's input records (a source's
// stream.WithTimestamp extractor, or else the broker timestamp) and, with
// duality.IdleStreamTimeAdvance, moves with the clock while the task is
// idle: windows then close, and final results (a join's unmatched
// records) are emitted, although input stopped. By default a step's
// stream time is the largest timestamp of the records it processed, as
// Kafka Streams' window processors observe it.
//
// The step takes the task's stream time at each of its records, which are
// late when their windows closed by it, and, between records, when
// something is due for it: a final result, an unmatched join result, the
// expiry of old windows (a one-shot stream-time timer set to the next due
// time). An idle task costs nothing in between: no punctuation, store
// write or commit. A restarted (or moved) task starts with the stream
// time the step persisted in its store, so the idle advance goes on from
// there (once the task has caught up with its partitions) and closes the
// windows an input that stopped before the restart left open; that time
// may lag the task's stream time before the restart by up to the time of
// the last due work.
//
// Records of other sources of the sub-topology (a joined table's topic)
// advance it too, so a source whose timestamps run ahead of the
// aggregated records' closes their windows early.
func WithTaskStreamTime() stream.Option {
	return windowOption(optWithTaskStreamTime, "windowed aggregations and joins", func(c *config) { c.task = true })
}

// WithStats makes the aggregation count into s (shared by all its tasks;
// one Stats may serve several aggregations).
func WithStats(s *Stats) stream.Option {
	return windowOption(optWithStats, "windowed aggregations and joins", func(c *config) { c.stats = s })
}

// OnLate sets a callback for late records: records that arrived after
// every window they belong to had closed, which the aggregation drops.
// fn runs on the task's goroutine, so it must not block; tasks run in
// parallel, so fn must be safe for concurrent use. K and V must be the
// aggregation's key and value types, else Build reports
// stream.ErrInvalidOption. Default: no callback (late records are still
// counted in [Stats] and logged at Debug).
func OnLate[K, V any](fn func(LateRecord[K, V])) stream.Option {
	return option(func(c *dsl.StepConfig) {
		c.Mark(optOnLate, "windowed aggregations")
		if fn == nil {
			c.Fail(fmt.Errorf("%w: window: OnLate with a nil function", stream.ErrNilFunc))
			return
		}
		dsl.Ext[config](c, extKey).late = fn
	})
}

// LateRecord is a record a windowed aggregation dropped as late.
type LateRecord[K, V any] struct {
	Key       K
	Value     V
	Timestamp time.Time
	// StreamTime is the aggregation's stream time when the record
	// arrived: the largest timestamp it had seen (with
	// [WithTaskStreamTime], at least the task's stream time).
	StreamTime time.Time
	Topic      string
	Partition  int32
	Offset     int64
}

// Stats counts what windowed aggregations drop and emit. Its methods are
// safe for concurrent use; the zero Stats is ready. The counters count
// attempts: a record or punctuation that fails (in the window's step or
// in another step of the same record) is not taken back from them,
// although the runtime undoes its state and drops its output under a
// skip policy, so a record processed again after a restart or a skipped
// record may be counted more than once.
type Stats struct {
	late  atomic.Int64
	final atomic.Int64
}

// LateRecords returns the number of records dropped because every window
// they belong to had closed.
func (s *Stats) LateRecords() int64 { return s.late.Load() }

// FinalResults returns the number of final results emitted by
// aggregations with [EmitOnWindowClose].
func (s *Stats) FinalResults() int64 { return s.final.Load() }
