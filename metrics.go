package duality

import "github.com/duality-streams/duality/internal/runtime"

// TaskMetrics returns a snapshot of the metrics of every task that has run
// on this instance since [New], sorted by task id: its records in
// (processed, skipped) and out (produced, dead-lettered), late drops,
// punctuations, process latency, the position, committed offset and lag
// of each of its input partitions, the cache hits and restore progress of
// each of its stores, and the records in and out of each of its steps
// (and those dead-lettered after it failed on them). A task that moved to
// another instance keeps its counters (Active false), so that counters
// never go back. A stateful task that moves here in a cooperative
// rebalance is listed from the moment its stores start restoring in the
// background (not Active yet, its stores Restoring, with their progress).
//
// It is safe for concurrent use and cheap: the workers count on their own
// goroutines, without locks or allocation per record, and add their
// counts to the snapshot's atomics after every fetched batch, so a
// snapshot lags processing by at most one batch (a task's step counts, by
// at most one batch of its worker). It allocates the returned slices.
// Package promexport exports it to Prometheus.
func (a *App) TaskMetrics() []TaskMetrics { return a.rt.TaskMetrics() }

// StoreSizes returns the approximate number of keys of each store
// partition of the tasks running on this instance, sorted by store and
// partition: exact while a partition takes less than 4 MiB on disk,
// estimated from Pebble's table properties above that (see
// store.Store.ApproximateCount). It reads the stores, up to a few MiB
// each, so it costs more than [App.TaskMetrics]: call it when exporting,
// not per record. A partition closed by a rebalance meanwhile is left
// out; it returns nil while no store partition is open (the app is not
// running, or is rebalancing). It is safe for concurrent use.
func (a *App) StoreSizes() []StoreSize { return a.rt.StoreSizes() }

// StoreSize is the approximate number of keys of one store partition,
// returned by [App.StoreSizes].
type StoreSize = runtime.StoreSize

// TaskMetrics is a snapshot of one task's metrics, returned by
// [App.TaskMetrics].
type TaskMetrics = runtime.TaskMetrics

// PartitionMetrics is a task's position in one of its input partitions:
// the next offset to process, the offset last committed, the end offset
// as last known and the lag (end minus position). The end is the latest
// fetch's when it read the partition to its end; while the task is
// behind, the worker lists it at most every [LagListInterval].
type PartitionMetrics = runtime.PartitionMetrics

// StoreMetrics is a snapshot of a task's partition of a state store: the
// reads its cache answered and those that read the store, and the
// progress of its restoration from its changelog (also of one in the
// background, before the task runs here).
type StoreMetrics = runtime.StoreMetrics

// StepMetrics is a snapshot of the records one step of a task took and
// passed on, those it dropped as late, and the input records sent to the
// dead-letter topic because it failed on them ([DeadLetterOnError]).
type StepMetrics = runtime.StepMetrics

// Histogram is a snapshot of a distribution in power-of-two buckets:
// durations in nanoseconds ([Metrics.ProcessLatency],
// [Metrics.CommitLatency], [TaskMetrics.ProcessLatency]) or counts of
// records ([Metrics.CommitRecords]).
type Histogram = runtime.Histogram

const (
	// HistogramBuckets is the number of buckets of a [Histogram].
	HistogramBuckets = runtime.HistogramBuckets
	// ProcessLatencySample is how many records a worker processes per
	// record whose latency it measures: one in 16.
	ProcessLatencySample = runtime.ProcessLatencySample
	// LagListInterval is the least time between two listings of the end
	// offset of a partition a worker is behind in: 10 s. A listing runs
	// beside the worker, which goes on processing, and gives up after
	// as long.
	LagListInterval = runtime.LagListInterval
)
