// Package kafka is the Apache Kafka backend of package broker: a
// [broker.Broker] on a Kafka cluster (or any cluster speaking Kafka's
// protocol), built on franz-go (kgo for the protocol, kadm for
// administration), without cgo.
//
//	b, err := kafka.New(ctx, []string{"kafka-1:9092", "kafka-2:9092"},
//		kafka.WithReplicationFactor(3),
//		kafka.WithClientOptions(kgo.DialTLSConfig(tlsCfg), kgo.SASL(mechanism)),
//	)
//
// Everything that runs on the embedded broker runs on this one: the same
// topology, one constructor changed.
//
// # Topics
//
// [Broker.CreateTopic] creates topics with kadm: the partition count, the
// replication factor of [WithReplicationFactor] (the cluster's default
// unless set) and the configuration as Kafka topic configs: cleanup.policy
// (delete, compact, compact,delete), retention.ms, retention.bytes and
// delete.retention.ms, each set explicitly (defaults included), so a
// topic behaves as [broker.TopicConfig] says on any cluster.
// [Broker.DescribeTopic] reads the configs back from the cluster, so a
// topic created by someone else is described as it is.
//
// # Reading
//
// A [broker.Consumer] ([Broker.NewConsumer]) has its own franz-go client
// and sends Kafka Fetch requests itself, read_committed, to the partitions'
// leaders, at exactly the positions Assign gave: there is no automatic
// offset reset, a position outside the log is an
// *[broker.OffsetOutOfRangeError]. Each fetch reports the partition's last
// stable offset, which gives [broker.Polled].Ends. The consumer decodes
// the record batches itself, skipping aborted transactions and control
// records as franz-go does (with franz-go's decompressors; the message
// formats before record batches go through franz-go's decoder), straight
// into the slice Poll returns: it is a [broker.Recycler]. A compressed
// batch may decompress to at most 256 MiB (kgo.MaxDecompressBatchBytes in
// [WithClientOptions] changes it); a larger one is an error matching
// [broker.ErrCorrupt].
//
// # Writing
//
// [Broker.Produce] uses the broker's idempotent producer (acks=all). With
// [broker.PartitionByKey] a record goes to the partition
// [broker.KeyPartition] gives its key: murmur2, as Kafka's Java client, so
// a key lands on the same partition whichever client wrote it.
//
// A [broker.Committer] ([Broker.NewCommitter]) is one transactional
// producer whose transactional id is the committer's id. A Commit is one
// Kafka transaction: the records, then the group offsets
// (AddOffsetsToTxn and TxnOffsetCommit with the group's generation and
// member id, KIP-447), then EndTxn. Any failure aborts it. Opening a
// Committer with an id fences the older one (its next Commit fails with
// [broker.ErrFenced]); so does a stale generation or member id. The
// offsets go into the transaction before the records, so a fenced commit
// appends nothing. Commit returns once its records are readable (the
// partitions' last stable offsets passed them); [Broker.FetchOffsets]
// waits for pending transactional offsets (RequireStable), so it sees the
// commit's offsets too.
//
// An at-least-once committer ([Broker.NewAtLeastOnceCommitter], for
// Kafka Streams' processing.guarantee=at_least_once) is an idempotent
// producer without transactions: a Commit produces the records, waits for
// every acknowledgement (acks=all), then commits the offsets with
// OffsetCommit, fenced by the generation and member id. It saves the
// transaction's round trips and markers; a commit that fails or is cut
// by a crash after its records were acknowledged leaves them readable,
// and they are written again when the work is redone.
//
// # Groups
//
// [Broker.JoinGroup] joins a classic Kafka consumer group with the
// package's own balancer (protocol [ProtocolName]): partition p of every
// subscribed topic goes to one member (co-partitioning), the members'
// shares differ by at most one, members keep their partitions across
// generations where balance allows, and every member's user data and
// partitions reach every member ([broker.Assignment].Members). With an
// instance id the member is static (KIP-345). A rebalance moves a
// partition in one step, fenced by the generation, so the partitions that
// stay with a member keep being processed (cooperative, see
// [broker.Assignment]); a member that falls out of the group says so at
// once ([broker.Assignment].Lost) and rejoins.
//
// # Costs and limits
//
//   - Every Consumer, Committer and Membership has its own franz-go
//     client, so its own connections to the brokers it talks to.
//   - A Commit takes about six round trips (AddOffsetsToTxn,
//     TxnOffsetCommit, AddPartitionsToTxn, Produce, EndTxn, and the
//     ListOffsets that waits for the markers); its records go out as one
//     batch per partition.
//   - Transactions use the classic protocol (transaction.version 1, every
//     Kafka since 2.5); Kafka 4's transaction.version 2 is not used.
//   - After a failed commit whose abort failed too (the cluster
//     unreachable), the next Commit initializes a new producer id for the
//     committer's id, which aborts what was left open.
//   - A position above a partition's last stable offset is out of range,
//     as on the embedded broker, although Kafka would wait there.
//   - A partition that moves may be processed by its old owner until it
//     hears of the new generation, in which its commits are fenced: the
//     overlap costs work, never a duplicate (see [broker.Assignment]).
//
// # Testing on kfake
//
// The package's tests run the broker/brokertest conformance suite against
// github.com/twmb/franz-go/pkg/kfake in the test process. kfake does not
// check some things that Kafka does, so a test passing on kfake is not
// proof for them:
//
//   - DeleteRecords on a topic whose cleanup policy is compact alone:
//     Kafka refuses it (POLICY_VIOLATION), kfake does not. The broker
//     checks the policy itself, so both refuse it.
//   - Topic configs are not validated by kfake (Kafka refuses unknown
//     keys and bad values with INVALID_CONFIG); null keys are accepted on
//     compacted topics (Kafka refuses them).
//   - kfake writes transaction markers synchronously, so the last stable
//     offset moves when EndTxn returns; on Kafka it moves a little later,
//     which Commit waits for.
//   - Retention and compaction run on kfake's own schedule (hourly, or
//     Cluster.Compact) and per batch, not per segment as on Kafka.
//   - Replication is not real: a replication factor is accepted but every
//     partition has one copy, and leader changes happen only when a test
//     moves them.
//   - Group coordination has no initial rebalance delay
//     (group.initial.rebalance.delay.ms), so a group's first rebalances
//     happen sooner than on Kafka.
//   - A member whose client dies while its JoinGroup waits for the rest
//     of the group may get no session timer: the group can turn stable
//     with the dead member holding its partitions for good (Kafka removes
//     it after its session timeout). cmd/kfake, which the kill -9 tests
//     run, removes such members itself.
package kafka
