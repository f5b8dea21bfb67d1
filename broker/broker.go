package broker

import (
	"context"
	"fmt"
	"time"
)

// Header is a record header: an application-defined key and value.
type Header struct {
	Key   string
	Value []byte
}

// Record is one entry of a partitioned log.
//
// A nil Value is a tombstone: on a compacted topic it deletes its key.
// Value []byte{} (empty, not nil) is an ordinary empty value; the broker keeps
// the distinction.
//
// When producing, Topic and Partition choose where the record goes (use
// [PartitionByKey] for Kafka's default key partitioner); Offset is ignored and
// set by the broker. Timestamp is kept with millisecond precision; a zero
// Timestamp is replaced by the broker's clock at append time.
//
// Records a Consumer returns are owned by the caller: the broker never
// modifies them afterwards, and they stay valid after later calls.
type Record struct {
	Key       []byte
	Value     []byte
	Headers   []Header
	Timestamp time.Time
	Topic     string
	Partition int32
	Offset    int64
}

// PartitionByKey as a Record's Partition asks the broker to choose the
// partition with Kafka's default partitioner: murmur2 of the key for a
// non-nil key (see [KeyPartition]), round-robin for a nil key.
const PartitionByKey int32 = -1

// CleanupPolicy says how a topic forgets old records.
type CleanupPolicy uint8

const (
	// CleanupDelete removes whole old data by time and size (retention).
	CleanupDelete CleanupPolicy = iota
	// CleanupCompact keeps the newest record of every key and removes
	// tombstones after TopicConfig.DeleteRetention.
	CleanupCompact
	// CleanupCompactDelete does both (Kafka's cleanup.policy
	// "compact,delete"): compaction as CleanupCompact, plus retention as
	// CleanupDelete, which removes whole old data even when it holds the
	// newest record of a key. Windowed state changelogs use it: a
	// window's records expire with the window, without tombstones.
	CleanupCompactDelete
)

// String returns Kafka's name of the policy: "delete", "compact" or
// "compact,delete"; "unknown" for any other value.
func (p CleanupPolicy) String() string {
	switch p {
	case CleanupDelete:
		return "delete"
	case CleanupCompact:
		return "compact"
	case CleanupCompactDelete:
		return "compact,delete"
	}
	return "unknown"
}

// Valid reports whether p is one of the policies above.
func (p CleanupPolicy) Valid() bool { return p <= CleanupCompactDelete }

// TopicConfig describes a topic. The zero value of every field but
// Partitions means "the default".
type TopicConfig struct {
	// Partitions is the number of partitions; it must be >= 1.
	Partitions int32
	// Cleanup is the cleanup policy; default CleanupDelete.
	Cleanup CleanupPolicy
	// RetentionTime deletes data older than this (by record timestamp).
	// 0 means the default of 7 days; negative means forever.
	RetentionTime time.Duration
	// RetentionBytes deletes the oldest data of a partition beyond this
	// size. 0 or negative means no size limit (the default).
	RetentionBytes int64
	// DeleteRetention is how long a tombstone survives compaction on a
	// compacted topic. 0 means the default of 24 hours.
	DeleteRetention time.Duration
}

// Default values applied to zero fields of TopicConfig.
const (
	DefaultRetentionTime   = 7 * 24 * time.Hour
	DefaultDeleteRetention = 24 * time.Hour
)

// TopicInfo describes an existing topic.
type TopicInfo struct {
	Name   string
	Config TopicConfig // with defaults applied
}

// TopicPartition names one partition of a topic.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// FetchRequest asks for records of one partition from Offset on: a
// position, as broker/embedded's own Fetch takes them.
type FetchRequest struct {
	Topic     string
	Partition int32
	Offset    int64
}

// FetchOptions bound a read by position (broker/embedded's Fetch).
type FetchOptions struct {
	// MaxWait is how long Fetch waits for data when none of the requested
	// partitions has any at the requested offsets. 0 returns at once.
	MaxWait time.Duration
	// MaxRecords bounds the number of records returned over all
	// partitions; 0 means a default of 10000. The broker may exceed it by
	// less than one internal batch.
	MaxRecords int
	// MaxBytes bounds the key and value bytes returned; 0 means a default
	// of 16 MiB. At least one record is returned when any is available.
	MaxBytes int
}

// Offsets is what a partition holds: records live at offsets in
// [Earliest, Latest). Latest is the offset the next record will get
// (Kafka's log-end offset / high watermark).
type Offsets struct {
	Earliest int64
	Latest   int64
}

// CommitRequest is an atomic step of a Committer: every record in Records
// is appended and every offset in Offsets is stored for Group, all
// together or not at all. Records are visible to consumers only once the
// commit succeeds.
type CommitRequest struct {
	// Records to append; each names its Topic and Partition (or
	// PartitionByKey). On success the broker sets their Partition and
	// Offset in place.
	Records []Record
	// Group whose offsets are stored. May be empty when Offsets is empty.
	Group string
	// Generation fences zombies: when non-zero, the commit fails with
	// ErrFenced unless it equals the group's current generation and
	// MemberID is a member of it.
	Generation int64
	MemberID   string
	// Offsets are the next offsets to consume, per partition.
	Offsets map[TopicPartition]int64
}

// JoinOptions configure a member joining a group. The zero value is a
// dynamic member without user data.
type JoinOptions struct {
	// InstanceID is the member's stable identity across restarts (Kafka's
	// static membership, group.instance.id); empty for a dynamic member.
	InstanceID string
	// UserData is shared with the other members through the assignment
	// (Assignment.Members), e.g. the instance's query endpoint. At most
	// MaxUserData bytes; more is an error matching ErrInvalidConfig.
	UserData []byte
	// UserDataFunc, when not nil, gives the member's user data each
	// time it joins or rejoins the group (every rebalance), in place of
	// UserData, so that what a member shares may change from one
	// generation to the next (how far its local state is behind, say).
	// It should return quickly and must not join, leave or rebalance a
	// group of the same broker: the embedded broker calls it while the
	// rebalance it belongs to waits for it (without its locks held:
	// the group's other calls go on meanwhile). A result over
	// MaxUserData bytes is shared as no user data.
	UserDataFunc func() []byte
	// Balance, when not nil, assigns the partition numbers in place of
	// the broker's own rule whenever this member computes the group's
	// assignment: on Kafka when it is the group's leader, on the
	// embedded broker when it is the earliest member with a Balance. The
	// broker keeps its own rule when Balance is nil or returns an
	// invalid assignment (see BalanceFunc).
	Balance BalanceFunc
}

// BalanceFunc assigns the partition numbers 0..numbers-1 of a group's
// topics (partition p of every topic goes with number p) to members,
// sorted by id. It returns each member's numbers, in the order of
// members, and data the broker gives every member of the generation
// (Assignment.Data). Every number must go to exactly one member; an
// assignment that does not (a wrong length, a number out of range,
// missing or given twice) is ignored in favour of the broker's rule, and
// its data with it. It must return quickly and must not call the broker.
type BalanceFunc func(members []BalanceMember, numbers int32) (assigned [][]int32, data []byte)

// CheckBalance returns nil when assigned is a valid result of a
// BalanceFunc for members members and partition numbers 0..numbers-1:
// one entry per member, and every number in exactly one of them.
// Otherwise it returns an error matching ErrInvalidConfig that says why.
func CheckBalance(assigned [][]int32, members int, numbers int32) error {
	if numbers < 0 {
		return fmt.Errorf("%w: balance: %d partition numbers", ErrInvalidConfig, numbers)
	}
	if len(assigned) != members {
		return fmt.Errorf("%w: balance: %d assignments for %d members", ErrInvalidConfig, len(assigned), members)
	}
	seen := make([]bool, numbers)
	left := numbers
	for _, nums := range assigned {
		for _, p := range nums {
			if p < 0 || p >= numbers {
				return fmt.Errorf("%w: balance: partition number %d out of range [0, %d)", ErrInvalidConfig, p, numbers)
			}
			if seen[p] {
				return fmt.Errorf("%w: balance: partition number %d assigned twice", ErrInvalidConfig, p)
			}
			seen[p] = true
			left--
		}
	}
	if left > 0 {
		return fmt.Errorf("%w: balance: %d partition numbers not assigned", ErrInvalidConfig, left)
	}
	return nil
}

// BalanceMember is a member of a group as a BalanceFunc sees it.
type BalanceMember struct {
	ID string
	// UserData is the member's, from its JoinOptions.
	UserData []byte
	// Owned are the partition numbers the member had in its previous
	// generation, sorted (none for a member that just joined).
	Owned []int32
}

// MaxUserData is the largest JoinOptions.UserData a broker accepts.
const MaxUserData = 64 << 10

// Assignment is a group member's share of the subscribed partitions in one
// generation. Its slices are read-only: a broker may share them between
// the assignments of the members.
//
// A rebalance moves a partition in one step: its new owner gets it in
// generation g+1 while its old owner, until it hears of g+1, may still
// work on it in g. The broker refuses every commit with generation g once
// the group is at g+1 (a Committer's Commit fails with ErrFenced and
// leaves nothing visible), and FetchOffsets includes every commit it
// accepted, so the new owner resumes exactly where the old owner's last
// commit left the partition: the overlap costs work, never a duplicate.
// A member's partitions that stay with it in g+1 had no other owner in
// between: its work on them, uncommitted at the rebalance, may be
// committed in g+1 (a cooperative rebalance: they keep being processed).
type Assignment struct {
	Generation int64
	// Partitions are this member's, sorted by partition, then topic.
	Partitions []TopicPartition
	// Members are every member of the generation, this one included,
	// with its UserData and partitions, sorted by member id.
	Members []Member
	// Lost says the member fell out of the group (its session timed
	// out, the coordinator no longer knows it, a rejoin failed): the
	// partitions of its last assignment may already be another
	// member's, so its work on them that is not committed must be
	// dropped, not committed (such a commit is fenced anyway).
	// Generation is the generation lost; Partitions and Members are
	// empty. The member rejoins on its own: a new assignment follows.
	// A broker whose members cannot fall out of the group (the
	// embedded broker's) never sends one.
	Lost bool
	// Data is what the JoinOptions.Balance that assigned the generation
	// returned for every member; nil under the broker's own rule.
	Data []byte
}

// Member is one member of a group's generation, as every member's
// Assignment describes it.
type Member struct {
	// ID is the member id (Membership.MemberID).
	ID string
	// UserData is the member's JoinOptions.UserData.
	UserData []byte
	// Partitions are the member's, sorted by partition, then topic.
	Partitions []TopicPartition
}

// Membership is one member of a consumer group. Inside a group every
// partition of the subscribed topics is assigned to exactly one member (queue
// semantics); distinct groups each see every record (pub/sub).
//
// Partitions are assigned by partition number: partition p of every
// subscribed topic goes to the same member, so co-partitioned topics stay
// together.
type Membership interface {
	// MemberID identifies the member within its group.
	MemberID() string
	// Assignments delivers the member's assignment, first after joining
	// and then after every rebalance, and a lost assignment
	// (Assignment.Lost) when the member falls out of the group. The
	// channel has a buffer of one and holds only the newest assignment;
	// it is closed by Leave.
	Assignments() <-chan Assignment
	// Leave leaves the group, which rebalances the remaining members.
	Leave(ctx context.Context) error
	// Rebalance asks the group for a new generation: every member
	// rejoins, with its user data as its UserDataFunc then gives it, and
	// gets a new assignment. It does not wait for the new generation. On
	// Kafka a member that is not the group's leader triggers it only
	// when its user data changed since it last joined (KIP-568). After
	// Leave it is a no-op.
	Rebalance(ctx context.Context) error
}

// Broker is what the runtime needs from a partitioned log. Implementations
// are safe for concurrent use.
//
// Errors: unknown topics give an error matching ErrUnknownTopic (errors.Is),
// invalid names ErrInvalidTopicName, bad partition counts ErrInvalidPartitions,
// oversized records ErrRecordTooLarge, reads outside the log and record
// deletions beyond it an *OffsetOutOfRangeError, calls after Close
// ErrClosed.
type Broker interface {
	// CreateTopic creates a topic; ErrTopicExists if it exists.
	CreateTopic(ctx context.Context, name string, cfg TopicConfig) error
	// DeleteTopic deletes a topic and all its data and group offsets.
	DeleteTopic(ctx context.Context, name string) error
	// ListTopics lists topics sorted by name.
	ListTopics(ctx context.Context) ([]TopicInfo, error)
	// DescribeTopic returns one topic's configuration.
	DescribeTopic(ctx context.Context, name string) (TopicInfo, error)

	// Produce appends records, each to its Topic and Partition (or
	// PartitionByKey), and sets their Partition and Offset in place. The
	// records of one call that go to one partition are appended atomically
	// and contiguously. It returns once they are durable under the
	// broker's durability policy. After an error other than a refusal of
	// the input (unknown topic, invalid or oversized record), the records
	// may or may not have been written: a retry may duplicate them, as
	// with a Kafka producer without idempotence.
	Produce(ctx context.Context, records []Record) error
	// NewConsumer returns a Consumer with no partitions assigned. Limits
	// of opts below zero give an error matching ErrInvalidConfig.
	NewConsumer(opts ConsumerOptions) (Consumer, error)
	// ListOffsets returns the earliest and latest offsets of a partition.
	ListOffsets(ctx context.Context, topic string, partition int32) (Offsets, error)
	// DeleteRecords deletes the records of a partition below offset
	// before, as Kafka's DeleteRecords does: the partition's earliest
	// offset rises to before, so fetches below it give
	// *OffsetOutOfRangeError, and offsets are never reused. The new
	// earliest offset is durable like a record, and never moves back.
	// before at or below the earliest offset is a no-op; before above
	// the latest offset, or negative, gives *OffsetOutOfRangeError. A
	// topic whose cleanup policy is CleanupCompact alone refuses it with
	// an error matching ErrInvalidConfig (Kafka's policy violation: the
	// policy must include delete).
	DeleteRecords(ctx context.Context, topic string, partition int32, before int64) error
	// OffsetForTime returns the first offset whose record timestamp is >=
	// ts, or the latest offset if there is none.
	OffsetForTime(ctx context.Context, topic string, partition int32, ts time.Time) (int64, error)

	// CommitOffsets stores group offsets (next offset to consume).
	CommitOffsets(ctx context.Context, group string, offsets map[TopicPartition]int64) error
	// FetchOffsets returns a group's stored offsets for the given
	// partitions; partitions without a stored offset are absent.
	FetchOffsets(ctx context.Context, group string, partitions []TopicPartition) (map[TopicPartition]int64, error)
	// JoinGroup joins group as a new member subscribed to topics; every
	// member of a group must subscribe to the same topics. opts may name
	// the member's stable instance (static membership: it replaces a
	// member of the same InstanceID) and carry user data that every
	// member's Assignment lists (Assignment.Members).
	JoinGroup(ctx context.Context, group string, topics []string, opts JoinOptions) (Membership, error)
	// NewCommitter returns the committer with the given id, unique per
	// writer of the app and stable across its restarts (the app id, the
	// instance id and the worker's index): opening one fences any older
	// committer with the same id (a zombie), whose next Commit fails with
	// ErrFenced. An empty id gives an error matching ErrInvalidConfig.
	NewCommitter(ctx context.Context, id string) (Committer, error)
	// NewAtLeastOnceCommitter returns a committer for at-least-once
	// processing (Kafka Streams' processing.guarantee=at_least_once):
	// its Commit makes the records durable first and only then commits
	// the offsets, fenced by the generation, so a failed or interrupted
	// commit may leave records visible without the offsets (a retry
	// duplicates them) but never offsets without their records. A
	// backend whose atomic commit costs no more may return the committer
	// NewCommitter returns (the embedded broker does). Opening one with an
	// id need not fence an older one with that id. An empty id gives an
	// error matching ErrInvalidConfig.
	NewAtLeastOnceCommitter(ctx context.Context, id string) (Committer, error)

	// Close releases the broker. Blocked calls return ErrClosed.
	Close() error
}

// RecordLimiter is implemented by brokers that refuse records over a size
// limit, so that producers (the runtime) can refuse such a record on its
// own, as an error of the record that made it, instead of failing a whole
// batch or commit.
type RecordLimiter interface {
	// MaxRecordBytes is the largest RecordSize the broker accepts.
	MaxRecordBytes() int
}

// RecordSize is the size of r as brokers count it against a limit: key,
// value, and header keys and values.
func RecordSize(r *Record) int {
	n := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}
