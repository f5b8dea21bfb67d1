package duality

import (
	"github.com/duality-streams/duality/internal/runtime"
	"github.com/duality-streams/duality/stream"
)

// Errors of [New], [App.Run] and the queries. They are defined once, by
// the runtime; match them with errors.Is. Run also returns
// stream.ErrNotCoPartitioned (a sub-topology that keeps state reads
// topics with different partition counts), and the queries
// stream.ErrUnknownStore.
var (
	// ErrInvalidConfig is matched by every error New returns for a bad
	// app id, a nil broker or an invalid option.
	ErrInvalidConfig = runtime.ErrInvalidConfig
	// ErrInvalidTopology is matched by errors New returns for a topology
	// the app cannot run under its app id: nil, or an internal topic or
	// changelog whose full name "<app-id>-<name>" is not a valid topic
	// name or is the name of an external topic of the topology. Build
	// has checked the rest.
	ErrInvalidTopology = runtime.ErrInvalidTopology
	// ErrRunCalled is returned by a second call of [App.Run] or
	// [App.RunToEnd]: an App runs once.
	ErrRunCalled = runtime.ErrRunCalled
	// ErrPartitionMismatch is matched by errors about an existing internal
	// topic whose partition count differs from the one the topology needs.
	ErrPartitionMismatch = runtime.ErrPartitionMismatch
	// ErrStoreNotReady is matched by query errors while the store partition
	// cannot be read yet: the app is not running, it is joining the group
	// or rebalancing, or the partition is being restored from its
	// changelog. The query may succeed if retried later.
	ErrStoreNotReady = runtime.ErrStoreNotReady
	// ErrNotOwned is matched by a *[NotOwnedError]: the key's partition is
	// assigned to another instance of the app.
	ErrNotOwned = runtime.ErrNotOwned
	// ErrShutdownTimeout is matched by the error [App.Run] (or
	// [App.RunToEnd]) returns when a broker call (a commit, a purge,
	// leaving the group) was still running [ShutdownTimeout] after Run
	// began to stop, and Run abandoned it: the error says which records
	// and input offsets were not committed, or may not have been.
	ErrShutdownTimeout = runtime.ErrShutdownTimeout
	// ErrWrongStoreKind is matched by the error of [Query] or
	// [QueryTable] for a windowed aggregation's store (query it with
	// [QueryWindows]), of [QueryWindows] for a store that is not one, and
	// of a query of a table that has no store of its own. Queries check
	// the kind when they are made, so a query never reads a store in a
	// layout it does not know.
	ErrWrongStoreKind = runtime.ErrWrongStoreKind
)

// MissingTopicsError is returned by [App.Run] when external source or sink
// topics (or the topics of global stores) do not exist: its field Topics
// lists their names, sorted. The runtime creates only internal topics;
// external ones must be created by the operator. It matches
// broker.ErrUnknownTopic.
type MissingTopicsError = runtime.MissingTopicsError

// ProcessingError is the failure of one unit of work of a task: a
// processor's on an input record, a punctuator's, or that of an item a
// step emitted as a unit of its own (a change held by
// table.EmitPerCommit, an update held by window.CacheUpdates, a window's
// final result, a join's unmatched record; see [SkipOnError]). Its fields
// say which:
//
//   - Task is the failing task: its sub-topology and partition.
//   - Topic, Partition and Offset name the input record being processed;
//     for a punctuation or a flush, Topic is empty and Partition and
//     Offset are -1.
//   - Punctuation is "stream-time" or "wall-clock" when a punctuator
//     failed or emitted the failed item, empty otherwise.
//   - Flush is set when the failed item was emitted while the task
//     flushed before a commit (the held changes and updates).
//   - Step and Item are set for an item's failure: the name of the step
//     that emitted it, and what it was (e.g. "change of key a").
//   - Err is the error of the processor, punctuator or step downstream
//     (Unwrap returns it).
//
// Under the default [FailOnError] policy [App.Run] returns it (wrapped);
// under [SkipOnError] the record, punctuation or item is skipped and the
// error passed to the callback. Its message names the record (or
// punctuation, or flush) and the item once; the errors it wraps (a
// *stream.NodeError naming the step, a *codec.DecodeError naming the key
// or value) name only what they add.
//
// A record that fails every time (a poison record: one its codec cannot
// decode, or that breaks a step) stops a [FailOnError] app again after
// every restart, since the restart processes it again. To get past it, run
// with [DeadLetterOnError]: the record goes to a dead-letter topic, with
// headers that say what failed, in the commit of its input offset, and
// processing goes on after it; or with [SkipOnError], which drops it
// (logged, counted and passed to the callback).
type ProcessingError = runtime.ProcessingError

// NotOwnedError is returned by a query for a key whose partition this
// instance does not own: its fields Store and Partition name the store and
// the key's partition, and Owner the [Endpoint] of the instance that owns
// it in this instance's current assignment (empty when that instance
// advertises none, or the partition is unassigned while the group
// rebalances). It matches [ErrNotOwned]. Ask the owner (package httpquery
// forwards the request there), and retry when the owner says it does not
// own the key either: the group is rebalancing.
type NotOwnedError = runtime.NotOwnedError

// KeyOwner says which instance of an [App] owns a key of a store, as
// [ReadOnlyStore.Owner] and [ReadOnlyWindowStore.Owner] return it
// (Kafka Streams' KeyQueryMetadata): Store and Partition name the store
// and the key's partition; Local is true when the asking instance owns
// it; Endpoint is the owner's [Endpoint] (this instance's own when
// Local), empty when the owner advertises none or the partition is
// unassigned. It reflects the asking instance's current assignment, which
// a rebalance may change at any time: a query sent to the owner may still
// fail with [ErrNotOwned] or [ErrStoreNotReady], and be retried.
type KeyOwner = runtime.KeyOwner

// RestoreProgress reports, to the [OnRestore] hook, the restoration of one
// store partition from its changelog, or the bootstrap of a global store
// from one partition of its topic. Store and Partition name the store and
// the partition; Restored is the number of records applied so far and
// Total the number of offsets to read (an upper bound of the records:
// compaction leaves gaps); Done is set on the last report.
type RestoreProgress = runtime.RestoreProgress

// TaskID names a task: a sub-topology and a partition number, the type of
// [ProcessingError].Task. It is stream.TaskID: its String form is
// "<subtopology>_<partition>", as in Kafka Streams.
type TaskID = stream.TaskID
