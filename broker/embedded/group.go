package embedded

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/sticky"
)

// coordinator keeps consumer-group membership in memory: it does not
// survive Close (group offsets do; they are in the database).
//
// Each group's changes of membership and the rebalances they trigger
// are serialized by the group's turn (see group.lock), so that the
// members' user data is read (their UserDataFunc called) without mu
// held: a member's function may read its local state, which takes time
// (see rebalanceGroup). Groups take their turns independently: one
// group's rebalance does not hold up another's.
type coordinator struct {
	b  *Broker
	mu struct {
		sync.Mutex
		groups map[string]*group
		seq    uint64 // member ids
		closed bool
		// committers are the ids of the committers opened (NewCommitter).
		committers map[string]*committerID
	}
}

// group is a consumer group. Its fields but name and turn are guarded by
// coordinator.mu, and change only with the turn held (but closeAll's).
type group struct {
	name string
	// turn (capacity 1) is held by the change of membership or the
	// rebalance in progress (see lock): taken before coordinator.mu.
	turn       chan struct{}
	topics     []string // sorted, without duplicates
	generation int64    // never decreases, even when the group empties
	members    []*member
}

// lock takes g's turn, waiting for the change in progress, or returns
// ctx's error when ctx ends first; unlock gives it back.
func (g *group) lock(ctx context.Context) error {
	select {
	case g.turn <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *group) unlock() { <-g.turn }

// lockGroup returns group name, created without members if it is new,
// with its turn taken (see group.lock): ctx's error when ctx ends first,
// broker.ErrClosed once the broker closed. A group created by a join
// that gives up stays without members, as one whose members left:
// ListGroups and DescribeGroup do not show it.
func (c *coordinator) lockGroup(ctx context.Context, name string) (*group, error) {
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return nil, broker.ErrClosed
	}
	g := c.mu.groups[name]
	if g == nil {
		g = &group{name: name, turn: make(chan struct{}, 1)}
		c.mu.groups[name] = g
	}
	c.mu.Unlock()
	if err := g.lock(ctx); err != nil {
		return nil, err
	}
	return g, nil
}

// member is a broker.Membership.
type member struct {
	c        *coordinator
	g        *group
	id       string
	instance string // JoinOptions.InstanceID
	userData []byte // JoinOptions.UserData, copied
	// userDataFunc and balance are JoinOptions'.
	userDataFunc func() []byte
	balance      broker.BalanceFunc
	// owned are the partition numbers of the member's last assignment
	// (guarded by coordinator.mu), which it keeps where balance allows.
	owned []int32
	ch    chan broker.Assignment
	// left and share are guarded by coordinator.mu; share is the
	// member's partitions in the current generation.
	left  bool
	share []broker.TopicPartition
}

func (c *coordinator) init(b *Broker) {
	c.b = b
	c.mu.groups = make(map[string]*group)
}

// JoinGroup joins group as a new member subscribed to topics and triggers
// a rebalance; see broker.Broker. The first assignment is in the
// membership's Assignments channel when JoinGroup returns.
//
// Assignment: the partition numbers 0..n-1, n being the largest partition
// count of the subscribed topics, are dealt to the members (see sticky.Deal):
// each gets n/members or one more, keeping the numbers it had as far as
// that allows (sticky: a member joining or leaving moves only the numbers
// balance needs), and the others go round-robin in join order (member
// ids sort in join order); partition p of every subscribed topic goes to
// the member dealt p. A member's opts.Balance deals them instead (the
// earliest member's that has one, see broker.JoinOptions), with every
// member's user data as its opts.UserDataFunc gives it at the rebalance.
// Every member gets the new generation's assignment at once: one
// rebalance moves a partition (see broker.Assignment), and the new
// generation fences the commits of its old owner.
//
// A join waits for the change of the group's membership in progress,
// if any (another join, a leave, a rebalance reading its members' user
// data), not for other groups'. When ctx ends while it waits, JoinGroup
// returns ctx's error and the group is as if it had not been called.
//
// Static membership: a member joining with the InstanceID of a current
// member replaces it, in its place in the join order, with its partitions:
// the old member's Assignments channel closes and its commits are fenced
// by the new generation.
//
// Errors: an empty group name or topic list, a topic list different from
// the group's current members' (order and duplicates do not matter), or
// UserData over broker.MaxUserData bytes matches broker.ErrInvalidConfig;
// a missing topic broker.ErrUnknownTopic.
func (b *Broker) JoinGroup(ctx context.Context, groupName string, topics []string, opts broker.JoinOptions) (broker.Membership, error) {
	if err := b.enter(); err != nil {
		return nil, err
	}
	defer b.leave()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if groupName == "" {
		return nil, fmt.Errorf("%w: empty group name", broker.ErrInvalidConfig)
	}
	if len(topics) == 0 {
		return nil, fmt.Errorf("%w: group %q: no topics to subscribe to", broker.ErrInvalidConfig, groupName)
	}
	if len(opts.UserData) > broker.MaxUserData {
		return nil, fmt.Errorf("%w: group %q: user data of %d bytes, more than %d", broker.ErrInvalidConfig,
			groupName, len(opts.UserData), broker.MaxUserData)
	}
	sorted := slices.Compact(slices.Sorted(slices.Values(topics)))
	for _, t := range sorted {
		if _, err := b.lookup(t); err != nil {
			return nil, err
		}
	}
	c := &b.groups
	g, err := c.lockGroup(ctx, groupName)
	if err != nil {
		return nil, err
	}
	defer g.unlock()
	m, err := c.join(g, sorted, opts)
	if err != nil {
		return nil, err
	}
	if !c.rebalanceGroup(m.g) {
		return nil, broker.ErrClosed // closeAll closed m's channel
	}
	b.log.Debug("embedded: member joined", "group", groupName, "member", m.id)
	return m, nil
}

// join adds a member with opts to g, subscribed to sorted (its topics,
// sorted and without duplicates), or replaces the member of the same
// instance id. g's turn must be held.
func (c *coordinator) join(g *group, sorted []string, opts broker.JoinOptions) (*member, error) {
	b := c.b
	groupName := g.name
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		return nil, broker.ErrClosed
	}
	if len(g.members) > 0 && !slices.Equal(g.topics, sorted) {
		return nil, fmt.Errorf("%w: group %q: members subscribe to %v, not %v", broker.ErrInvalidConfig, groupName, g.topics, sorted)
	}
	g.topics = sorted
	c.mu.seq++
	m := &member{c: c, g: g, id: fmt.Sprintf("%s-%010d", groupName, c.mu.seq), instance: opts.InstanceID,
		userData: slices.Clone(opts.UserData), userDataFunc: opts.UserDataFunc, balance: opts.Balance,
		ch: make(chan broker.Assignment, 1)}
	replaced := false
	if m.instance != "" {
		for i, old := range g.members {
			if old.instance == m.instance {
				old.left = true
				close(old.ch)
				m.owned = old.owned
				g.members[i] = m
				replaced = true
				b.log.Debug("embedded: static member replaced", "group", groupName, "member", old.id, "instance", m.instance)
				break
			}
		}
	}
	if !replaced {
		g.members = append(g.members, m)
	}
	return m, nil
}

// rebalanceGroup starts a new generation of g and sends every member its
// assignment, with the user data each gives (currentUserData) read
// without c.mu held. g's turn must be held (and c.mu not): the
// membership changes only under it, so the members whose user data was
// read are the members the generation assigns; only closeAll may come
// in between, and rebalanceGroup then returns false.
func (c *coordinator) rebalanceGroup(g *group) bool {
	c.mu.Lock()
	members := slices.Clone(g.members)
	closed := c.mu.closed
	c.mu.Unlock()
	if closed {
		return false
	}
	userData := make([][]byte, len(members))
	for i, m := range members {
		userData[i] = m.currentUserData()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		return false
	}
	c.rebalance(g, userData)
	return true
}

// rebalance starts a new generation of g and sends every member its
// assignment; userData are the members' user data. c.mu must be held.
func (c *coordinator) rebalance(g *group, userData [][]byte) {
	g.generation++
	if len(g.members) == 0 {
		return
	}
	counts := make([]int32, len(g.topics))
	var n int32
	c.b.mu.RLock()
	for i, name := range g.topics {
		if t := c.b.mu.topics[name]; t != nil {
			counts[i] = int32(len(t.parts))
			n = max(n, counts[i])
		}
	}
	c.b.mu.RUnlock()
	// Every member's share, then the generation's member list, which
	// every assignment carries (sorted by id; ids are not in join order
	// once a static member replaced another).
	numbers, data := c.assignNumbers(g, userData, n)
	shares := make([][]broker.TopicPartition, len(g.members))
	members := make([]broker.Member, len(g.members))
	for i, m := range g.members {
		m.owned = numbers[i]
		share := []broker.TopicPartition{}
		for _, p := range numbers[i] {
			for ti, name := range g.topics {
				if p < counts[ti] {
					share = append(share, broker.TopicPartition{Topic: name, Partition: p})
				}
			}
		}
		shares[i] = share
		m.share = share
		members[i] = broker.Member{ID: m.id, UserData: userData[i], Partitions: share}
	}
	slices.SortFunc(members, func(x, y broker.Member) int { return strings.Compare(x.ID, y.ID) })
	for i, m := range g.members {
		a := broker.Assignment{Generation: g.generation, Partitions: shares[i], Members: members, Data: data}
		// Drain and replace: the channel holds only the newest.
		select {
		case <-m.ch:
		default:
		}
		m.ch <- a
	}
}

// currentUserData returns the user data m shares now: its UserDataFunc's
// (nil when over broker.MaxUserData), or its UserData.
func (m *member) currentUserData() []byte {
	if m.userDataFunc == nil {
		return m.userData
	}
	d := m.userDataFunc()
	if len(d) > broker.MaxUserData {
		m.c.b.log.Warn("embedded: user data too large, shared as none", "group", m.g.name, "member", m.id, "bytes", len(d))
		return nil
	}
	return slices.Clone(d)
}

// assignNumbers deals the partition numbers 0..n-1 to g's members (in
// join order), given their current user data: with the JoinOptions.Balance
// of the earliest member that has one, when it returns a valid
// assignment (see broker.BalanceFunc), and the data it returned;
// otherwise as sticky.Deal does, and no data. c.mu must be held.
func (c *coordinator) assignNumbers(g *group, userData [][]byte, n int32) ([][]int32, []byte) {
	numbers := make([][]int32, len(g.members))
	if i := slices.IndexFunc(g.members, func(m *member) bool { return m.balance != nil }); i >= 0 {
		order := make([]int, len(g.members)) // the members sorted by id
		for j := range order {
			order[j] = j
		}
		slices.SortFunc(order, func(x, y int) int { return strings.Compare(g.members[x].id, g.members[y].id) })
		in := make([]broker.BalanceMember, len(order))
		for j, k := range order {
			m := g.members[k]
			in[j] = broker.BalanceMember{ID: m.id, UserData: userData[k], Owned: slices.Clone(m.owned)}
		}
		assigned, data := g.members[i].balance(in, n)
		err := broker.CheckBalance(assigned, len(in), n)
		if err == nil {
			for j, k := range order {
				numbers[k] = slices.Sorted(slices.Values(assigned[j]))
			}
			return numbers, data
		}
		c.b.log.Warn("embedded: balance of a member ignored", "group", g.name, "member", g.members[i].id, "err", err)
	}
	owned := make([][]int32, len(g.members))
	for i, m := range g.members {
		owned[i] = m.owned
	}
	return sticky.Deal(owned, n), nil
}

// checkMember returns an error matching broker.ErrFenced unless group is at
// generation and member belongs to it.
func (c *coordinator) checkMember(groupName string, generation int64, memberID string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.mu.groups[groupName]
	if g == nil {
		return fmt.Errorf("%w: group %q has no members", broker.ErrFenced, groupName)
	}
	if g.generation != generation {
		return fmt.Errorf("%w: group %q is at generation %d, not %d", broker.ErrFenced, groupName, g.generation, generation)
	}
	for _, m := range g.members {
		if m.id == memberID {
			return nil
		}
	}
	return fmt.Errorf("%w: %q is not a member of group %q", broker.ErrFenced, memberID, groupName)
}

// committerID returns the shared state of the committers with id.
func (c *coordinator) committerID(id string) *committerID {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.mu.committers[id]
	if s == nil {
		if c.mu.committers == nil {
			c.mu.committers = map[string]*committerID{}
		}
		s = &committerID{}
		c.mu.committers[id] = s
	}
	return s
}

// closeAll ends every membership; JoinGroup fails afterwards.
func (c *coordinator) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.closed = true
	for _, g := range c.mu.groups {
		for _, m := range g.members {
			m.left = true
			close(m.ch)
		}
		g.members = nil
	}
}

// MemberID returns the member's id, unique within the broker's lifetime.
func (m *member) MemberID() string { return m.id }

// Assignments delivers the newest assignment; see broker.Membership. It is
// closed by Leave and by the broker's Close.
func (m *member) Assignments() <-chan broker.Assignment { return m.ch }

// Rebalance starts a new generation of the member's group, as a join or
// a leave does; see broker.Membership. It is a no-op once the member left.
// It waits for the change of the group's membership in progress, if any,
// and returns ctx's error, starting nothing, when ctx ends first.
func (m *member) Rebalance(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c := m.c
	if err := m.g.lock(ctx); err != nil {
		return err
	}
	defer m.g.unlock()
	c.mu.Lock()
	left := m.left
	c.mu.Unlock()
	if left {
		return nil
	}
	c.rebalanceGroup(m.g)
	c.b.log.Debug("embedded: rebalance requested", "group", m.g.name, "member", m.id)
	return nil
}

// Leave leaves the group, which rebalances the remaining members, and
// closes the Assignments channel. Leaving twice, or after the broker
// closed, is a no-op. It waits for the change of the group's membership
// in progress, if any, whatever ctx says: the group has no session
// timeout, so a member that failed to leave would keep its partitions
// for as long as the broker runs.
func (m *member) Leave(context.Context) error {
	c := m.c
	_ = m.g.lock(context.Background()) // never fails
	defer m.g.unlock()
	c.mu.Lock()
	if m.left {
		c.mu.Unlock()
		return nil
	}
	m.left = true
	close(m.ch)
	g := m.g
	g.members = slices.DeleteFunc(g.members, func(x *member) bool { return x == m })
	c.mu.Unlock()
	c.rebalanceGroup(g)
	c.b.log.Debug("embedded: member left", "group", g.name, "member", m.id)
	return nil
}
