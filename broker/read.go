package broker

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"time"
)

// readPollWait is how long one Poll of Read waits for records.
const readPollWait = time.Second

// Read reads partitions of b from the offsets of from up to their ends as
// of the call (ListOffsets' Latest: the committed end, the last stable
// offset on Kafka) through a Consumer of its own, and returns their
// records: partitions sorted by topic, then partition, each in offset
// order. Only records of committed transactions are read; records
// appended after the call started are not returned.
//
// It returns when every partition is read to its end, or with ctx's error
// when ctx ends first. An offset outside a partition's range gives an
// *OffsetOutOfRangeError; broker errors are returned as they are, with the
// records read so far discarded.
func Read(ctx context.Context, b Broker, from map[TopicPartition]int64) ([]Record, error) {
	ends := make(map[TopicPartition]int64, len(from))
	for tp, off := range from {
		offs, err := b.ListOffsets(ctx, tp.Topic, tp.Partition)
		if err != nil {
			return nil, err
		}
		if off < offs.Earliest || off > offs.Latest {
			return nil, &OffsetOutOfRangeError{Topic: tp.Topic, Partition: tp.Partition, Offset: off, Offsets: offs}
		}
		if off < offs.Latest {
			ends[tp] = offs.Latest
		}
	}
	byTP := map[TopicPartition][]Record{}
	if len(ends) > 0 {
		c, err := b.NewConsumer(ConsumerOptions{})
		if err != nil {
			return nil, err
		}
		defer c.Close()
		positions := make(map[TopicPartition]int64, len(ends))
		for tp := range ends {
			positions[tp] = from[tp]
		}
		c.Assign(positions)
		for len(ends) > 0 {
			polled, err := c.Poll(ctx, readPollWait)
			if err != nil {
				return nil, err
			}
			for _, r := range polled.Records {
				tp := TopicPartition{Topic: r.Topic, Partition: r.Partition}
				end, ok := ends[tp]
				if !ok || r.Offset >= end {
					continue // read to its end already
				}
				byTP[tp] = append(byTP[tp], r)
				if r.Offset+1 >= end {
					delete(ends, tp)
					c.Unassign(tp)
				}
			}
			for tp, at := range polled.Ends {
				if end, ok := ends[tp]; ok && at >= end {
					delete(ends, tp)
					c.Unassign(tp)
				}
			}
		}
	}
	tps := slices.SortedFunc(maps.Keys(byTP), func(x, y TopicPartition) int {
		return cmp.Or(cmp.Compare(x.Topic, y.Topic), cmp.Compare(x.Partition, y.Partition))
	})
	var out []Record
	for _, tp := range tps {
		out = append(out, byTP[tp]...)
	}
	return out, nil
}

// ReadAll reads every partition of the topics from their earliest offsets
// to their ends as of the call; see Read, which orders the records. An
// unknown topic gives an error matching ErrUnknownTopic.
func ReadAll(ctx context.Context, b Broker, topics ...string) ([]Record, error) {
	from := map[TopicPartition]int64{}
	for _, topic := range topics {
		info, err := b.DescribeTopic(ctx, topic)
		if err != nil {
			return nil, err
		}
		for p := range info.Config.Partitions {
			offs, err := b.ListOffsets(ctx, topic, p)
			if err != nil {
				return nil, err
			}
			from[TopicPartition{Topic: topic, Partition: p}] = offs.Earliest
		}
	}
	out, err := Read(ctx, b, from)
	if err != nil {
		return nil, fmt.Errorf("read %v: %w", topics, err)
	}
	return out, nil
}
