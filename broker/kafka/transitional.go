package kafka

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync/atomic"

	"github.com/duality-streams/duality/broker"
)

// Fetch reads reqs with a Consumer made for the call: one Poll of at most
// opts.MaxWait. It remains while broker.Broker has it; read with
// NewConsumer, which keeps its positions between polls.
func (b *Broker) Fetch(ctx context.Context, reqs []broker.FetchRequest, opts broker.FetchOptions) ([]broker.Record, error) {
	c, err := b.NewConsumer(broker.ConsumerOptions{MaxRecords: opts.MaxRecords, MaxBytes: opts.MaxBytes})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	pos := make(map[broker.TopicPartition]int64, len(reqs))
	for _, r := range reqs {
		pos[broker.TopicPartition{Topic: r.Topic, Partition: r.Partition}] = r.Offset
	}
	c.Assign(pos)
	p, err := c.Poll(ctx, opts.MaxWait)
	return p.Records, err
}

var oneShotSeq atomic.Uint64

// Commit performs req in a transaction of a Committer made for the call,
// with a transactional id of its own (it fences nothing). It remains
// while broker.Broker has it; commit with NewCommitter, whose stable id
// fences a restarted instance's zombie and whose producer lives across
// commits.
func (b *Broker) Commit(ctx context.Context, req broker.CommitRequest) error {
	if err := b.enter(); err != nil {
		return err
	}
	var r [8]byte
	_, _ = rand.Read(r[:])
	c, err := b.NewCommitter(ctx, fmt.Sprintf("duality-oneshot-%s-%d", hex.EncodeToString(r[:]), oneShotSeq.Add(1)))
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Commit(ctx, req)
}

var _ broker.Broker = (*Broker)(nil)
