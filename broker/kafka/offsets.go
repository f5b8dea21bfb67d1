package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/duality-streams/duality/broker"
)

// Kafka's ListOffsets special timestamps.
const (
	listLatest   = -1
	listEarliest = -2
)

// checkPartition checks that topic has partition, refreshing the cached
// partition count once before refusing it.
func (b *Broker) checkPartition(ctx context.Context, topic string, partition int32) error {
	if err := checkTopic(topic); err != nil {
		return err
	}
	for _, refresh := range []bool{false, true} {
		meta, err := b.meta.partitions(ctx, []string{topic}, refresh)
		if err != nil {
			return err
		}
		if n := meta[topic].partitions; partition >= 0 && partition < n {
			return nil
		} else if refresh {
			return &broker.TopicError{Topic: topic, Partition: partition,
				Err: fmt.Errorf("%w: topic has %d partitions", broker.ErrUnknownPartition, n)}
		}
	}
	return nil
}

// listOffset asks the partition's leader for the offset at timestamp
// (listLatest, listEarliest or milliseconds), read_committed: the latest
// offset is the last stable offset. It returns -1 when no record has a
// timestamp at or after the one asked.
func (b *Broker) listOffset(ctx context.Context, topic string, partition int32, timestamp int64) (int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	req.IsolationLevel = 1
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition = partition
	rp.CurrentLeaderEpoch = -1
	rp.Timestamp = timestamp
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	for attempt := 0; ; attempt++ {
		resp, err := req.RequestWith(ctx, b.cl)
		if errors.Is(err, kerr.UnknownTopicID) && attempt < 10 {
			// franz-go's metadata still knows an older topic of
			// the name (deleted and recreated): refresh it.
			b.cl.ForceMetadataRefresh()
			if err := sleep(ctx, b.closedCh, 20*time.Millisecond); err != nil {
				return 0, b.mapErr(err, topic, partition)
			}
			continue
		}
		if err != nil {
			return 0, b.mapErr(err, topic, partition)
		}
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			return 0, fmt.Errorf("kafka: topic %q partition %d: malformed ListOffsets response", topic, partition)
		}
		p := resp.Topics[0].Partitions[0]
		err = kerr.ErrorForCode(p.ErrorCode)
		if err == nil {
			return p.Offset, nil
		}
		// The leader may be moving, or the topic may have just been
		// created: retry retryable errors until ctx ends.
		if !kerr.IsRetriable(err) || errors.Is(err, kerr.UnknownTopicOrPartition) {
			return 0, b.mapErr(err, topic, partition)
		}
		if err := sleep(ctx, b.closedCh, 20*time.Millisecond); err != nil {
			return 0, b.mapErr(err, topic, partition)
		}
	}
}

// sleep waits d, or until ctx ends (its error) or done is closed
// (broker.ErrClosed).
func sleep(ctx context.Context, done <-chan struct{}, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-done:
		return broker.ErrClosed
	}
}

// ListOffsets returns a partition's earliest offset (its log start) and
// its latest for read_committed readers: the last stable offset, below
// which every transaction has ended, so that Latest never counts records
// of a transaction still open (nor its markers).
func (b *Broker) ListOffsets(ctx context.Context, topic string, partition int32) (broker.Offsets, error) {
	if err := b.enter(); err != nil {
		return broker.Offsets{}, err
	}
	if err := b.checkPartition(ctx, topic, partition); err != nil {
		return broker.Offsets{}, err
	}
	return b.offsets(ctx, topic, partition)
}

func (b *Broker) offsets(ctx context.Context, topic string, partition int32) (broker.Offsets, error) {
	earliest, err := b.listOffset(ctx, topic, partition, listEarliest)
	if err != nil {
		return broker.Offsets{}, err
	}
	latest, err := b.listOffset(ctx, topic, partition, listLatest)
	if err != nil {
		return broker.Offsets{}, err
	}
	return broker.Offsets{Earliest: earliest, Latest: max(latest, earliest)}, nil
}

// OffsetForTime returns the first offset whose record timestamp is at or
// after ts (Kafka's ListOffsets by timestamp, read_committed), or the
// latest offset (ListOffsets) when there is none.
func (b *Broker) OffsetForTime(ctx context.Context, topic string, partition int32, ts time.Time) (int64, error) {
	if err := b.enter(); err != nil {
		return 0, err
	}
	if err := b.checkPartition(ctx, topic, partition); err != nil {
		return 0, err
	}
	ms := max(ts.UnixMilli(), 0)
	off, err := b.listOffset(ctx, topic, partition, ms)
	if err != nil {
		return 0, err
	}
	if off >= 0 {
		return off, nil
	}
	offs, err := b.offsets(ctx, topic, partition)
	if err != nil {
		return 0, err
	}
	return offs.Latest, nil
}

// DeleteRecords deletes the records of a partition below before with
// Kafka's DeleteRecords; see broker.Broker. The broker checks the range
// and the topic's cleanup policy itself, so that the errors are the same
// on every cluster: before above the latest offset (the last stable
// offset) or negative is an *broker.OffsetOutOfRangeError, a topic whose
// cleanup.policy is compact alone matches broker.ErrInvalidConfig (Kafka
// refuses it too, with POLICY_VIOLATION).
func (b *Broker) DeleteRecords(ctx context.Context, topic string, partition int32, before int64) error {
	if err := b.enter(); err != nil {
		return err
	}
	if err := b.checkPartition(ctx, topic, partition); err != nil {
		return err
	}
	offs, err := b.offsets(ctx, topic, partition)
	if err != nil {
		return err
	}
	if before < 0 || before > offs.Latest {
		return &broker.OffsetOutOfRangeError{Topic: topic, Partition: partition, Offset: before, Offsets: offs}
	}
	info, err := b.DescribeTopic(ctx, topic)
	if err != nil {
		return err
	}
	if info.Config.Cleanup == broker.CleanupCompact {
		return &broker.TopicError{Topic: topic, Partition: partition,
			Err: fmt.Errorf("%w: DeleteRecords needs a cleanup policy with delete, the topic's is %q", broker.ErrInvalidConfig, info.Config.Cleanup)}
	}
	if before <= offs.Earliest {
		return nil
	}
	var os kadm.Offsets
	os.Add(kadm.Offset{Topic: topic, Partition: partition, At: before, LeaderEpoch: -1})
	resp, err := b.adm.DeleteRecords(ctx, os)
	if err != nil {
		return b.mapErr(err, topic, partition)
	}
	r, ok := resp.Lookup(topic, partition)
	if !ok {
		return fmt.Errorf("kafka: topic %q partition %d: no DeleteRecords response", topic, partition)
	}
	if errors.Is(r.Err, kerr.OffsetOutOfRange) {
		offs, err := b.offsets(ctx, topic, partition)
		if err != nil {
			return err
		}
		return &broker.OffsetOutOfRangeError{Topic: topic, Partition: partition, Offset: before, Offsets: offs}
	}
	return b.mapErr(r.Err, topic, partition)
}

// CommitOffsets stores group offsets outside any group generation (Kafka's
// OffsetCommit with generation -1), which Kafka accepts only while the
// group has no members: a member commits through a Committer.
func (b *Broker) CommitOffsets(ctx context.Context, group string, offsets map[broker.TopicPartition]int64) error {
	if err := b.enter(); err != nil {
		return err
	}
	if group == "" {
		return fmt.Errorf("%w: empty group name", broker.ErrInvalidConfig)
	}
	if len(offsets) == 0 {
		return nil
	}
	var os kadm.Offsets
	for tp, off := range offsets {
		if err := checkTopic(tp.Topic); err != nil {
			return err
		}
		os.Add(kadm.Offset{Topic: tp.Topic, Partition: tp.Partition, At: off, LeaderEpoch: -1})
	}
	resp, err := b.adm.CommitOffsets(ctx, group, os)
	if err != nil {
		return b.mapErr(err, "", -1)
	}
	for topic, ps := range resp {
		for p, r := range ps {
			if r.Err != nil {
				return b.mapErr(r.Err, topic, p)
			}
		}
	}
	return nil
}

// FetchOffsets returns a group's committed offsets of partitions, stable:
// offsets of a transaction still open are waited for (Kafka's
// RequireStable, retried while the cluster answers UNSTABLE_OFFSET_COMMIT),
// so every commit a Committer got acknowledged is seen.
func (b *Broker) FetchOffsets(ctx context.Context, group string, partitions []broker.TopicPartition) (map[broker.TopicPartition]int64, error) {
	if err := b.enter(); err != nil {
		return nil, err
	}
	if group == "" {
		return nil, fmt.Errorf("%w: empty group name", broker.ErrInvalidConfig)
	}
	for _, tp := range partitions {
		if err := checkTopic(tp.Topic); err != nil {
			return nil, err
		}
	}
	resp, err := b.stableOffsets(ctx, group)
	if err != nil {
		return nil, err
	}
	out := make(map[broker.TopicPartition]int64)
	for _, tp := range partitions {
		if r, ok := resp.Lookup(tp.Topic, tp.Partition); ok && r.At >= 0 {
			out[tp] = r.At
		}
	}
	return out, nil
}

// stableOffsets fetches every committed offset of group, waiting for
// those of open transactions (see FetchOffsets). A group the cluster does
// not know has none.
func (b *Broker) stableOffsets(ctx context.Context, group string) (kadm.OffsetResponses, error) {
	for {
		resp, err := b.adm.FetchOffsets(kadm.RequireStable(ctx), group)
		if err == nil {
			err = resp.Error()
		}
		if errors.Is(err, kerr.UnstableOffsetCommit) {
			if err := sleep(ctx, b.closedCh, 10*time.Millisecond); err != nil {
				return nil, b.mapErr(err, "", -1)
			}
			continue
		}
		if errors.Is(err, kerr.GroupIDNotFound) {
			return kadm.OffsetResponses{}, nil
		}
		if err != nil {
			return nil, b.mapErr(err, "", -1)
		}
		return resp, nil
	}
}
