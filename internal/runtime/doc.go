// Package runtime executes a topology (package topology's contract,
// validated by package dsl) against a broker: the engine behind package
// duality, which is its facade and documents its behaviour for users
// (commits, state stores, event time, punctuation, queries). It knows
// the contract, the broker and the stores, never the DSL.
//
// # Files
//
// One idea per file:
//
//   - app.go: [App], [New], Run and RunToEnd, the group loop and its
//     generations.
//   - end.go: bounded runs (RunToEnd): the end offsets, the completion
//     check, the end advance in topological order.
//   - stepper.go: [Stepper], the synchronous step mode behind package
//     streamtest: one worker driven a record (or a clock tick) at a
//     time, each step one commit.
//   - config.go: [Config], its defaults and validation.
//   - plan.go: the topology resolved to broker topic names with the app
//     id; ensureTopics checks and creates topics; the tasks of an
//     assignment.
//   - worker.go: the worker loop: fetch, per-partition buffers, pick
//     (timestamp order over a task's partitions), process, skip.
//   - commit.go: the commit path: flush, hand-off, the commit in flight,
//     await, drop.
//   - purge.go: purging repartition topics up to the committed offsets.
//   - deadletter.go: the dead-letter policy: a failed record's dead
//     letter, its headers, and their parser.
//   - task.go: a task and the position in each of its partitions.
//   - env.go: taskEnv, the task's topology.TaskEnv, with all its methods.
//   - taskstore.go: a task's partition of a store: the write-back cache
//     or write log over the store, range deletions, undo of a skipped
//     record, the hand-off to a commit.
//   - restore.go: opening a task's stores and restoring them from their
//     changelogs.
//   - placement.go: the placement of tasks, warm-up and standby replicas
//     on the group's members (Kafka Streams' high-availability assignor),
//     the broker's JoinOptions.Balance, and its encoding in the
//     assignment.
//   - copies.go: the instance's local copies of stateful tasks and their
//     positions, which it advertises when it joins.
//   - standby.go: standby and warm-up replicas: which are this member's,
//     the replica run (the goroutine that keeps their copies current from
//     the changelogs and restores the tasks that move here in a
//     cooperative rebalance before a worker runs them), and the probing
//     rebalances that move warmed-up tasks.
//   - quarantine.go: corrupt local state: the failure that reports it,
//     moving the state aside and rebuilding it from the changelogs.
//   - punctuate.go: punctuation schedules, stream-time timers and the
//     idle advance of stream time.
//   - global.go: global stores: bootstrap and follow.
//   - query.go: the registry of store partitions open for queries and
//     the byte-level reads ([StoreReader]).
//   - membermeta.go: the metadata an instance advertises to the other
//     members of its group (its endpoint, its copies' positions), its
//     versioned, extensible encoding, and the owners of the store
//     partitions in an assignment.
//   - metrics.go: [Metrics] and the counters behind it.
//   - taskmetrics.go: [TaskMetrics] and [StoreSize]: the metrics of
//     each task, its partitions, stores and steps, counted by the
//     workers in plain fields and published after every fetched batch.
//   - histogram.go: [Histogram], and the histograms workers and commits
//     observe into.
//   - describe.go: publishing the topology's descriptions to the app's
//     topology topic, for the duality command's describe.
//   - errors.go: sentinels and error types, re-exported by package
//     duality.
//
// # Concurrency
//
// Run owns every goroutine it starts: one per worker of the current
// generation, the commit and purge in flight of each worker, the
// generation's replica run (standby and warm-up copies, the restores of
// the tasks that move here), and the one following the global stores. A task and its stores are used by their
// worker's goroutine only; queries read the stores concurrently through
// the registry, which hands out only committed state. A [Stepper] runs
// its worker on the caller's goroutine (its commits on one goroutine
// each, awaited before the step returns) and starts no other.
package runtime
