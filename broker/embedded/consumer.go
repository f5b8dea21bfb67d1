package embedded

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/duality-streams/duality/broker"
)

// NewConsumer returns a broker.Consumer over the broker's log, with no
// partitions assigned; see broker.Consumer. It reads only committed
// records, as every reader of the embedded broker does: a commit's records
// become readable when it succeeds, never before. opts' zero limits mean
// DefaultFetchMaxRecords and DefaultFetchMaxBytes. After Close of the
// broker, Poll returns broker.ErrClosed. Negative limits give an error
// matching broker.ErrInvalidConfig. The consumer is a broker.Recycler:
// records handed back with Recycle are filled again by a later Poll.
func (b *Broker) NewConsumer(opts broker.ConsumerOptions) (broker.Consumer, error) {
	if err := b.enter(); err != nil {
		return nil, err
	}
	b.leave()
	if opts.MaxRecords < 0 || opts.MaxBytes < 0 {
		return nil, fmt.Errorf("%w: consumer limits must not be negative: MaxRecords %d, MaxBytes %d",
			broker.ErrInvalidConfig, opts.MaxRecords, opts.MaxBytes)
	}
	return &consumer{b: b, opts: broker.FetchOptions{MaxRecords: opts.MaxRecords, MaxBytes: opts.MaxBytes},
		pos: map[broker.TopicPartition]*position{}}, nil
}

// consumer is a broker.Consumer: positions over the broker's fetch.
type consumer struct {
	b    *Broker
	opts broker.FetchOptions
	// pos holds the assigned partitions; order lists them in the order
	// they were first assigned, the order of a Poll's fetch requests.
	pos    map[broker.TopicPartition]*position
	order  []broker.TopicPartition
	closed bool

	// Scratch space of Poll, aligned: the requests and their partitions'
	// positions, and the ends fetch reports.
	reqs []broker.FetchRequest
	at   []*position
	ends []int64

	// free holds record slices handed back by Recycle, cleared, for
	// Poll to fill again; at most maxFree of them.
	free [][]broker.Record
}

var _ broker.Recycler = (*consumer)(nil)

// maxFree bounds the record slices a consumer keeps for reuse: a caller
// usually holds the records of one or two Polls while it fetches the
// next.
const maxFree = 4

// Recycle hands back the records of a Poll for a later Poll to fill
// again; see broker.Recycler.
func (c *consumer) Recycle(recs []broker.Record) {
	if c.closed || cap(recs) == 0 || len(c.free) >= maxFree {
		return
	}
	clear(recs) // the keys and values are the caller's: hold no reference
	c.free = append(c.free, recs[:0])
}

// position is an assigned partition's next offset and pause state.
type position struct {
	next   int64
	paused bool
}

// Assign sets the positions of partitions, adding those not assigned; see
// broker.Consumer.
func (c *consumer) Assign(positions map[broker.TopicPartition]int64) {
	if c.closed {
		return // Poll says so
	}
	for tp, off := range positions {
		if p := c.pos[tp]; p != nil {
			p.next = off
			continue
		}
		c.pos[tp] = &position{next: off}
		c.order = append(c.order, tp)
	}
}

// Unassign forgets the partitions; see broker.Consumer.
func (c *consumer) Unassign(tps ...broker.TopicPartition) {
	n := len(c.pos)
	for _, tp := range tps {
		delete(c.pos, tp)
	}
	if len(c.pos) != n {
		c.order = slices.DeleteFunc(c.order, func(tp broker.TopicPartition) bool { return c.pos[tp] == nil })
	}
}

// Pause stops fetching the partitions; see broker.Consumer.
func (c *consumer) Pause(tps ...broker.TopicPartition) { c.setPaused(tps, true) }

// Resume starts fetching the partitions again; see broker.Consumer.
func (c *consumer) Resume(tps ...broker.TopicPartition) { c.setPaused(tps, false) }

func (c *consumer) setPaused(tps []broker.TopicPartition, paused bool) {
	for _, tp := range tps {
		if p := c.pos[tp]; p != nil {
			p.paused = paused
		}
	}
}

// Poll fetches the assigned, unpaused partitions from their positions; see
// broker.Consumer. A partition whose records were all returned is in
// Polled.Ends with its next offset, and its position moves there, past
// offsets left without records (compaction, DeleteRecords). Without
// partitions to fetch, Poll waits maxWait, or until ctx ends or the broker
// closes. An error moves no position: an *OffsetOutOfRangeError names a
// partition whose position is outside [Earliest, Latest], which the caller
// moves with Assign.
func (c *consumer) Poll(ctx context.Context, maxWait time.Duration) (broker.Polled, error) {
	if c.closed {
		return broker.Polled{}, broker.ErrClosed
	}
	c.reqs, c.at = c.reqs[:0], c.at[:0]
	for _, tp := range c.order {
		if p := c.pos[tp]; !p.paused {
			c.reqs = append(c.reqs, broker.FetchRequest{Topic: tp.Topic, Partition: tp.Partition, Offset: p.next})
			c.at = append(c.at, p)
		}
	}
	if len(c.reqs) == 0 {
		return broker.Polled{}, c.idle(ctx, maxWait)
	}
	c.ends = slices.Grow(c.ends[:0], len(c.reqs))[:len(c.reqs)]
	opts := c.opts
	opts.MaxWait = maxWait
	var buf []broker.Record
	if n := len(c.free); n > 0 {
		buf, c.free = c.free[n-1], c.free[:n-1]
	}
	recs, err := c.b.fetch(ctx, c.reqs, opts, c.ends, buf)
	if cap(buf) > 0 && len(recs) == 0 {
		// Not handed out; a failed fetch may have written into it.
		clear(buf[:cap(buf)])
		c.free = append(c.free, buf[:0])
	}
	// A buf too small for this fetch is dropped: kept, it would come
	// back first every time and the larger slice would be the one
	// Recycle finds no room for.
	if err != nil {
		return broker.Polled{}, err
	}
	// The records of a partition are contiguous and in offset order: the
	// last one of each run gives the new position.
	for i := 0; i < len(recs); {
		r := &recs[i]
		j := i + 1
		for j < len(recs) && recs[j].Partition == r.Partition && recs[j].Topic == r.Topic {
			j++
		}
		last := &recs[j-1]
		if p := c.pos[broker.TopicPartition{Topic: last.Topic, Partition: last.Partition}]; p != nil {
			p.next = last.Offset + 1
		}
		i = j
	}
	polled := broker.Polled{Records: recs}
	for i, end := range c.ends {
		if end < 0 {
			continue
		}
		if polled.Ends == nil {
			polled.Ends = make(map[broker.TopicPartition]int64, len(c.ends)-i)
		}
		polled.Ends[broker.TopicPartition{Topic: c.reqs[i].Topic, Partition: c.reqs[i].Partition}] = end
		c.at[i].next = max(c.at[i].next, end)
	}
	return polled, nil
}

// idle waits for a Poll without partitions to fetch.
func (c *consumer) idle(ctx context.Context, maxWait time.Duration) error {
	if err := c.b.enter(); err != nil {
		return err
	}
	c.b.leave()
	if err := ctx.Err(); err != nil || maxWait <= 0 {
		return err
	}
	t := time.NewTimer(maxWait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.b.closing:
		return broker.ErrClosed
	}
}

// Close releases the consumer; later Polls return broker.ErrClosed.
func (c *consumer) Close() error {
	c.closed = true
	c.pos, c.order, c.free = nil, nil, nil
	return nil
}
