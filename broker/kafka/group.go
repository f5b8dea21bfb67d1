package kafka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/duality-streams/duality/broker"
)

// JoinGroup joins group through Kafka's group protocol (a classic
// consumer group, protocol ProtocolName) as a member subscribed to
// topics; see broker.Broker. The member is a franz-go group client of its
// own that never fetches records (its topics are paused): the caller
// reads its partitions with a Consumer. It returns once the first
// assignment is in the Assignments channel.
//
// Partitions are assigned by the group leader's balancer: partition p of
// every subscribed topic goes to one member, the members' shares differ by
// at most one partition number, a member keeps the numbers it had as far
// as balance allows, and Assignment.Members lists every member with its
// opts.UserData and partitions; the leader's opts.Balance deals the
// partition numbers instead, when it has one (see broker.JoinOptions).
// A rebalance moves a partition in one
// step: its new owner gets it in the new generation, whose number fences
// the commits of its old owner (KIP-447); every member gets its new
// assignment, and the runtime keeps the partitions that stay running
// (see broker.Assignment). A member that falls out of the group (its
// session timed out, the coordinator forgot it, a rejoin failed)
// delivers a lost assignment (broker.Assignment.Lost) at once, then
// rejoins and delivers the next assignment.
//
// With opts.InstanceID the member is static (KIP-345): a restart with
// the same id within the session timeout takes its place without a
// rebalance, and Leave does not leave the group (the partitions move
// after the session timeout, kgo.SessionTimeout, 45s by default). A
// member replaced by a newer one with its InstanceID (the coordinator
// answers FENCED_INSTANCE_ID to it, at its next heartbeat) is done: its
// Assignments channel closes and it never rejoins, as a Java consumer
// stops at FencedInstanceIdException (two instances with one id would
// otherwise take the membership from each other in turn).
//
// Errors: an empty group or topic list, or opts.UserData over
// broker.MaxUserData, match broker.ErrInvalidConfig; an unknown topic
// broker.ErrUnknownTopic; ctx's error if it ends before the first
// assignment; broker.ErrFenced if a newer member with opts.InstanceID
// replaced this one before it.
func (b *Broker) JoinGroup(ctx context.Context, group string, topics []string, opts broker.JoinOptions) (broker.Membership, error) {
	if err := b.enter(); err != nil {
		return nil, err
	}
	if group == "" {
		return nil, fmt.Errorf("%w: empty group name", broker.ErrInvalidConfig)
	}
	if len(topics) == 0 {
		return nil, fmt.Errorf("%w: group %q: no topics to subscribe to", broker.ErrInvalidConfig, group)
	}
	if len(opts.UserData) > broker.MaxUserData {
		return nil, fmt.Errorf("%w: group %q: user data of %d bytes, at most %d allowed", broker.ErrInvalidConfig, group, len(opts.UserData), broker.MaxUserData)
	}
	sorted := slices.Compact(slices.Sorted(slices.Values(topics)))
	for _, t := range sorted {
		if err := checkTopic(t); err != nil {
			return nil, err
		}
	}
	if _, err := b.meta.partitions(ctx, sorted, true); err != nil {
		return nil, err
	}
	mctx, cancel := context.WithCancel(context.Background())
	m := &member{
		b:     b,
		group: group,
		bal: &balancer{userData: slices.Clone(opts.UserData), userDataFunc: opts.UserDataFunc, balance: opts.Balance,
			log: b.log},
		ch:     make(chan broker.Assignment, 1),
		first:  make(chan struct{}),
		cancel: cancel,
	}
	kopts := []kgo.Opt{
		// Canceled when the member is fenced, so that kgo's group
		// loop ends instead of rejoining (see fencedHook).
		kgo.WithContext(mctx),
		kgo.WithHooks(fencedHook{m}),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(sorted...),
		kgo.Balancers(m.bal),
		kgo.DisableAutoCommit(),
		kgo.OnPartitionsAssigned(m.onAssigned),
		kgo.OnPartitionsRevoked(func(context.Context, *kgo.Client, map[string][]int32) {}),
		kgo.OnPartitionsLost(m.onLost),
	}
	if opts.InstanceID != "" {
		kopts = append(kopts, kgo.InstanceID(opts.InstanceID))
	}
	cl, err := b.newClient(kopts...)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("kafka: group %q: %w", group, err)
	}
	// The member only takes part in the group: its partitions are read
	// by Consumers. kgo is told that nothing is assigned (see the
	// balancer), and the topics are paused as well.
	cl.PauseFetchTopics(sorted...)
	m.cl = cl
	if err := b.track(m); err != nil {
		cl.Close()
		cancel()
		return nil, err
	}
	select {
	case <-m.first:
		return m, nil
	case <-ctx.Done():
		m.close()
		b.untrack(m)
		return nil, ctx.Err()
	case <-b.closedCh:
		return nil, broker.ErrClosed
	case <-mctx.Done():
		// Fenced before the first assignment: another member joined
		// with opts.InstanceID meanwhile.
		select {
		case <-m.first:
			return m, nil
		default:
		}
		m.close()
		b.untrack(m)
		return nil, fmt.Errorf("%w: group %q: a newer member joined with instance id %q", broker.ErrFenced, group, opts.InstanceID)
	}
}

// member is a broker.Membership.
type member struct {
	b     *Broker
	group string
	cl    *kgo.Client
	bal   *balancer
	ch    chan broker.Assignment
	first chan struct{}
	// cancel ends the client's context: kgo's group loop stops.
	cancel context.CancelFunc

	mu struct {
		sync.Mutex
		id     string
		left   bool
		gotOne bool
		// gen is the generation of the last assignment delivered;
		// lost says it was lost since (onLost).
		gen  int64
		lost bool
	}
	leaveOnce sync.Once
}

// onAssigned delivers a generation's assignment: kgo calls it after
// every rebalance, also when nothing is assigned (always, for kgo: the
// balancer keeps the partitions to itself, see ParseSyncAssignment).
func (m *member) onAssigned(_ context.Context, cl *kgo.Client, _ map[string][]int32) {
	id, gen := cl.GroupMetadata()
	assigned, members, data := m.bal.last()
	a := broker.Assignment{Generation: int64(gen), Partitions: slices.Clone(assigned), Data: data}
	a.Members = make([]broker.Member, len(members))
	for i, mm := range members {
		a.Members[i] = broker.Member{ID: mm.ID, UserData: mm.UserData, Partitions: slices.Clone(mm.Partitions)}
	}
	slices.SortFunc(a.Members, func(x, y broker.Member) int { return cmp.Compare(x.ID, y.ID) })
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.left {
		return
	}
	m.mu.id = id
	m.mu.gen, m.mu.lost = a.Generation, false
	m.deliver(a)
	if !m.mu.gotOne {
		m.mu.gotOne = true
		close(m.first)
	}
	m.b.log.Debug("kafka: assigned", "group", m.group, "member", id, "generation", gen, "partitions", len(a.Partitions))
}

// onLost delivers a lost assignment (broker.Assignment.Lost): kgo calls
// it when its group session ended in an error (a heartbeat or rejoin
// the coordinator refused: the member timed out or is unknown, a
// request failed), before it backs off and rejoins. The partitions may
// be another member's by now, so the runtime must stop working on
// them at once rather than at its next, fenced, commit. Nothing is
// delivered before the first assignment, nor twice for one loss.
func (m *member) onLost(_ context.Context, _ *kgo.Client, _ map[string][]int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.left || !m.mu.gotOne || m.mu.lost {
		return
	}
	m.mu.lost = true
	m.deliver(broker.Assignment{Generation: m.mu.gen, Partitions: []broker.TopicPartition{}, Lost: true})
	m.b.log.Info("kafka: assignment lost: the member fell out of the group and rejoins",
		"group", m.group, "member", m.mu.id, "generation", m.mu.gen)
}

// deliver replaces the assignment in m.ch, if any, by a. m.mu must be
// held.
func (m *member) deliver(a broker.Assignment) {
	select {
	case <-m.ch:
	default:
	}
	m.ch <- a
}

func compareTP(x, y broker.TopicPartition) int {
	return cmp.Or(cmp.Compare(x.Partition, y.Partition), cmp.Compare(x.Topic, y.Topic))
}

// MemberID returns the member id the coordinator gave the member at its
// last assignment.
func (m *member) MemberID() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mu.id
}

// Assignments delivers the newest assignment; it is closed by Leave and
// by the broker's Close.
func (m *member) Assignments() <-chan broker.Assignment { return m.ch }

// Rebalance makes the member rejoin the group (kgo's ForceRebalance),
// with its user data as opts.UserDataFunc then gives it: the group
// rebalances when the member is its leader or its user data changed
// (KIP-568), else the member keeps its assignment. It does not wait.
func (m *member) Rebalance(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	left := m.mu.left
	m.mu.Unlock()
	if !left {
		m.cl.ForceRebalance()
	}
	return nil
}

// Leave leaves the group (a static member does not: see JoinGroup) and
// closes the member's client and the Assignments channel. Leaving twice
// is a no-op.
func (m *member) Leave(ctx context.Context) error {
	m.b.untrack(m)
	var err error
	m.leaveOnce.Do(func() {
		err = m.cl.LeaveGroupContext(ctx)
		m.finish()
	})
	if err != nil {
		return m.b.mapErr(err, "", -1)
	}
	return nil
}

// close is Leave at the broker's Close.
func (m *member) close() {
	m.leaveOnce.Do(m.finish)
}

func (m *member) finish() {
	m.mu.Lock()
	m.mu.left = true
	close(m.ch)
	m.mu.Unlock()
	m.cl.Close()
	m.cancel()
}

// fencedHook ends its member when the group fences it: a newer member
// joined with its InstanceID.
type fencedHook struct{ m *member }

// OnGroupManageError implements kgo.HookGroupManageError. kgo calls it
// on its group loop, before it backs off and rejoins: canceling the
// client's context here ends the loop (no rejoin, which would fence the
// newer member in turn); the rest of the closing, which waits for that
// loop, runs on a goroutine of its own.
func (h fencedHook) OnGroupManageError(err error) {
	if !errors.Is(err, kerr.FencedInstanceID) {
		return
	}
	m := h.m
	m.cancel()
	m.b.log.Info("kafka: member fenced: a newer member has its instance id", "group", m.group, "member", m.MemberID(), "err", err)
	go func() {
		m.b.untrack(m)
		m.close()
	}()
}
