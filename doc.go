// Package duality runs stream-processing topologies: Kafka Streams' model
// done natively in Go.
//
// A topology is built with the DSL in packages stream, table and window;
// this package executes it against a [broker.Broker]: today the
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
//		To("real-views")
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
// [App.Describe] prints the topology with these names: its steps, internal
// topics and stores with their changelog topics.
//
// # Bounded runs
//
// [App.RunToEnd] runs the same topology over a bounded input and returns
// when it is done: it processes the records the source topics hold when it
// starts, through every repartition stage, then advances stream time to the
// end, so that every window closes and final results, session results and
// a left join's unmatched records come out, commits and returns nil. Run
// keeps the topology on the hot path (following the topics); RunToEnd
// serves a batch or backfill job over the same topics, without waiting on
// consumer lag or producing flush records. Its state is then at the end of
// time: give a bounded run of a windowed topology its own app id.
//
//	batch, err := duality.New("view-filter-backfill-2026-03", topo, brk)
//	...
//	err = batch.RunToEnd(ctx) // returns nil once the input is processed
//
// # Internal topics
//
// Run creates each missing internal topic as "<app-id>-<name>" with the
// topology's partition count or, when that is 0, the partition count of
// the topic it is declared to be sized like (a foreign-key join's
// subscription and response topics, sized like the right and the left
// table's topics) or else the largest partition count among the source
// topics of the sub-topology that writes it (resolved transitively through
// other internal topics). Repartition
// topics keep records without time retention, because records carry their
// event timestamps and time retention could delete them before they are
// read. Instead, as in Kafka Streams, each worker purges the internal
// topics it reads (repartition topics, a foreign-key join's subscription
// and response topics; never changelogs) up to the offsets it committed,
// with the broker's DeleteRecords, at most every
// [RepartitionPurgeInterval] (default 30 s), in the background: they hold
// only what is not processed yet (plus up to one interval of commits).
// With the interval 0 they grow with the input.
//
// # Tasks and workers
//
// A topology consists of sub-topologies (parts joined by in-process edges;
// repartition topics separate them). The app runs one task per sub-topology
// and partition number p it is assigned: the task reads partition p of each
// source topic of its sub-topology that has it, so co-partitioned inputs
// share a task. Tasks run on a bounded set of worker goroutines
// ([Workers], default GOMAXPROCS). Within a task, the records of one
// partition are processed in offset order.
//
// # Event time
//
// Every record carries a timestamp, its event time. A task that reads
// several partitions (the co-partitioned topics of a join or a merge)
// keeps a buffer of fetched records per partition and always processes
// the buffered head with the smallest timestamp (ties: the source listed
// first), as Kafka Streams' PartitionGroup does. So an app started with a
// backlog reads a table topic's old records before the newer stream
// records that join with them. When a partition has nothing buffered but
// the broker lists records beyond the task's fetch position, the task
// waits for them while the worker fetches them, at most [MaxTaskIdle]
// (default 10 s) by the app's [Clock]; after that it processes the other
// partitions' records anyway ([Metrics].EnforcedProcessing). A partition
// that is caught up never holds a task back. Fetches ask only for the
// partitions whose buffers are empty.
//
// A record's event time is what its source's stream.WithTimestamp
// extractor takes from the decoded record, else the broker record's
// timestamp; the runtime orders records and moves stream time by it, as
// Kafka Streams applies its extractor before choosing. The source keeps
// what it decoded for the extractor, so a record is decoded once.
//
// Each task's stream time is the largest timestamp it has processed; the
// DSL reads it through stream.ProcessorContext.StreamTime. As in Kafka
// Streams it moves only with records, so a task whose input stops keeps
// its last windows open and final results wait for the next record.
// [IdleStreamTimeAdvance] offers a bound: once a task has had no input
// for that long by the [Clock], its stream time follows the clock (that
// far behind its last input) and stream-time punctuations fire. The
// runtime does not persist a task's stream time: after a restart, or when
// a task moves, it starts again with the task's first record, unless a step
// of the task restores the stream time it persisted in its store
// (windowed aggregations and joins persist their own; with
// window.WithTaskStreamTime they also restore the task's): the task then
// starts from the largest restored time, and its idle advance starts once
// it has caught up with its partitions.
//
// # Punctuation
//
// A stream.Process processor schedules callbacks by stream time or by
// wall-clock time (stream.ProcessorContext.Schedule, Kafka Streams'
// punctuation). They run on the task's worker between two records:
// stream-time ones after the record that moved stream time past their due
// time, wall-clock ones when the [Clock] passes it, also without input
// (a worker re-reads the clock at least every [FetchMaxWait]). A
// punctuator may forward records and write stores; its output and writes
// are committed with the worker's next commit, atomically with the input
// offsets, exactly like a record's, and its errors follow the error
// policy (a *[ProcessingError] with Punctuation set). Punctuations
// count in [Metrics].Punctuations.
//
// # Commits and exactly-once
//
// A worker buffers its tasks' output. Every [CommitInterval] (default
// 100 ms), or earlier when more than [MaxUncommittedRecords] are buffered
// or its record caches hold more than its share of [CacheMaxBytes],
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
// [ProcessingGuarantee]([AtLeastOnce]) trades that for cheaper commits
// where atomicity costs: on Kafka a commit is then an idempotent,
// non-transactional append of the output and changelog records, and once
// every record is acknowledged an offset commit fenced by the generation,
// as Kafka Streams' processing.guarantee=at_least_once. No input is lost,
// but a crash between the two redoes the commit's input: its output
// appears twice, and aggregates restored from changelog records of that
// commit count its input twice. On the embedded broker the option changes
// nothing (its commits stay atomic, at the same cost).
//
// Rebalances are cooperative: when the group's next generation arrives,
// each worker, between two records, commits the work of its tasks that
// stay in the new generation and goes on with them (their processors,
// stores and fetched records kept: no pause, no restore), drops the work
// of its tasks that moved (their new owner redoes it from the committed
// offsets) and closes them, and the tasks that moved here are opened,
// restoring their stores. A partition moves in one step; the generation
// fences its old owner's commits, so the overlap costs work, never a
// duplicate (see [broker.Assignment]). A commit the group fenced because
// the rebalance overtook it is held and made again in the new generation
// for the tasks that stay. After skipped generations, in a bounded run,
// and when the member fell out of the group ([broker.Assignment].Lost:
// the tasks stop at once, their uncommitted work dropped, until the
// member has rejoined) every task starts again from the committed
// offsets. Metrics.TasksOpened counts the tasks opened. A commit refused
// with [broker.ErrFenced] otherwise drops all uncommitted work of its
// worker the same way, including work processed while that commit was in
// flight.
//
// An input partition without a committed offset is read from its earliest
// offset (Kafka Streams' default); one whose committed offset is no longer
// in the log (retention removed the data) is reset to the earliest offset
// with a warning.
//
// # State stores
//
// A step may keep key-value state: a [stream.Process] step declares its
// stores with [stream.WithStores] and reaches them through
// [stream.ProcessorContext].Store. Each task holds the partition of the
// store that matches its partition number. Writes are buffered per task in
// a write-back record cache, newest value per key, and each commit logs one
// record per key written since the previous commit (key, newest value; a
// nil value for a delete), so a hot key costs one changelog record and one
// store write per commit interval. The caches of an instance are bounded
// by [CacheMaxBytes] (10 MiB by default, shared equally by the workers; a
// worker beyond its share commits early); CacheMaxBytes(0) turns them off,
// and every write is then its own changelog record, applied in write
// order. [Metrics] counts ChangelogRecords and CacheFlushes. Records go to
// the store's changelog topic "<app-id>-<store>-changelog", which Run
// creates compacted with one partition per task (the largest partition
// count of the sub-topology's sources). The changelog records go into the worker's
// commit with the task's output and input offsets, so they are committed
// atomically with them; reads see the task's own uncommitted writes. Only
// after the commit succeeds are the writes applied to the local store, in
// one batch that also records the offset of the task's last changelog
// record: local state is always a prefix of its changelog. A fenced or
// failed commit drops the writes with the rest of the uncommitted work, and
// a record skipped under [SkipOnError] leaves no writes behind.
//
// Before a task processes input, each of its stores catches up with its
// changelog: from the offset the store recorded, or from the beginning
// when it has none or when that offset does not fit the changelog (the
// topic was deleted and recreated, or its start moved past the offset), in
// which case the local state is dropped and rebuilt. Restoration is logged
// at Info with the attributes "store" and "partition" and reported to the
// [OnRestore] hook. When a task moves to another instance its store
// handles are closed and the state stays on disk: its next owner restores
// it from the changelog, and an instance that gets it back catches up from
// its own offset. With [NumStandbyReplicas] other instances keep standby
// copies of each stateful task's stores, applying its committed changelog
// records as they come, so the instance a task moves to restores only the
// records its copy had not applied yet (none when it was caught up). A
// task moves only to an instance whose copy of its state is caught up:
// an instance that joins first warms up a copy (see [MaxWarmupReplicas]).
//
// With [StateDir] the stores of an App live in one Pebble database in that
// directory, so a restart reads only the changelog records written since
// the last commit the instance applied. Without it state is kept in
// memory and rebuilt from the changelogs at every start: correct, but
// startup reads every changelog in full. Deleting a state directory is
// safe; it is rebuilt the same way.
//
// # Corrupt state
//
// The changelogs are the source of truth, so a [StateDir] that is damaged
// heals itself. When the database fails to open as corrupt (a checksum
// mismatch, a missing, truncated or malformed file, see
// [store.OpenPebble]), or a read or write of a store fails with an error
// matching [store.ErrCorrupt] while the app runs, or Pebble reports
// corruption no caller sees (a background compaction's, a query's), Run
// moves the whole database into a new directory under dir/quarantine
// ([store.QuarantinePebble]; kept for inspection, never deleted), logs it
// at Error ("local state is corrupt", with the attributes "quarantine",
// "error", and "task" and "store" when a task met it), counts it in
// [Metrics].StateQuarantines, and goes on from an empty database: every
// store and global store is restored from its changelog or topic, and the
// tasks resume from the committed offsets, their work since the last
// commit dropped and redone, so the output stays exactly once. A task
// stops at the record that met the corruption whatever its processor did
// with the error; [SkipOnError] does not skip it. The database is shared
// by all tasks of the instance, so all of them restore, and the standby
// copies it holds (see [NumStandbyReplicas]) start over. State found
// corrupt again before any commit since it was rebuilt points at the disk,
// not at a one-off damage: Run then fails with the error.
//
// # Global stores
//
// A global store (table.Global; Kafka Streams' GlobalKTable) is held in
// full by every instance: Run reads every partition of its topic outside
// the consumer group and writes the records' raw keys and values into the
// store (a nil value deletes, a record without key is ignored). No
// changelog is written: the topic is the changelog. Before joining the
// group, Run brings every global store up to the end of its topic (the
// bootstrap, reported like a restore through [OnRestore] and the log),
// so no task processes input before; then a goroutine of Run follows the
// topics and applies new records as they arrive, concurrently with the
// tasks, whose lookups see each key as of some record of its partition.
// A later stream record is not guaranteed to see an update appended just
// before it, as in Kafka Streams, where the global thread is not
// synchronised with the stream threads. The position read in each
// partition is stored in the same batch as the data, so with [StateDir] a
// restart reads only the records appended since, and a store whose
// positions do not fit its topic (recreated, or records deleted) is
// dropped and rebuilt. A global store's topic is external and must exist
// (*[MissingTopicsError]); new partitions of it are read from the next
// start. [Query] on a global store answers every key on every instance.
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
// optional callback. [DeadLetterOnError] drops the partial output too and
// writes the record to a dead-letter topic (see "Dead letters" below).
// Errors of producing are errors of the record that made the output: a
// sink that cannot encode a key or value, a record sent to a topic that
// does not exist or to a partition outside its topic, and a record larger
// than the broker accepts (checked against its limit,
// broker.RecordLimiter, when the step sends it), so the policy applies to
// them too. Commit and broker errors other than fencing are fatal.
//
// # Dead letters
//
// Under [DeadLetterOnError] a record that fails (a poison record: a key
// or value its codec cannot decode, a timestamp before 1970 or after
// 9999, a step that returns an error or panics, an output that cannot be
// encoded or is too large) is written to the dead-letter topic,
// "<app id>-dlq" by default ([DeadLetterTopic]), which Run creates like
// the internal topics. The dead letter is the record as the app read it:
// its key and value bytes, its timestamp, its headers, in the partition
// of the same number. Headers follow its own, each a text value:
//
//	duality.error      the error, e.g. "decode value: codec: invalid encoding: int64 needs 8 bytes, got 5"
//	duality.step       the step that failed, e.g. "parse-order" (absent when the error names none)
//	duality.topic      the topic the record was read from
//	duality.partition  its partition, in decimal
//	duality.offset     its offset, in decimal
//	duality.task       the task that read it, e.g. "0_2"
//	duality.app        the app's id
//
// ([DeadLetterErrorHeader] and the constants beside it name them;
// [ParseDeadLetter] reads them back.) The dead letter is part of the
// worker's commit, with the record's input offset, so under [ExactlyOnce]
// every input record is processed (its output committed) or in the
// dead-letter topic, exactly once, on the embedded broker and on Kafka,
// also across a crash. Under [AtLeastOnce] a dead letter may be written
// twice, as output may.
//
// The command-line tool shows a dead-letter topic with its headers
// decoded (duality consume), and writes dead letters back to the topic
// and partition they were read from, once the app or the records are
// fixed (duality replay); see the README's "Dead letters".
//
// # Interactive queries
//
// Queries read the stores of a running App, typed, with one mechanism for
// every kind of store:
//
//	counts := table.Count(byWord, "word-counts")
//	perMinute := window.Count(byWord, window.Tumbling(time.Minute, window.NoGrace), "words-1m")
//	...
//	q, err := duality.QueryTable(app, counts)          // *ReadOnlyStore[string, int64]
//	n, ok, err := q.Get(ctx, "cat")
//	w, err := duality.QueryWindows(app, perMinute)    // *ReadOnlyWindowStore[string, int64]
//	seq, errf := w.Fetch(ctx, "cat", from, to)        // window.Windowed[string] keys
//
// [QueryTable] reads the store of a table with the table's codecs;
// [Query] reads a key-value store by name with given codecs (a table's, a
// stream.Process step's, or a global store, which answers every key).
// Both give a *[ReadOnlyStore]. [QueryWindows] reads the store of a
// windowed aggregation (*[ReadOnlyWindowStore]): a key's windows, or every
// window, with starts in a time range. The topology declares each store's
// kind, so a query of the wrong kind of store (a windowed store with
// Query) fails when it is made, with [ErrWrongStoreKind]. For key-value
// stores, Get routes a key to its partition with
// [broker.KeyPartition] of the encoded key over the store's partition
// count, as the runtime partitions records; Range, Scan and All merge the
// partitions this instance owns in encoded key order (key order when the
// key codec preserves order), each read from a snapshot; FetchAll merges
// a windowed store's partitions likewise. Only this instance's partitions
// are served: a key owned by another instance fails
// with a *[NotOwnedError] ([ErrNotOwned]) naming the partition and, when
// the owner advertises one with the option [Endpoint], the owner's
// endpoint; [ReadOnlyStore.Owner] tells which instance owns a key without
// reading it (Kafka Streams' queryMetadataForKey). Package httpquery
// forwards a request for another instance's key to its owner, so that
// any instance answers any key. Reads see committed state only (the
// store as of the task's last successful commit, never its uncommitted
// writes), so values match the committed output. While the app is not
// running, rebalancing or restoring a partition, queries fail with
// [ErrStoreNotReady], which [IsRetryableQueryError] reports as
// retryable; a store closed by a rebalance during a query gives that
// error too, never a panic. Queries are safe from any goroutine while the
// workers write; Run's shutdown waits for ranges being iterated. Package
// httpquery serves these queries as JSON over HTTP.
//
// # Shutdown
//
// When Run's context is canceled, the workers stop between two records
// (what was fetched but not processed is processed by the next run), flush
// and commit, the tasks are closed and the instance leaves its group; Run
// then returns nil. A fatal error stops the app the same way (the other
// workers commit their work) and Run returns it; [App.RunToEnd] stops the
// same way once its input is processed. Run waits for every goroutine it
// started, processors included: a step that never returns blocks it.
// Broker calls are bounded instead: [ShutdownTimeout] (default 30 s) after
// the stop began, Run abandons the commits, purges and the Leave still
// running, even calls that ignore their context (a hung broker), and
// returns an error matching [ErrShutdownTimeout] that says which records
// and input offsets were not committed, or may not have been (the broker
// applies a commit entirely or not at all; a restart resumes from the
// offsets it finds committed). An abandoned call's goroutine exits when
// the call returns, after Run. An App runs once.
//
// # Observability
//
// [App.Metrics] returns a snapshot of counters; [App.StateMetrics] the
// sizes of the Pebble state (memory, disk, write-ahead log) while Run
// runs. [Logger] sets a
// log/slog logger (silent by default) with the attribute keys "app",
// "task", "topic", "partition", "offset" and "store".
package duality
