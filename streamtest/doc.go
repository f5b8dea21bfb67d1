// Package streamtest runs a stream.Topology synchronously, so that
// topologies are tested as plain Go tests, like Kafka Streams'
// TopologyTestDriver.
//
//	d, err := streamtest.New(topo)
//	in := streamtest.Input(d, "orders", codec.String(), codec.JSON[Order]())
//	out := streamtest.Output(d, "big-orders", codec.String(), codec.JSON[Order]())
//	err = in.Pipe(ctx, "o-1", Order{Amount: 500})
//	got, err := out.ReadKeyValues()
//
// # Semantics
//
// The [Driver] runs the topology on the runtime that runs apps (the
// duality package's), over an in-memory embedded broker: the same tasks,
// stores, stream time, punctuations, error handling and commits, driven
// one record at a time instead of by fetches. New creates the topology's
// external topics (sources, sinks with a fixed topic, global tables'
// topics, and those named by [Partitions]); the runtime creates the
// internal ones (repartition topics, changelogs). The Driver owns every
// partition: it creates one task per partition of every sub-topology, as
// the runtime does. Each piped record is processed by the task of its
// partition before the pipe returns; records that tasks write to topics
// the topology reads (repartition topics, or topics read by other
// sub-topologies) are processed right after, breadth-first and
// deterministically. Partitions are chosen from encoded keys by Kafka's
// default partitioner (partition 0 for piped records without a key;
// records that steps write without a key are spread by the broker, as in
// the runtime); topics have one partition unless set with [Partitions] or
// [DefaultPartitions]. Timestamps come from the driver's clock
// ([StartTime], [Driver.Advance]) unless given. A record sent to a topic
// that does not exist (a stream.ToFunc step choosing its topic per
// record) fails as in the runtime: declare such topics with [Partitions].
//
// # State stores
//
// Tasks get the state stores of their sub-topology with the runtime's
// semantics: each task has its own partition of each store, reads see
// the task's own writes (Get and Range), and committed writes are logged
// to the changelog topic "<app-id>-<store>-changelog", one record per
// written key with its newest value (nil for a Delete; none for a key put
// and deleted since the last commit that was absent before), on the
// task's partition. In the driver every record a task processes is its own
// commit: after it, the tasks are flushed (as the runtime flushes before
// each commit), the output and changelog records are written (a commit's
// changelog records of one store in key order; read them with
// [Driver.Records] or [Output]) and the writes are applied to the store.
// Writes made by a processor's Init are committed when the task is
// created; writes made from its Close are not written, as in the runtime.
//
// Assert on state with [Driver.StoreGet] and [Driver.StoreAll] (bytes, by
// partition) or the typed [Store] view. A store has one partition per
// task of its sub-topology; [StoreView.Get] finds a key's partition the
// way the driver routes input records, so it finds the state of
// processors that store records under their own key:
//
//	counts := streamtest.Store(d, "counts", codec.String(), codec.Int64())
//	n, ok, err := counts.Get("alice")
//
// # Time and punctuation
//
// Each task's stream time is the largest timestamp of the records it has
// processed ([Driver.StreamTime]); stream-time punctuations of
// stream.Process processors fire after the record that moves it past
// their due time. The driver's clock is the runtime's wall clock.
// Wall-clock punctuations fire only when the test moves it with
// [Driver.AdvanceWallClock] (every task's due punctuations, then one
// commit, then the records they wrote are processed);
// [Driver.Advance] moves the clock without running them.
//
// [Driver.AdvanceToEnd] moves stream time to the end of time, as the
// runtime's bounded run (RunToEnd) does once its input is processed:
// every window closes and every final result and unmatched join record
// comes out, without a flush record far ahead in time. Test final
// results this way:
//
//	// pipe the input, then:
//	err := d.AdvanceToEnd(ctx)
//	final, err := out.ReadAll()
//
// Afterwards the driver is at the end of time: records piped later are
// late for windowed steps.
//
// # Global stores
//
// A record piped to (or written to) a global table's topic updates its
// store before the pipe goes on, so later records see it. A global store
// has one partition (partition 0): StoreGet, StoreAll and [Store] views
// work on it.
//
// # Errors
//
// Processing errors are returned by the pipe call (usually a
// *stream.NodeError; the runtime logs them at Warn on the [Logger]). The
// record that failed is skipped as the runtime's SkipOnError policy skips
// it: its state writes and its output, also what its steps wrote before
// the one that failed, are undone. Records written by records processed
// before it, in the same pipe or earlier, stay written, and the records
// queued behind it in the same pipe (in repartition topics, say) are
// processed, as the runtime would process them: the pipe returns once
// every record is processed, with the failed record's error, or
// errors.Join of the errors when several failed. A punctuation that fails
// is skipped the same way, without undoing the record that made it due.
// A pipe stops early, dropping the records still queued, only when its
// context ends, on [ErrLoop], and on an error of the runtime that is not
// a record's (the in-memory broker failing a commit).
//
// New reports the runtime's checks of the topology: [ErrCoPartition]
// (stream.ErrNotCoPartitioned) when a sub-topology that keeps state reads
// topics with different partition counts.
package streamtest
