// Package duality runs stream-processing topologies: Kafka Streams' model
// done natively in Go.
//
// A topology is built with the DSL in package stream (and later table and
// window); this package executes it against a [broker.Broker]: today the
// durable embedded log (package broker/embedded); a Kafka backend is planned
// and not part of this release.
//
// # Running a topology
//
// Build the topology, create its external source and sink topics, then
// create an [App] and run it:
//
//	b := stream.NewBuilder()
//	views := stream.From(b, "page-views", codec.String(), codec.String())
//	views.Filter(func(user, page string) bool { return page != "/health" }).
//		To("real-views", codec.String(), codec.String())
//	topo, err := b.Build()
//	...
//	app, err := duality.New("view-filter", topo, brk, duality.Workers(4))
//	...
//	err = app.Run(ctx) // blocks until ctx is canceled or a fatal error
//
// The app id names the consumer group and prefixes the internal topics the
// app creates ("<app-id>-<name>"). Several App instances with the same id,
// in one process or many, share the work: the group assigns each partition
// to one of them and rebalances when instances join or leave.
//
// # Internal topics
//
// Run creates each missing internal topic as "<app-id>-<name>" with the
// topology's partition count or, when that is 0, the largest partition
// count among the source topics of the sub-topology that writes it
// (resolved transitively through other internal topics). Repartition
// topics keep records without time retention, because records carry their
// event timestamps and time retention could delete them before they are
// read; they are not purged after commits yet, so they grow with the input.
//
// # Tasks and workers
//
// A topology consists of sub-topologies (parts joined by in-process edges;
// repartition topics separate them). The app runs one task per sub-topology
// and partition number p it is assigned: the task reads partition p of each
// source topic of its sub-topology that has it, so co-partitioned inputs
// share a task. Tasks run on a bounded set of worker goroutines
// ([Workers], default GOMAXPROCS). Within a task, the records of one
// partition are processed in offset order; records of different source
// partitions of one task are processed in the order the broker's fetch
// returns them (no timestamp-based choice yet).
//
// # Commits and exactly-once
//
// A worker buffers its tasks' output. Every [CommitInterval] (default
// 100 ms), or earlier when more than [MaxUncommittedRecords] are buffered,
// it flushes its tasks and issues one [broker.CommitRequest] with the output
// records and the next input offset of every task partition, fenced by the
// group generation. The commit runs in the background while the worker
// goes on processing into a second buffer; a worker has at most one commit
// in flight, so its commits apply in order. On the embedded broker a commit
// is one atomic Pebble batch: output and offsets become visible together or not at all, so
// after a crash (even kill -9) the app resumes from the committed offsets
// and neither loses nor repeats a record's effects in its output topics.
// Side effects outside the broker (a Foreach that calls a web service) are
// at-least-once.
//
// On a rebalance the workers stop between two records, the work of tasks
// the instance keeps is committed in the new generation, the work of tasks
// that moved is dropped (their new owner redoes it from the committed
// offsets), and the new task set starts. A commit refused with
// [broker.ErrFenced] drops all uncommitted work of its worker the same way,
// including work processed while that commit was in flight.
//
// An input partition without a committed offset is read from its earliest
// offset (Kafka Streams' default); one whose committed offset is no longer
// in the log (retention removed the data) is reset to the earliest offset
// with a warning.
//
// # Errors
//
// [New] reports every configuration and topology problem at once
// ([ErrInvalidConfig], [ErrInvalidTopology]). [App.Run] reports missing
// external topics in one *[MissingTopicsError] and creates the missing
// internal topics; an internal topic with the wrong partition count is
// [ErrPartitionMismatch].
//
// When a processor fails on a record, the [ErrorPolicy] decides: by
// default ([FailOnError]) Run returns the *[ProcessingError] and the
// failing worker's output since its last commit is discarded, so a restart
// processes those records again. [SkipOnError] drops the record and its
// partial output, logs it at Warn, counts it in [Metrics] and calls an
// optional callback. A record sent to a topic that does not exist or to a
// partition outside its topic is an error of the record being processed, so
// the policy applies to it too. Commit and broker errors other than fencing
// are fatal.
//
// # Shutdown
//
// When Run's context is canceled, the workers stop between two records
// (what was fetched but not processed is processed by the next run), flush
// and commit, the tasks are closed and the
// instance leaves its group. Run returns only after every goroutine it
// started has exited. An App runs once.
//
// # Observability
//
// [App.Metrics] returns a snapshot of counters. [Logger] sets a
// log/slog logger (silent by default) with the attribute keys "app",
// "task", "topic", "partition" and "offset".
package duality
