package runtime

import (
	"context"
	"log/slog"
	"time"

	"github.com/duality-streams/duality/broker"
)

// reader reads partitions at the offsets its caller asks for through one
// long-lived broker.Consumer: each fetch names the partitions to read now
// and the offset each must be read from. The consumer is told only what
// changed: a partition's offset other than the position the records and
// ends read so far put it at is a seek (Assign); one not asked for is
// paused, one asked for again resumed. A backend that fetches ahead
// (Kafka) so keeps its buffers across fetches.
//
// A reader is used by one goroutine at a time.
type reader struct {
	c     broker.Consumer
	parts map[broker.TopicPartition]*readPart

	// Scratch space of fetch.
	assign        map[broker.TopicPartition]int64
	pause, resume []broker.TopicPartition
	asked         uint64 // fetch count, for readPart.asked
}

// readPart is an assigned partition of a reader.
type readPart struct {
	// pos is the consumer's position as the reader knows it.
	pos    int64
	paused bool
	asked  uint64 // the fetch that last asked for it
}

// newReader returns a reader over a new consumer of b.
func newReader(b broker.Broker, maxRecords int) (*reader, error) {
	c, err := b.NewConsumer(broker.ConsumerOptions{MaxRecords: maxRecords})
	if err != nil {
		return nil, err
	}
	return &reader{c: c, parts: map[broker.TopicPartition]*readPart{}, assign: map[broker.TopicPartition]int64{}}, nil
}

// fetch polls the partitions of reqs from their offsets, waiting up to
// wait for records (see broker.Consumer.Poll), and pauses the other
// partitions it reads. After an error the positions are unknown to the
// caller as before: it asks again with the offsets it wants.
func (r *reader) fetch(ctx context.Context, reqs []broker.FetchRequest, wait time.Duration) (broker.Polled, error) {
	r.asked++
	clear(r.assign)
	r.pause, r.resume = r.pause[:0], r.resume[:0]
	for _, q := range reqs {
		tp := broker.TopicPartition{Topic: q.Topic, Partition: q.Partition}
		p := r.parts[tp]
		if p == nil {
			p = &readPart{pos: -1}
			r.parts[tp] = p
		}
		p.asked = r.asked
		if p.pos != q.Offset {
			r.assign[tp] = q.Offset
			p.pos = q.Offset
		}
		if p.paused {
			r.resume = append(r.resume, tp)
			p.paused = false
		}
	}
	if len(r.parts) > len(reqs) {
		for tp, p := range r.parts {
			if p.asked != r.asked && !p.paused {
				r.pause = append(r.pause, tp)
				p.paused = true
			}
		}
	}
	if len(r.assign) > 0 {
		r.c.Assign(r.assign)
	}
	if len(r.pause) > 0 {
		r.c.Pause(r.pause...)
	}
	if len(r.resume) > 0 {
		r.c.Resume(r.resume...)
	}
	polled, err := r.c.Poll(ctx, wait)
	if err != nil {
		return polled, err
	}
	recs := polled.Records
	for i := 0; i < len(recs); {
		j := i + 1
		for j < len(recs) && recs[j].Partition == recs[i].Partition && recs[j].Topic == recs[i].Topic {
			j++
		}
		if p := r.parts[broker.TopicPartition{Topic: recs[i].Topic, Partition: recs[i].Partition}]; p != nil {
			p.pos = recs[j-1].Offset + 1
		}
		i = j
	}
	for tp, end := range polled.Ends {
		if p := r.parts[tp]; p != nil {
			p.pos = max(p.pos, end)
		}
	}
	return polled, nil
}

// fetchRetrying is fetch retrying retryable errors with a backoff (each
// logged at Debug on log with msg) until ctx ends.
func (r *reader) fetchRetrying(ctx context.Context, reqs []broker.FetchRequest, wait time.Duration, log *slog.Logger, msg string) (broker.Polled, error) {
	var bo backoff
	for {
		polled, err := r.fetch(ctx, reqs, wait)
		if err == nil || !broker.IsRetryable(err) || ctx.Err() != nil {
			return polled, err
		}
		log.Debug(msg, slog.Any("error", err))
		bo.wait(ctx)
	}
}

// release unassigns every partition of r: the next fetch starts afresh.
func (r *reader) release() {
	if len(r.parts) == 0 {
		return
	}
	tps := make([]broker.TopicPartition, 0, len(r.parts))
	for tp := range r.parts {
		tps = append(tps, tp)
	}
	r.c.Unassign(tps...)
	clear(r.parts)
}

// drop unassigns tps from r.
func (r *reader) drop(tps ...broker.TopicPartition) {
	var gone []broker.TopicPartition
	for _, tp := range tps {
		if _, ok := r.parts[tp]; ok {
			delete(r.parts, tp)
			gone = append(gone, tp)
		}
	}
	if len(gone) > 0 {
		r.c.Unassign(gone...)
	}
}

// recycles says whether the reader's consumer reuses the memory of the
// records it returned (broker.Recycler).
func (r *reader) recycles() bool {
	_, ok := r.c.(broker.Recycler)
	return ok
}

// recycle hands the records of a fetch, whole, back to the consumer for
// reuse when it takes them (see broker.Recycler): the caller holds none
// of them any more.
func (r *reader) recycle(recs []broker.Record) {
	if rc, ok := r.c.(broker.Recycler); ok {
		rc.Recycle(recs)
	}
}

// close releases the consumer.
func (r *reader) close() error { return r.c.Close() }
