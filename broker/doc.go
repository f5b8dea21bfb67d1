// Package broker defines the partitioned append-only log that Duality runs
// on: topics, partitions, offsets owned by consumers, consumer groups,
// retention and compaction, and the atomic commit that exactly-once
// processing builds on.
//
// The package holds the [Broker] interface and the types and errors shared
// by every implementation; it knows nothing of the DSL. Implementations
// live in sub-packages: broker/embedded is a durable single-process log on
// Pebble, the default, so a program works with nothing installed. The Kafka
// backend joins in a later release.
//
// # Records and partitions
//
// A [Record] has a key, a value, headers and a millisecond timestamp. A nil
// value is a tombstone: on a compacted topic it deletes its key. Records
// produced with [PartitionByKey] go where Kafka's default partitioner puts
// them ([KeyPartition], murmur2), so a key lands on the same partition
// whichever client wrote it.
//
// # Offsets and groups
//
// Offsets of a partition are contiguous and never reused: a record's offset
// is its identity. Consumers own their position: a [Consumer]
// ([Broker.NewConsumer]) reads the partitions assigned to it, each from its
// own position, and reports the end of each partition it read to the end
// ([Polled]); [Read] and [ReadAll] read partitions up to their current
// ends. A consumer group stores offsets ([Broker.CommitOffsets]) and shares
// partitions among its members ([Broker.JoinGroup]): inside a group every
// partition has one owner (queue semantics), across groups every group sees
// every record (pub/sub). Partitions are assigned by number, so partition p
// of every subscribed topic goes to the same member and co-partitioned
// topics stay together; every member's [Assignment] lists all members with
// the user data they joined with ([JoinOptions]). [GroupAdmin], which
// both backends implement, lists groups and describes their members and
// committed offsets for tools (the duality command's groups subcommand);
// [GroupLag] sums a group's lag.
//
// # Commits
//
// A [Committer] ([Broker.NewCommitter]) appends records to several
// partitions and stores a group's offsets in one step: all become visible
// together or none do, and readers never see the records of a commit that
// failed. A commit carrying a group generation is fenced ([ErrFenced]) once
// a rebalance has given its partitions to another member, and a committer
// is fenced once a newer one with the same id is opened, so a zombie cannot
// commit.
//
// An at-least-once committer ([Broker.NewAtLeastOnceCommitter]) gives up
// the atomicity where it costs (on Kafka, the transaction): it appends the
// records, waits for them to be acknowledged, then commits the offsets,
// still fenced by the generation. A commit cut short can leave records
// without their offsets, which are redone (duplicates), never offsets
// without their records (losses).
//
// # Errors
//
// Errors match the package's sentinels with errors.Is ([ErrUnknownTopic],
// [ErrInvalidTopicName], [ErrInvalidPartitions], [ErrRecordTooLarge],
// [ErrFenced], [ErrCorrupt], [ErrDiskFull], [ErrClosed]); errors with data are structs
// ([TopicError], [OffsetOutOfRangeError], [RecordTooLargeError]). Topic names
// follow Kafka's rules ([ValidateTopicName]).
package broker
