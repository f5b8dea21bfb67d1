package duality_test

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/duality-streams/duality/broker"
)

// pollHook is called before a Poll of a hookedConsumer with the
// partitions the Poll reads, at their positions (sorted by topic, then
// partition). A non-nil error is the Poll's; withhold, when not nil,
// names partitions this Poll leaves out (fault injection: a broker that
// does not deliver them).
type pollHook func(ctx context.Context, reqs []broker.FetchRequest) (withhold func(broker.TopicPartition) bool, err error)

// hookedConsumer wraps a Consumer of the broker under test, calling hook
// before each Poll. It keeps the positions the records and ends it
// returns put the partitions at.
type hookedConsumer struct {
	broker.Consumer
	hook   pollHook
	pos    map[broker.TopicPartition]int64
	paused map[broker.TopicPartition]bool
}

// newHookedConsumer returns the Consumer of b with hook, for a wrapper's
// NewConsumer.
func newHookedConsumer(b broker.Broker, opts broker.ConsumerOptions, hook pollHook) (broker.Consumer, error) {
	c, err := b.NewConsumer(opts)
	if err != nil {
		return nil, err
	}
	return &hookedConsumer{Consumer: c, hook: hook, pos: map[broker.TopicPartition]int64{}, paused: map[broker.TopicPartition]bool{}}, nil
}

func (c *hookedConsumer) Assign(positions map[broker.TopicPartition]int64) {
	for tp, off := range positions {
		c.pos[tp] = off
	}
	c.Consumer.Assign(positions)
}

func (c *hookedConsumer) Unassign(tps ...broker.TopicPartition) {
	for _, tp := range tps {
		delete(c.pos, tp)
		delete(c.paused, tp)
	}
	c.Consumer.Unassign(tps...)
}

func (c *hookedConsumer) Pause(tps ...broker.TopicPartition) {
	for _, tp := range tps {
		c.paused[tp] = true
	}
	c.Consumer.Pause(tps...)
}

func (c *hookedConsumer) Resume(tps ...broker.TopicPartition) {
	for _, tp := range tps {
		delete(c.paused, tp)
	}
	c.Consumer.Resume(tps...)
}

func (c *hookedConsumer) Poll(ctx context.Context, maxWait time.Duration) (broker.Polled, error) {
	var reqs []broker.FetchRequest
	for tp, off := range c.pos {
		if !c.paused[tp] {
			reqs = append(reqs, broker.FetchRequest{Topic: tp.Topic, Partition: tp.Partition, Offset: off})
		}
	}
	slices.SortFunc(reqs, func(x, y broker.FetchRequest) int {
		return cmp.Or(cmp.Compare(x.Topic, y.Topic), cmp.Compare(x.Partition, y.Partition))
	})
	withhold, err := c.hook(ctx, reqs)
	if err != nil {
		return broker.Polled{}, err
	}
	var held []broker.TopicPartition
	if withhold != nil {
		for _, r := range reqs {
			if tp := (broker.TopicPartition{Topic: r.Topic, Partition: r.Partition}); withhold(tp) {
				held = append(held, tp)
			}
		}
		c.Consumer.Pause(held...)
		defer c.Consumer.Resume(held...)
	}
	polled, err := c.Consumer.Poll(ctx, maxWait)
	if err != nil {
		return polled, err
	}
	for _, r := range polled.Records {
		c.pos[broker.TopicPartition{Topic: r.Topic, Partition: r.Partition}] = r.Offset + 1
	}
	for tp, end := range polled.Ends {
		if off, ok := c.pos[tp]; ok && end > off {
			c.pos[tp] = end
		}
	}
	return polled, nil
}

// commitHook is called for every Commit of a hookedCommitter: commit
// runs the commit of the broker under test.
type commitHook func(ctx context.Context, req broker.CommitRequest, commit func() error) error

// hookedCommitter wraps a Committer of the broker under test.
type hookedCommitter struct {
	broker.Committer
	hook commitHook
}

// newHookedCommitter returns the Committer of b with id and hook, for a
// wrapper's NewCommitter.
func newHookedCommitter(ctx context.Context, b broker.Broker, id string, hook commitHook) (broker.Committer, error) {
	c, err := b.NewCommitter(ctx, id)
	if err != nil {
		return nil, err
	}
	return &hookedCommitter{Committer: c, hook: hook}, nil
}

func (c *hookedCommitter) Commit(ctx context.Context, req broker.CommitRequest) error {
	return c.hook(ctx, req, func() error { return c.Committer.Commit(ctx, req) })
}
