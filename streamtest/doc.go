// Package streamtest runs a stream.Topology synchronously, without a
// broker, so that topologies are tested as plain Go tests, like Kafka
// Streams' TopologyTestDriver.
//
//	d, err := streamtest.New(topo)
//	in := streamtest.Input(d, "orders", codec.String(), codec.JSON[Order]())
//	out := streamtest.Output(d, "big-orders", codec.String(), codec.JSON[Order]())
//	err = in.Pipe(ctx, "o-1", Order{Amount: 500})
//	got, err := out.ReadKeyValues()
//
// # Semantics
//
// The [Driver] creates one task per partition of every sub-topology, as
// the runtime does, and implements the runtime's task environment. Each
// piped record is processed by the task of its partition before the pipe
// returns; records that tasks write to topics the topology reads
// (repartition topics, or topics read by other sub-topologies) are
// processed right after, breadth-first and deterministically. Partitions
// are chosen from encoded keys by Kafka's default partitioner (partition 0
// for records without a key); topics have one partition unless set with
// [Partitions] or [DefaultPartitions]. Timestamps come from the driver's
// clock ([StartTime], [Driver.Advance]) unless given.
//
// # State stores
//
// The driver provides the state stores that [stream.Process] steps declare
// with [stream.WithStores], with the runtime's semantics: each task gets
// its own partition of each store of its sub-topology (in one in-memory
// store.MemoryDB per Driver), reads see the task's own writes (Get and
// Range), and committed writes are logged to the changelog topic
// "<app-id>-<store>-changelog", one record per written key with its
// newest value (nil for a Delete), on the task's partition. In the driver
// every record a task processes is its own commit: after it, the task is
// flushed (as the runtime flushes before each commit), the changelog
// records are written (read them with [Driver.Records] or [Output]) and
// the writes are applied to the store. Writes made by a
// processor's Init are committed when the task is created; writes made
// from its Close are not written, as in the runtime.
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
// their due time. Wall-clock punctuations fire only when the test moves
// the driver's clock with [Driver.AdvanceWallClock] (each task's due
// punctuations as one commit, then the records they wrote are
// processed); [Driver.Advance] moves the clock without running them.
//
// # Global stores
//
// A topology's global stores (table.Global) are kept in the driver's
// memory: a record piped to (or written to) a global table's topic
// updates its store before the pipe returns, so later records see it. The
// driver reads a global store as one partition (partition 0): StoreGet,
// StoreAll and [Store] views work on it.
//
// # Errors
//
// Processing errors are returned by the pipe call (usually a
// *stream.NodeError); records written before the error stay written, but
// the state writes of the record that failed are undone, as the runtime
// does for a record its error policy skips.
package streamtest
