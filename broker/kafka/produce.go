package kafka

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/duality-streams/duality/broker"
)

var errUnknownTopic = kerr.UnknownTopicOrPartition

// roundRobin picks partitions for nil keys with PartitionByKey.
var roundRobin atomic.Uint32

// resolve checks every record's topic and partition, choosing the
// partition of those with broker.PartitionByKey (murmur2 of the key as
// broker.KeyPartition, round-robin for a nil key), and returns the
// records as franz-go records. Nothing is sent: a bad record refuses the
// whole call. A partition outside the cached count is checked again with
// fresh metadata before it is refused.
func (b *Broker) resolve(ctx context.Context, recs []broker.Record) ([]*kgo.Record, error) {
	topics := make([]string, 0, 1)
	for i := range recs {
		if !slices.Contains(topics, recs[i].Topic) {
			if err := checkTopic(recs[i].Topic); err != nil {
				return nil, err
			}
			topics = append(topics, recs[i].Topic)
		}
	}
	meta, err := b.meta.partitions(ctx, topics, false)
	if err != nil {
		return nil, err
	}
	for i := range recs {
		p := recs[i].Partition
		if p != broker.PartitionByKey && (p < 0 || p >= meta[recs[i].Topic].partitions) {
			if meta, err = b.meta.partitions(ctx, topics, true); err != nil {
				return nil, err
			}
			break
		}
	}
	out := make([]*kgo.Record, len(recs))
	for i := range recs {
		r := &recs[i]
		n := meta[r.Topic].partitions
		p := r.Partition
		switch {
		case p == broker.PartitionByKey && r.Key != nil:
			p = broker.KeyPartition(r.Key, n)
		case p == broker.PartitionByKey:
			p = int32(roundRobin.Add(1) % uint32(n))
		case p < 0 || p >= n:
			return nil, &broker.TopicError{Topic: r.Topic, Partition: p,
				Err: fmt.Errorf("%w: topic has %d partitions", broker.ErrUnknownPartition, n)}
		}
		kr := &kgo.Record{
			Topic:     r.Topic,
			Partition: p,
			Key:       r.Key,
			Value:     r.Value,
			Timestamp: r.Timestamp,
		}
		if len(r.Headers) > 0 {
			kr.Headers = make([]kgo.RecordHeader, len(r.Headers))
			for j, h := range r.Headers {
				kr.Headers[j] = kgo.RecordHeader{Key: h.Key, Value: h.Value}
			}
		}
		if kr.Timestamp.IsZero() {
			kr.Timestamp = time.Now()
		}
		out[i] = kr
	}
	return out, nil
}

// Produce appends records with the broker's idempotent producer
// (acks=all, no duplicates from its own retries), waiting for all of
// them. Each record goes to its Partition, or with broker.PartitionByKey
// where broker.KeyPartition puts its key (murmur2, as Kafka's Java client
// and franz-go do), round-robin for a nil key. Keys, values (nil and
// empty kept apart), headers and millisecond timestamps are kept; a zero
// timestamp becomes the producer's clock. The records of one call that go
// to one partition get contiguous offsets. Partition and Offset are set
// in place.
//
// Unknown topics and partitions and invalid names are refused before
// anything is sent. After another error some records may have been
// written.
func (b *Broker) Produce(ctx context.Context, records []broker.Record) error {
	if err := b.enter(); err != nil {
		return err
	}
	if len(records) == 0 {
		return nil
	}
	krs, err := b.resolve(ctx, records)
	if err != nil {
		return err
	}
	if err := b.produce(ctx, b.cl, krs, &b.produceMu); err != nil {
		return err
	}
	for i, kr := range krs {
		records[i].Partition = kr.Partition
		records[i].Offset = kr.Offset
	}
	return nil
}

// produce sends krs with cl and waits for all of them, returning the
// first error. mu, when not nil, is held while the records are enqueued.
func (b *Broker) produce(ctx context.Context, cl *kgo.Client, krs []*kgo.Record, mu *sync.Mutex) error {
	var (
		wg       sync.WaitGroup
		errMu    sync.Mutex
		firstErr error
		failed   *kgo.Record
	)
	wg.Add(len(krs))
	promise := func(r *kgo.Record, err error) {
		if err != nil {
			errMu.Lock()
			if firstErr == nil {
				firstErr, failed = err, r
			}
			errMu.Unlock()
		}
		wg.Done()
	}
	if mu != nil {
		mu.Lock()
	}
	for _, kr := range krs {
		cl.Produce(ctx, kr, promise)
	}
	if mu != nil {
		mu.Unlock()
	}
	wg.Wait()
	if firstErr != nil {
		return b.mapErr(firstErr, failed.Topic, failed.Partition)
	}
	return nil
}

// recordOverhead bounds what a record adds to its key, value and headers
// in a record batch of its own: the batch header (61 bytes) and the
// record's length, attributes, deltas and varint lengths.
const recordOverhead = 512

// MaxRecordBytes is the largest broker.RecordSize a record may have: the
// producers' batch limit (kgo.ProducerBatchMaxBytes, 1000012 bytes by
// default, which also must not exceed the topics' max.message.bytes)
// less a record batch's overhead. Larger records fail with an error
// matching broker.ErrRecordTooLarge. It implements broker.RecordLimiter.
func (b *Broker) MaxRecordBytes() int {
	limit, _ := b.cl.OptValue(kgo.ProducerBatchMaxBytes).(int32)
	return int(limit) - recordOverhead
}

var _ broker.RecordLimiter = (*Broker)(nil)
