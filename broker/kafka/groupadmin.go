package kafka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/duality-streams/duality/broker"
)

var _ broker.GroupAdmin = (*Broker)(nil)

// ListGroups lists the cluster's consumer groups (those with members or
// committed offsets), sorted by name; see broker.GroupAdmin.
func (b *Broker) ListGroups(ctx context.Context) ([]string, error) {
	if err := b.enter(); err != nil {
		return nil, err
	}
	listed, err := b.adm.ListGroups(ctx)
	if err != nil {
		return nil, b.mapErr(err, "", -1)
	}
	out := []string{}
	for _, g := range listed.Sorted() {
		if g.State != "Dead" {
			out = append(out, g.Group)
		}
	}
	return out, nil
}

// DescribeGroup returns a group's state and members as the cluster's
// coordinator reports them, with each member's partitions (for groups
// of Kafka's consumer protocol, such as this package's and Java
// consumers'), and its committed offsets, stable as FetchOffsets reads
// them; see broker.GroupAdmin. A group with neither members nor offsets
// gives an error matching broker.ErrUnknownGroup.
func (b *Broker) DescribeGroup(ctx context.Context, group string) (broker.GroupDescription, error) {
	if err := b.enter(); err != nil {
		return broker.GroupDescription{}, err
	}
	if group == "" {
		return broker.GroupDescription{}, fmt.Errorf("%w: empty group name", broker.ErrInvalidConfig)
	}
	described, err := b.adm.DescribeGroups(ctx, group)
	if err != nil {
		return broker.GroupDescription{}, b.mapErr(err, "", -1)
	}
	dg, ok := described[group]
	if !ok {
		return broker.GroupDescription{}, fmt.Errorf("%w: %q: the cluster did not describe it", broker.ErrUnknownGroup, group)
	}
	// Kafka describes an unknown group as Dead, kfake as GROUP_ID_NOT_FOUND:
	// neither has members, and the offsets decide.
	if errors.Is(dg.Err, kerr.GroupIDNotFound) {
		dg = kadm.DescribedGroup{State: "Dead"}
	}
	if dg.Err != nil {
		return broker.GroupDescription{}, fmt.Errorf("kafka: describe group %q: %w", group, b.mapErr(dg.Err, "", -1))
	}
	d := broker.GroupDescription{Name: group, State: dg.State, Offsets: map[broker.TopicPartition]int64{}}
	if d.State == "Dead" {
		d.State = "Empty" // its offsets outlive it
	}
	for _, m := range dg.Members {
		gm := broker.GroupMember{ID: m.MemberID, ClientID: m.ClientID, Host: m.ClientHost, Partitions: []broker.TopicPartition{}}
		if m.InstanceID != nil {
			gm.InstanceID = *m.InstanceID
		}
		if a, ok := m.Assigned.AsConsumer(); ok {
			for _, t := range a.Topics {
				for _, p := range t.Partitions {
					gm.Partitions = append(gm.Partitions, broker.TopicPartition{Topic: t.Topic, Partition: p})
				}
			}
		}
		slices.SortFunc(gm.Partitions, func(x, y broker.TopicPartition) int {
			return cmp.Or(strings.Compare(x.Topic, y.Topic), cmp.Compare(x.Partition, y.Partition))
		})
		d.Members = append(d.Members, gm)
	}
	slices.SortFunc(d.Members, func(x, y broker.GroupMember) int { return strings.Compare(x.ID, y.ID) })
	offsets, err := b.stableOffsets(ctx, group)
	if err != nil {
		return broker.GroupDescription{}, err
	}
	offsets.Each(func(o kadm.OffsetResponse) {
		if o.Err == nil && o.At >= 0 {
			d.Offsets[broker.TopicPartition{Topic: o.Topic, Partition: o.Partition}] = o.At
		}
	})
	if len(d.Members) == 0 && len(d.Offsets) == 0 {
		// A group Kafka still lists as Empty or Dead without offsets
		// (expired, or never committed) has nothing to show.
		return broker.GroupDescription{}, fmt.Errorf("%w: %q has no members and no committed offsets", broker.ErrUnknownGroup, group)
	}
	return d, nil
}
