package streamtest

import (
	"context"
	"fmt"
	"time"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
)

// Record is a typed record piped into or read from a topic. When piping,
// Topic, Partition and Offset are ignored and a zero Timestamp means the
// driver's clock. Headers of read records are shared with the driver's
// copy and must not be modified.
type Record[K, V any] struct {
	Key       K
	Value     V
	Timestamp time.Time
	Headers   []broker.Header
	// Tombstone says the value is nil (Value is V's zero value). A piped
	// Tombstone record is written with a nil value.
	Tombstone bool
	Topic     string
	Partition int32
	Offset    int64
}

// KeyValue is a key and a value, as returned by [OutputTopic.ReadKeyValues].
type KeyValue[K, V any] struct {
	Key   K
	Value V
}

// KV returns a KeyValue; it keeps expected outputs in tests short.
func KV[K, V any](k K, v V) KeyValue[K, V] { return KeyValue[K, V]{Key: k, Value: v} }

// InputTopic pipes typed records into one topic of a [Driver]. Like the
// Driver, it is not safe for concurrent use.
type InputTopic[K, V any] struct {
	d     *Driver
	topic string
	kc    codec.Codec[K]
	vc    codec.Codec[V]
}

// Input returns a typed writer of topic, encoding keys with kc and values
// with vc. The topic must be read by the topology; pipes report otherwise
// (broker.ErrUnknownTopic).
func Input[K, V any](d *Driver, topic string, kc codec.Codec[K], vc codec.Codec[V]) *InputTopic[K, V] {
	return &InputTopic[K, V]{d: d, topic: topic, kc: kc, vc: vc}
}

// Pipe writes one record with the driver's clock as timestamp and
// processes it (and everything it causes) before returning. A key that
// encodes to zero bytes is written as no key (nil), as stream sinks do. It
// returns encode errors (*codec.EncodeError) and the processing errors as
// [Driver.PipeRaw] does: a record that fails (usually with a
// *stream.NodeError) does not stop the others.
func (in *InputTopic[K, V]) Pipe(ctx context.Context, k K, v V) error {
	return in.PipeRecord(ctx, Record[K, V]{Key: k, Value: v})
}

// PipeAt is [InputTopic.Pipe] with timestamp ts (kept at millisecond
// precision, as brokers do).
func (in *InputTopic[K, V]) PipeAt(ctx context.Context, k K, v V, ts time.Time) error {
	return in.PipeRecord(ctx, Record[K, V]{Key: k, Value: v, Timestamp: ts})
}

// PipeRecord is [InputTopic.Pipe] with r's key, value, timestamp and
// headers.
func (in *InputTopic[K, V]) PipeRecord(ctx context.Context, r Record[K, V]) error {
	if err := in.check(); err != nil {
		return err
	}
	key, err := in.key(r.Key)
	if err != nil {
		return err
	}
	var val []byte
	if !r.Tombstone {
		if val, err = in.vc.Append(make([]byte, 0, 64), r.Value); err != nil {
			return &codec.EncodeError{Topic: in.topic, Part: "value", Err: err}
		}
	}
	return in.d.PipeRaw(ctx, broker.Record{Topic: in.topic, Partition: broker.PartitionByKey, Key: key, Value: val, Timestamp: r.Timestamp, Headers: r.Headers})
}

// PipeTombstone writes a record with key k and a nil value (a tombstone)
// and processes it.
func (in *InputTopic[K, V]) PipeTombstone(ctx context.Context, k K) error {
	return in.PipeRecord(ctx, Record[K, V]{Key: k, Tombstone: true})
}

func (in *InputTopic[K, V]) check() error {
	if in.d == nil {
		return fmt.Errorf("streamtest: input %q: nil driver", in.topic)
	}
	if in.kc == nil || in.vc == nil {
		return fmt.Errorf("streamtest: input %q: %w", in.topic, stream.ErrNilCodec)
	}
	return nil
}

func (in *InputTopic[K, V]) key(k K) ([]byte, error) {
	key, err := in.kc.Append(nil, k)
	if err != nil {
		return nil, &codec.EncodeError{Topic: in.topic, Part: "key", Err: err}
	}
	if len(key) == 0 {
		return nil, nil
	}
	return key, nil
}

// OutputTopic reads typed records from one topic of a [Driver]. Reads
// consume: each record is returned once, by any OutputTopic of the topic.
// Like the Driver, it is not safe for concurrent use.
type OutputTopic[K, V any] struct {
	d     *Driver
	topic string
	kc    codec.Codec[K]
	vc    codec.Codec[V]
}

// Output returns a typed reader of topic (the broker name; internal
// topics are "<app-id>-<name>"), decoding keys with kc and values with vc.
// A nil key or value decodes as the zero value without calling the codec;
// a nil value also sets Record.Tombstone.
func Output[K, V any](d *Driver, topic string, kc codec.Codec[K], vc codec.Codec[V]) *OutputTopic[K, V] {
	return &OutputTopic[K, V]{d: d, topic: topic, kc: kc, vc: vc}
}

// ReadAll returns the records written to the topic since the last read,
// in the order they were written (across partitions). A decode failure
// returns a *codec.DecodeError and consumes nothing.
func (o *OutputTopic[K, V]) ReadAll() ([]Record[K, V], error) {
	if o.d == nil {
		return nil, fmt.Errorf("streamtest: output %q: nil driver", o.topic)
	}
	if o.kc == nil || o.vc == nil {
		return nil, fmt.Errorf("streamtest: output %q: %w", o.topic, stream.ErrNilCodec)
	}
	l, ok := o.d.topics[o.topic]
	if !ok {
		return nil, nil
	}
	out := make([]Record[K, V], 0, len(l.all)-l.cursor)
	for _, rec := range l.all[l.cursor:] {
		r := Record[K, V]{Timestamp: rec.Timestamp, Headers: rec.Headers, Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset}
		var err error
		if rec.Key != nil {
			if r.Key, err = o.kc.Decode(rec.Key); err != nil {
				return nil, &codec.DecodeError{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, Part: "key", Err: err}
			}
		}
		if rec.Value == nil {
			r.Tombstone = true
		} else if r.Value, err = o.vc.Decode(rec.Value); err != nil {
			return nil, &codec.DecodeError{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, Part: "value", Err: err}
		}
		out = append(out, r)
	}
	l.cursor = len(l.all)
	return out, nil
}

// ReadKeyValues is [OutputTopic.ReadAll] keeping only keys and values.
func (o *OutputTopic[K, V]) ReadKeyValues() ([]KeyValue[K, V], error) {
	recs, err := o.ReadAll()
	if err != nil {
		return nil, err
	}
	out := make([]KeyValue[K, V], len(recs))
	for i, r := range recs {
		out[i] = KeyValue[K, V]{Key: r.Key, Value: r.Value}
	}
	return out, nil
}

// ReadValues is [OutputTopic.ReadAll] keeping only values.
func (o *OutputTopic[K, V]) ReadValues() ([]V, error) {
	recs, err := o.ReadAll()
	if err != nil {
		return nil, err
	}
	out := make([]V, len(recs))
	for i, r := range recs {
		out[i] = r.Value
	}
	return out, nil
}
