package kafka

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/sticky"
)

// ProtocolName is the name of the group protocol (assignor) of the
// broker's members. Every member of a group must use it: a Kafka consumer
// with another assignor cannot join the group.
const ProtocolName = "duality-copartitioned-v1"

// balancer is the kgo.GroupBalancer of one member. It assigns partition
// numbers, not partitions: partition p of every subscribed topic goes to
// the same member (co-partitioning), as many numbers to each member as
// balance allows (the counts differ by at most one), and each member
// keeps the numbers it owned before as far as balance allows (sticky).
// Every member's user data and partitions travel to every member in the
// assignment's user data.
type balancer struct {
	userData []byte
	// userDataFunc and balance are the member's JoinOptions'.
	userDataFunc func() []byte
	balance      broker.BalanceFunc
	log          *slog.Logger

	mu struct {
		sync.Mutex
		// owned are the partition numbers this member was assigned
		// last, sent with its next join for stickiness.
		owned []int32
		// members of the last assignment received, and this
		// member's partitions in it.
		members  []broker.Member
		assigned []broker.TopicPartition
		data     []byte // the assignment's Balance data
	}
}

// currentUserData returns the user data the member joins with: its
// UserDataFunc's (nil when over broker.MaxUserData), or its UserData.
func (b *balancer) currentUserData() []byte {
	if b.userDataFunc == nil {
		return b.userData
	}
	d := b.userDataFunc()
	if len(d) > broker.MaxUserData {
		b.log.Warn("kafka: user data too large, shared as none", "bytes", len(d))
		return nil
	}
	return d
}

var _ kgo.GroupBalancer = (*balancer)(nil)

func (*balancer) ProtocolName() string { return ProtocolName }

// IsCooperative is false: kgo's cooperative protocol (give up what moves,
// then a second rebalance assigns it) is about the partitions kgo's
// client owns, and the member's client owns none (see
// ParseSyncAssignment). A partition moves in one step, fenced by the
// generation, and the runtime keeps the partitions that stay running:
// see broker.Assignment.
func (*balancer) IsCooperative() bool { return false }

// JoinGroupMetadata sends the topics, the member's user data and the
// partition numbers it owns.
func (b *balancer) JoinGroupMetadata(topics []string, _ map[string][]int32, _ int32) []byte {
	b.mu.Lock()
	owned := b.mu.owned
	b.mu.Unlock()
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Version = 0
	meta.Topics = topics
	meta.UserData = encodeJoinData(b.currentUserData(), owned)
	return meta.AppendTo(nil)
}

// ParseSyncAssignment decodes this member's partitions and keeps them,
// with the group's members, for the assignment callback. It tells kgo
// that nothing is assigned: the member's client takes part in the group
// but never fetches nor looks up committed offsets (Consumers read the
// partitions).
func (b *balancer) ParseSyncAssignment(data []byte) (map[string][]int32, error) {
	var a kmsg.ConsumerMemberAssignment
	if err := a.ReadFrom(data); err != nil {
		return nil, fmt.Errorf("kafka: malformed assignment: %w", err)
	}
	members, data, err := decodeMembers(a.UserData)
	if err != nil {
		return nil, err
	}
	assigned := []broker.TopicPartition{}
	var owned []int32
	for _, t := range a.Topics {
		for _, p := range t.Partitions {
			assigned = append(assigned, broker.TopicPartition{Topic: t.Topic, Partition: p})
			if !slices.Contains(owned, p) {
				owned = append(owned, p)
			}
		}
	}
	slices.Sort(owned)
	slices.SortFunc(assigned, compareTP)
	b.mu.Lock()
	b.mu.owned = owned
	b.mu.members = members
	b.mu.assigned = assigned
	b.mu.data = data
	b.mu.Unlock()
	return map[string][]int32{}, nil
}

// last returns this member's partitions, the group's members and the
// Balance data of the last assignment.
func (b *balancer) last() (assigned []broker.TopicPartition, members []broker.Member, data []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.mu.assigned, b.mu.members, b.mu.data
}

// joinMember is a member as the leader sees it in JoinGroup.
type joinMember struct {
	id       string
	topics   []string
	userData []byte
	owned    []int32
}

// MemberBalancer decodes the members' metadata.
func (b *balancer) MemberBalancer(members []kmsg.JoinGroupResponseMember) (kgo.GroupMemberBalancer, map[string]struct{}, error) {
	mb := &memberBalancer{hook: b.balance, log: b.log}
	topics := make(map[string]struct{})
	for _, m := range members {
		var meta kmsg.ConsumerMemberMetadata
		if err := meta.ReadFrom(m.ProtocolMetadata); err != nil {
			return nil, nil, fmt.Errorf("kafka: member %s: malformed metadata: %w", m.MemberID, err)
		}
		userData, owned, err := decodeJoinData(meta.UserData)
		if err != nil {
			return nil, nil, fmt.Errorf("kafka: member %s: %w", m.MemberID, err)
		}
		for _, t := range meta.Topics {
			topics[t] = struct{}{}
		}
		mb.members = append(mb.members, joinMember{id: m.MemberID, topics: meta.Topics, userData: userData, owned: owned})
	}
	return mb, topics, nil
}

type memberBalancer struct {
	members []joinMember
	hook    broker.BalanceFunc
	log     *slog.Logger
}

// Balance assigns the partitions; see balancer.
func (mb *memberBalancer) Balance(topics map[string]int32) kgo.IntoSyncAssignment {
	plan := balance(mb.members, topics, mb.hook, mb.log)
	return plan
}

// syncPlan is the leader's assignment of every member.
type syncPlan struct {
	members []broker.Member // sorted by id
	data    []byte          // the hook's data, shared with every member
}

// balance computes the assignment: see balancer. hook, when not nil,
// deals the partition numbers instead of sticky.Deal (see
// hookNumbers).
func balance(members []joinMember, topics map[string]int32, hook broker.BalanceFunc, log *slog.Logger) *syncPlan {
	members = slices.Clone(members)
	slices.SortFunc(members, func(x, y joinMember) int { return cmp.Compare(x.id, y.id) })
	var n int32
	for _, count := range topics {
		n = max(n, count)
	}
	numbers, data := hookNumbers(hook, members, n, log)
	if numbers == nil {
		owned := make([][]int32, len(members))
		for i, m := range members {
			owned[i] = m.owned
		}
		numbers = sticky.Deal(owned, n)
	}
	plan := &syncPlan{data: data}
	names := slices.Sorted(maps.Keys(topics))
	for i, m := range members {
		bm := broker.Member{ID: m.id, UserData: m.userData, Partitions: []broker.TopicPartition{}}
		for _, p := range numbers[i] {
			for _, t := range names {
				if p < topics[t] && slices.Contains(m.topics, t) {
					bm.Partitions = append(bm.Partitions, broker.TopicPartition{Topic: t, Partition: p})
				}
			}
		}
		plan.members = append(plan.members, bm)
	}
	return plan
}

// hookNumbers deals the partition numbers 0..n-1 to members (sorted by
// id) with hook, the leader's JoinOptions.Balance: nil when there is no
// hook or its result is invalid (logged), and the data it returned.
func hookNumbers(hook broker.BalanceFunc, members []joinMember, n int32, log *slog.Logger) ([][]int32, []byte) {
	if hook == nil {
		return nil, nil
	}
	in := make([]broker.BalanceMember, len(members))
	for i, m := range members {
		in[i] = broker.BalanceMember{ID: m.id, UserData: m.userData, Owned: slices.Sorted(slices.Values(m.owned))}
	}
	assigned, data := hook(in, n)
	if err := broker.CheckBalance(assigned, len(in), n); err != nil {
		log.Warn("kafka: the leader's balance ignored", "err", err)
		return nil, nil
	}
	numbers := make([][]int32, len(assigned))
	for i, nums := range assigned {
		numbers[i] = slices.Sorted(slices.Values(nums))
	}
	return numbers, data
}

// IntoSyncAssignment encodes each member's assignment, with every
// member's user data and partitions in the user data.
func (p *syncPlan) IntoSyncAssignment() []kmsg.SyncGroupRequestGroupAssignment {
	shared := encodeMembers(p.members, p.data)
	out := make([]kmsg.SyncGroupRequestGroupAssignment, 0, len(p.members))
	for _, m := range p.members {
		a := kmsg.NewConsumerMemberAssignment()
		a.Version = 0
		byTopic := make(map[string][]int32)
		for _, tp := range m.Partitions {
			byTopic[tp.Topic] = append(byTopic[tp.Topic], tp.Partition)
		}
		for _, t := range slices.Sorted(maps.Keys(byTopic)) {
			at := kmsg.NewConsumerMemberAssignmentTopic()
			at.Topic = t
			at.Partitions = byTopic[t]
			a.Topics = append(a.Topics, at)
		}
		a.UserData = shared
		sa := kmsg.NewSyncGroupRequestGroupAssignment()
		sa.MemberID = m.ID
		sa.MemberAssignment = a.AppendTo(nil)
		out = append(out, sa)
	}
	return out
}

// Encodings of the user data: a version byte, then uvarint-prefixed
// fields.
const dataVersion = 1

var errMalformed = errors.New("kafka: malformed group user data")

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errMalformed
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = errMalformed
		return nil
	}
	if n == 0 {
		return nil
	}
	out := slices.Clone(r.b[:n])
	r.b = r.b[n:]
	return out
}

func (r *reader) int32() int32 {
	v := r.uvarint()
	if v > 1<<31-1 {
		r.err = errMalformed
	}
	return int32(v)
}

// encodeJoinData encodes a member's join metadata: its user data and
// the partition numbers it owns.
func encodeJoinData(userData []byte, owned []int32) []byte {
	out := []byte{dataVersion}
	out = appendBytes(out, userData)
	out = binary.AppendUvarint(out, uint64(len(owned)))
	for _, p := range owned {
		out = binary.AppendUvarint(out, uint64(p))
	}
	return out
}

func decodeJoinData(data []byte) (userData []byte, owned []int32, err error) {
	if len(data) == 0 || data[0] != dataVersion {
		return nil, nil, fmt.Errorf("%w: version %v, want %d (a member of another Duality version, or not of Duality, is in the group)", errMalformed, data[:min(len(data), 1)], dataVersion)
	}
	r := &reader{b: data[1:]}
	userData = r.bytes()
	n := r.uvarint()
	for i := uint64(0); i < n && r.err == nil; i++ {
		owned = append(owned, r.int32())
	}
	return userData, owned, r.err
}

// encodeMembers encodes every member of an assignment, then the data of
// the balance that made it (a field older decoders do not read).
func encodeMembers(members []broker.Member, data []byte) []byte {
	out := []byte{dataVersion}
	out = binary.AppendUvarint(out, uint64(len(members)))
	for _, m := range members {
		out = appendBytes(out, []byte(m.ID))
		out = appendBytes(out, m.UserData)
		out = binary.AppendUvarint(out, uint64(len(m.Partitions)))
		for _, tp := range m.Partitions {
			out = appendBytes(out, []byte(tp.Topic))
			out = binary.AppendUvarint(out, uint64(tp.Partition))
		}
	}
	if data != nil {
		out = appendBytes(out, data)
	}
	return out
}

func decodeMembers(data []byte) ([]broker.Member, []byte, error) {
	if len(data) == 0 || data[0] != dataVersion {
		return nil, nil, fmt.Errorf("%w: assignment of version %v, want %d", errMalformed, data[:min(len(data), 1)], dataVersion)
	}
	r := &reader{b: data[1:]}
	n := r.uvarint()
	var members []broker.Member
	for i := uint64(0); i < n && r.err == nil; i++ {
		m := broker.Member{ID: string(r.bytes()), UserData: r.bytes()}
		np := r.uvarint()
		m.Partitions = []broker.TopicPartition{}
		for j := uint64(0); j < np && r.err == nil; j++ {
			m.Partitions = append(m.Partitions, broker.TopicPartition{Topic: string(r.bytes()), Partition: r.int32()})
		}
		members = append(members, m)
	}
	var balanced []byte
	if r.err == nil && len(r.b) > 0 {
		balanced = r.bytes()
	}
	if r.err != nil {
		return nil, nil, r.err
	}
	return members, balanced, nil
}
