// Package brokertest is the conformance suite for implementations of
// [broker.Broker]: one test body that every backend (the embedded Pebble log,
// Kafka on kfake) must pass unchanged.
//
// A backend's test file calls [Run] with a factory that returns a fresh,
// empty broker for each subtest and releases it with t.Cleanup:
//
//	func TestConformance(t *testing.T) {
//		brokertest.Run(t, func(t *testing.T) broker.Broker {
//			b, err := embedded.Open(t.TempDir())
//			require.NoError(t, err)
//			t.Cleanup(func() { _ = b.Close() })
//			return b
//		})
//	}
//
// # What is checked
//
//   - Topics: create, list (sorted), describe (defaults applied), delete,
//     recreate after delete gives an empty topic; ErrTopicExists,
//     ErrUnknownTopic, ErrInvalidTopicName and ErrInvalidPartitions on every
//     call that takes a topic or a partition count.
//   - Produce and reads (one Poll of a new Consumer): key, value (nil and empty are distinct), headers,
//     millisecond timestamps and the broker's clock for a zero timestamp;
//     record buffers owned by the caller on both sides;
//     per-partition order with contiguous offsets from 0; [broker.KeyPartition]
//     placement for [broker.PartitionByKey]; ErrUnknownPartition; fetches from
//     the middle, at the latest offset (long-poll woken by a concurrent
//     produce, immediate return for MaxWait 0), with a canceled context, and
//     outside the log (*[broker.OffsetOutOfRangeError]); MaxRecords and
//     MaxBytes; ListOffsets and OffsetForTime; concurrent producers.
//   - Groups: CommitOffsets and FetchOffsets, independent per group;
//     JoinGroup, rebalances with increasing generations on join and leave,
//     disjoint assignments that cover every partition and keep partition p of
//     every subscribed topic together, also when the topics' partition
//     counts differ; Assignment.Members with every member's user data and
//     partitions, the MaxUserData bound, a static member (InstanceID)
//     replacing its old self, which is fenced; a member joining two takes
//     its share and nothing else moves (sticky), and a partition that
//     moves does so in one step: its old owner's commit in the old
//     generation is fenced and leaves nothing visible, the old members'
//     and the new member's commits pass in the new one; a JoinOptions.Balance that
//     assigns the numbers, with Assignment.Data for every member, user
//     data from UserDataFunc at every join, Membership.Rebalance, and an
//     invalid Balance ignored for the broker's own rule.
//   - Consumer: assign and poll, seek by Assign, Pause/Resume, Unassign,
//     Polled.Ends equal to ListOffsets' Latest for partitions read to the
//     end (and absent for one with records left), long-poll woken by a
//     produce, ctx, an out-of-range position and the seek that recovers,
//     read_committed (records of fenced or refused commits never returned),
//     Close; broker.Read and broker.ReadAll.
//   - Committer: records and offsets atomic, Partition and Offset set in
//     place, a refused commit leaving nothing; ErrFenced for an old
//     generation and for a committer whose id was opened again, with
//     nothing of the fenced commit visible; empty id, Close.
//   - At-least-once committer: the same commit and invalid-use checks;
//     ErrFenced for an old generation with the offsets unchanged (the
//     fenced commit's records may be visible, at most once); offsets
//     alone and records alone.
//   - Commit: records and offsets visible together once it returns, each
//     commit's records seen whole by concurrent fetchers, ErrFenced for a
//     stale generation, an unknown member or a member that left, with nothing
//     written; members committing concurrently through a rebalance leave
//     exactly their successful commits and the highest offsets.
//   - DeleteRecords: the earliest offset moves to the requested offset
//     (also inside a produced batch), fetches below it give
//     *[broker.OffsetOutOfRangeError] and from it return the rest intact,
//     OffsetForTime never answers below it, appends go on at the latest
//     offset; repeating it or asking below the earliest offset changes
//     nothing; an offset beyond the latest or negative gives
//     *[broker.OffsetOutOfRangeError]; a compacted topic refuses it with
//     ErrInvalidConfig, a "compact,delete" one allows it.
//   - Close: later calls and blocked fetches return ErrClosed.
//
// # Scope
//
// The suite asserts only what the [broker.Broker] documentation promises and
// what a Kafka cluster can also provide, so that the same body runs against
// every backend. Two promises need care on Kafka: records and offsets of a
// Commit must be readable (Poll, ListOffsets, FetchOffsets) as soon as
// Commit returns, so a Kafka backend waits until its transaction's markers
// have moved the last stable offset; and invalid topic names, partitions
// and closed brokers are refused before any request is sent. It waits on
// channels with generous bounds rather than sleeping, and keeps data small
// so that the whole suite runs in a few seconds.
package brokertest
