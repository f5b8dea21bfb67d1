package kafka

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/duality-streams/duality/broker"
)

// NewAtLeastOnceCommitter returns a Committer for at-least-once
// processing, as Kafka Streams' processing.guarantee=at_least_once does
// it: an idempotent producer without transactions (a franz-go client of
// its own, acks=all) whose Commit produces the records, waits until every
// one is acknowledged, and then commits the offsets through the group
// coordinator (OffsetCommit) with the generation and member id of the
// request, which the coordinator checks: a member that a rebalance
// replaced gets broker.ErrFenced and its offsets are not stored.
//
// What it saves over NewCommitter's transaction: the transaction's round
// trips (AddPartitionsToTxn, AddOffsetsToTxn, EndTxn), the markers, and
// the wait for the last stable offset to pass them; what it gives up: a
// commit that fails, or is cut by a crash, after some records were
// acknowledged leaves them readable, and whoever redoes the work from the
// committed offsets writes them again. Offsets never become visible
// before every record of their commit is acknowledged, so no input is
// lost. The id names the committer in errors; it is not a transactional
// id, and opening another committer with the same id fences neither.
//
// Errors: an empty id matches broker.ErrInvalidConfig; ErrClosed after
// Close; errors of the cluster (unreachable, not authorized) as they are.
func (b *Broker) NewAtLeastOnceCommitter(ctx context.Context, id string) (broker.Committer, error) {
	if err := b.enter(); err != nil {
		return nil, err
	}
	if id == "" {
		return nil, fmt.Errorf("%w: empty committer id", broker.ErrInvalidConfig)
	}
	cl, err := b.newClient(
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0), // a Commit waits for its records: lingering only delays it
		kgo.MaxVersions(offsetCommitVersions()),
	)
	if err != nil {
		return nil, fmt.Errorf("kafka: committer %q: %w", id, err)
	}
	// Initialize the idempotent producer id now: an unreachable or
	// unauthorized cluster fails here rather than at the first commit.
	if _, _, err := cl.ProducerID(ctx); err != nil {
		cl.Close()
		return nil, b.mapErr(err, "", -1)
	}
	c := &aloCommitter{b: b, id: id, cl: cl}
	if err := b.track(c); err != nil {
		cl.Close()
		return nil, err
	}
	return c, nil
}

// offsetCommitVersions caps OffsetCommit at version 9, which names
// topics: version 10 (Kafka 4.1) names them by topic id instead.
func offsetCommitVersions() *kversion.Versions {
	v := kversion.Stable()
	v.SetMaxKeyVersion(int16(kmsg.OffsetCommit), 9)
	return v
}

// aloCommitter is an at-least-once broker.Committer.
type aloCommitter struct {
	b      *Broker
	id     string
	cl     *kgo.Client // idempotent producer; closed by Close or the broker's Close
	closed atomic.Bool
}

// Commit produces req.Records, waits for all of them to be acknowledged,
// sets their Partition and Offset in place, then commits req.Offsets for
// req.Group; see broker.Committer and NewAtLeastOnceCommitter.
//
// Errors: an unknown topic or partition, an invalid name or an empty group
// with offsets are refused before anything is sent; broker.ErrFenced when
// the group refused the offsets (stale generation, unknown member, a
// rebalance in progress), in which case the records stay appended.
func (c *aloCommitter) Commit(ctx context.Context, req broker.CommitRequest) error {
	if c.closed.Load() || c.b.closed() {
		return broker.ErrClosed
	}
	if err := checkCommitRequest(req); err != nil {
		return err
	}
	if len(req.Records) > 0 {
		krs, err := c.b.resolve(ctx, req.Records)
		if err != nil {
			return err
		}
		if err := c.b.produce(ctx, c.cl, krs, nil); err != nil {
			return err
		}
		for i, kr := range krs {
			req.Records[i].Partition = kr.Partition
			req.Records[i].Offset = kr.Offset
		}
	}
	if len(req.Offsets) == 0 {
		return nil
	}
	return c.commitOffsets(ctx, req)
}

// commitOffsets stores the offsets of cr with OffsetCommit, fenced by its
// generation and member id (generation -1 and no member when it has
// none, which Kafka accepts only while the group is empty).
func (c *aloCommitter) commitOffsets(ctx context.Context, cr broker.CommitRequest) error {
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group = cr.Group
	req.Generation = -1
	if cr.Generation != 0 {
		req.Generation = int32(cr.Generation)
		req.MemberID = cr.MemberID
	}
	for topic, parts := range offsetsByTopic(cr.Offsets) {
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = topic
		for _, po := range parts {
			rp := kmsg.NewOffsetCommitRequestTopicPartition()
			rp.Partition, rp.Offset, rp.LeaderEpoch = po.partition, po.offset, -1
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, c.cl)
	if err != nil {
		return c.mapErr(err, "", -1)
	}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
				return c.mapErr(fmt.Errorf("offset commit of group %q: %w", cr.Group, err), rt.Topic, rp.Partition)
			}
		}
	}
	return nil
}

// mapErr is Broker.mapErr, with the group's fencing errors as
// broker.ErrFenced.
func (c *aloCommitter) mapErr(err error, topic string, partition int32) error {
	if _, group := fencedBy(err); group && !c.b.closed() {
		return fmt.Errorf("%w: committer %q: %w", broker.ErrFenced, c.id, err)
	}
	return c.b.mapErr(err, topic, partition)
}

// Close closes the committer's producer. A Commit still running fails
// with broker.ErrClosed; its records, and even its offsets, may or may
// not have been stored.
func (c *aloCommitter) Close() error {
	c.b.untrack(c)
	c.close()
	return nil
}

func (c *aloCommitter) close() {
	if !c.closed.Swap(true) {
		c.cl.Close()
	}
}
