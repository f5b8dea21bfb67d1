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
// # Errors
//
// Processing errors are returned by the pipe call (usually a
// *stream.NodeError); records written before the error stay written.
package streamtest
