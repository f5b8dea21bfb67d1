package topology

import "errors"

// Errors of the contract, shared by the DSL and the runtimes so that each
// concept has one sentinel. Package stream re-exports them (their text
// carries its name); package duality and streamtest return them.
var (
	// ErrUnknownStore is matched by errors about a store name that is not
	// what it should be: TaskEnv.Store and TaskEnv.GlobalStore for a store
	// the topology does not give the task, stream.ProcessorContext.Store
	// for one the step did not declare, and duality.Query (and streamtest's
	// store reads) for one the topology does not declare.
	ErrUnknownStore = errors.New("stream: unknown store")
	// ErrNotCoPartitioned is matched by errors about a sub-topology that
	// keeps state but may see the records of one key in different tasks:
	// the DSL's Build reports a join whose inputs may not be partitioned
	// alike (a stream whose keys changed, a table computed in the
	// sub-topology the other side reads), and the runtime's Run reports a
	// sub-topology with stores whose source topics have different
	// partition counts.
	ErrNotCoPartitioned = errors.New("stream: inputs not co-partitioned")
)
