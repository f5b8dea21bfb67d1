package embedded

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/duality-streams/duality/broker"
)

var _ broker.GroupAdmin = (*Broker)(nil)

// ListGroups lists the groups that have members in this process or
// committed offsets in the data directory, sorted by name; see
// broker.GroupAdmin.
func (b *Broker) ListGroups(ctx context.Context) ([]string, error) {
	if err := b.enter(); err != nil {
		return nil, err
	}
	defer b.leave()
	if err := b.submitEntered(ctx, &writeOp{kind: opBarrier}); err != nil {
		return nil, err
	}
	names := map[string]struct{}{}
	c := &b.groups
	c.mu.Lock()
	for name, g := range c.mu.groups {
		if len(g.members) > 0 {
			names[name] = struct{}{}
		}
	}
	c.mu.Unlock()
	b.mu.RLock()
	for _, t := range b.mu.topics {
		for _, p := range t.parts {
			p.mu.Lock()
			for g := range p.groups {
				names[g] = struct{}{}
			}
			p.mu.Unlock()
		}
	}
	b.mu.RUnlock()
	out := make([]string, 0, len(names))
	for name := range names {
		out = append(out, name)
	}
	slices.Sort(out)
	return out, nil
}

// DescribeGroup returns a group's members (those joined through this
// Broker: a running app holds the data directory, so a tool that opens it
// sees none) and its committed offsets; see broker.GroupAdmin. Offsets of
// commits accepted before the call are included. A group with neither
// members nor offsets gives an error matching broker.ErrUnknownGroup.
func (b *Broker) DescribeGroup(ctx context.Context, group string) (broker.GroupDescription, error) {
	if err := b.enter(); err != nil {
		return broker.GroupDescription{}, err
	}
	defer b.leave()
	if err := b.submitEntered(ctx, &writeOp{kind: opBarrier}); err != nil {
		return broker.GroupDescription{}, err
	}
	d := broker.GroupDescription{Name: group, State: "Empty", Offsets: map[broker.TopicPartition]int64{}}
	c := &b.groups
	c.mu.Lock()
	if g := c.mu.groups[group]; g != nil {
		for _, m := range g.members {
			parts := slices.Clone(m.share)
			slices.SortFunc(parts, func(x, y broker.TopicPartition) int {
				return cmp.Or(strings.Compare(x.Topic, y.Topic), cmp.Compare(x.Partition, y.Partition))
			})
			d.Members = append(d.Members, broker.GroupMember{ID: m.id, InstanceID: m.instance, Partitions: parts})
		}
	}
	c.mu.Unlock()
	slices.SortFunc(d.Members, func(x, y broker.GroupMember) int { return strings.Compare(x.ID, y.ID) })
	if len(d.Members) > 0 {
		d.State = "Stable"
	}
	b.mu.RLock()
	for _, t := range b.mu.topics {
		for _, p := range t.parts {
			p.mu.Lock()
			if off, ok := p.groups[group]; ok {
				d.Offsets[broker.TopicPartition{Topic: t.name, Partition: p.num}] = off
			}
			p.mu.Unlock()
		}
	}
	b.mu.RUnlock()
	if len(d.Members) == 0 && len(d.Offsets) == 0 {
		return broker.GroupDescription{}, fmt.Errorf("%w: %q has no members and no committed offsets", broker.ErrUnknownGroup, group)
	}
	return d, nil
}
