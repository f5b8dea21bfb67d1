package broker

import "context"

// GroupAdmin is implemented by brokers that list and describe consumer
// groups, for tools that inspect a log (the duality command's groups
// subcommand). Both backends of this module implement it; it is not part
// of Broker so that wrappers of a Broker need not.
type GroupAdmin interface {
	// ListGroups lists the groups that have members or committed
	// offsets, sorted by name.
	ListGroups(ctx context.Context) ([]string, error)
	// DescribeGroup returns a group's members and committed offsets. A
	// group with neither gives an error matching ErrUnknownGroup.
	DescribeGroup(ctx context.Context, group string) (GroupDescription, error)
}

// GroupDescription is a consumer group as GroupAdmin.DescribeGroup sees
// it.
type GroupDescription struct {
	// Name is the group's name.
	Name string
	// State is "Stable" while the group has members and "Empty" when it
	// has none; a Kafka cluster may report its other states
	// (PreparingRebalance, CompletingRebalance, Dead).
	State string
	// Members are the group's current members, sorted by ID. On the
	// embedded broker they are the members joined in the process that
	// opened it: a tool that opens a data directory sees none, because a
	// running app holds the directory.
	Members []GroupMember
	// Offsets are the group's committed offsets (the next offset to
	// consume) of every partition that has one.
	Offsets map[TopicPartition]int64
}

// GroupMember is one member of a described group.
type GroupMember struct {
	// ID is the member id (Membership.MemberID).
	ID string
	// InstanceID is the member's static identity (JoinOptions.InstanceID),
	// empty for a dynamic member.
	InstanceID string
	// ClientID and Host are the Kafka client id and host of the member;
	// empty on the embedded broker.
	ClientID, Host string
	// Partitions are the member's, sorted by topic, then partition.
	Partitions []TopicPartition
}
