package crashtest

import (
	"context"
	"errors"
	"slices"

	"github.com/duality-streams/duality/broker"
)

// Offsets are a consumer group's committed offsets and the end offsets of
// the partitions of some topics: how far an app has come.
type Offsets struct {
	// Committed holds the group's committed offset of each partition (a
	// missing entry: nothing committed).
	Committed map[broker.TopicPartition]int64
	// End holds the end (latest) offset of each partition.
	End map[broker.TopicPartition]int64
	// Missing lists the topics that do not exist (yet: an app creates its
	// internal topics when it starts).
	Missing []string
}

// GroupOffsets reads group's committed offsets and then the end offsets
// of every partition of topics (in that order, so that a committed offset
// equal to an end offset means the group had read everything when the end
// was read). A topic that does not exist is listed in Missing.
func GroupOffsets(ctx context.Context, b broker.Broker, group string, topics ...string) (Offsets, error) {
	o := Offsets{End: map[broker.TopicPartition]int64{}}
	var tps []broker.TopicPartition
	for _, topic := range topics {
		info, err := b.DescribeTopic(ctx, topic)
		if errors.Is(err, broker.ErrUnknownTopic) {
			o.Missing = append(o.Missing, topic)
			continue
		}
		if err != nil {
			return Offsets{}, err
		}
		for p := range info.Config.Partitions {
			tps = append(tps, broker.TopicPartition{Topic: topic, Partition: p})
		}
	}
	committed, err := b.FetchOffsets(ctx, group, tps)
	if err != nil {
		return Offsets{}, err
	}
	o.Committed = committed
	for _, tp := range tps {
		offs, err := b.ListOffsets(ctx, tp.Topic, tp.Partition)
		if err != nil {
			return Offsets{}, err
		}
		o.End[tp] = offs.Latest
	}
	return o, nil
}

// IsCommitted reports whether r lies below the committed offset of its
// partition: the group has consumed it.
func (o Offsets) IsCommitted(r broker.Record) bool {
	return r.Offset < o.Committed[broker.TopicPartition{Topic: r.Topic, Partition: r.Partition}]
}

// CommittedSum returns the sum of the committed offsets of topics (every
// topic when none is given): the records consumed, where no record was
// deleted.
func (o Offsets) CommittedSum(topics ...string) int64 {
	var n int64
	for tp := range o.End {
		if o.has(tp.Topic, topics) {
			n += o.Committed[tp]
		}
	}
	return n
}

// EndSum returns the sum of the end offsets of topics (every topic when
// none is given): the records written, where no record was deleted.
func (o Offsets) EndSum(topics ...string) int64 {
	var n int64
	for tp, end := range o.End {
		if o.has(tp.Topic, topics) {
			n += end
		}
	}
	return n
}

// CaughtUp reports whether every partition of topics (every topic when
// none is given) is committed to its end; false while one of them is
// missing.
func (o Offsets) CaughtUp(topics ...string) bool {
	for _, m := range o.Missing {
		if o.has(m, topics) {
			return false
		}
	}
	for tp, end := range o.End {
		if o.has(tp.Topic, topics) && o.Committed[tp] != end {
			return false
		}
	}
	return true
}

// has reports whether topic is among topics, or topics is empty.
func (Offsets) has(topic string, topics []string) bool {
	return len(topics) == 0 || slices.Contains(topics, topic)
}
