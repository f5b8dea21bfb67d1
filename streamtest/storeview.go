package streamtest

import (
	"errors"
	"fmt"
	"iter"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
)

// changelogTopic returns the broker name of store's changelog topic, as
// the runtime names it.
func (d *Driver) changelogTopic(storeName string) string {
	return d.cfg.appID + "-" + storeName + "-changelog"
}

// lookupStore checks that partition is a partition of the store name: it
// returns an error matching stream.ErrUnknownStore, ErrClosed or
// broker.ErrUnknownPartition.
func (d *Driver) lookupStore(name string, partition int32) error {
	if d.closed {
		return ErrClosed
	}
	n, ok := d.st.StorePartitions(name)
	if !ok {
		return fmt.Errorf("streamtest: %w: the topology has no store %q", stream.ErrUnknownStore, name)
	}
	if partition < 0 || partition >= n {
		return fmt.Errorf("streamtest: store %s has %d partitions: %w", name, n,
			&broker.TopicError{Topic: d.changelogTopic(name), Partition: partition, Err: broker.ErrUnknownPartition})
	}
	return nil
}

// StoreGet returns a copy of key's value in partition of the state store
// name (the partition of the task that wrote it) and true, or nil and
// false if key is absent. Every processed record is committed, so it sees
// every write of records processed without error. It fails with an error
// matching stream.ErrUnknownStore for a store no step declared,
// broker.ErrUnknownPartition for a partition the store does not have
// (it has one per task of its sub-topology), and ErrClosed after Close.
func (d *Driver) StoreGet(name string, partition int32, key []byte) ([]byte, bool, error) {
	if err := d.lookupStore(name, partition); err != nil {
		return nil, false, err
	}
	return d.st.StoreGet(name, partition, key)
}

// StorePartitions returns the partition count of the state store name:
// the task count of the sub-topology that owns it. It fails like
// [Driver.StoreGet].
func (d *Driver) StorePartitions(name string) (int32, error) {
	if err := d.lookupStore(name, 0); err != nil {
		return 0, err
	}
	n, _ := d.st.StorePartitions(name)
	return n, nil
}

// StoreAll returns a single-use iterator over the pairs of partition of
// the state store name, in ascending key order, and a function returning
// the error that ended the iteration (check it after the loop). The
// yielded slices are valid until the next step and must not be modified.
// It fails like [Driver.StoreGet], through the error function.
func (d *Driver) StoreAll(name string, partition int32) (iter.Seq2[[]byte, []byte], func() error) {
	err := d.lookupStore(name, partition)
	if err != nil {
		return func(func([]byte, []byte) bool) {}, func() error { return err }
	}
	c, err := d.st.StoreRange(name, partition)
	if err != nil {
		return func(func([]byte, []byte) bool) {}, func() error { return err }
	}
	return c.All(), c.Close
}

// StoreView reads a state store of a [Driver] with codecs, for
// assertions. Like the Driver, it is not safe for concurrent use.
type StoreView[K, V any] struct {
	d    *Driver
	name string
	kc   codec.Codec[K]
	vc   codec.Codec[V]
}

// Store returns a typed reader of the state store name, encoding keys
// with kc and decoding values with vc. Errors (unknown store, nil codecs,
// closed driver) are reported by its methods.
func Store[K, V any](d *Driver, name string, kc codec.Codec[K], vc codec.Codec[V]) *StoreView[K, V] {
	return &StoreView[K, V]{d: d, name: name, kc: kc, vc: vc}
}

func (s *StoreView[K, V]) check() error {
	if s.d == nil {
		return fmt.Errorf("streamtest: store %q: nil driver", s.name)
	}
	if s.kc == nil || s.vc == nil {
		return fmt.Errorf("streamtest: store %q: %w", s.name, stream.ErrNilCodec)
	}
	return nil
}

// Get returns k's value in the partition the driver routes k to, and
// whether it is present. That partition is Kafka's default partitioner
// applied to k encoded with kc (partition 0 when it encodes to zero
// bytes), over the store's partition count: the partition whose task
// processes input records with key k, when the topic they are piped to is
// read with a key codec encoding as kc does. So Get finds the state of a
// processor that stores each record under the record's own key; use
// [StoreView.GetPartition] for state kept under other keys. It returns
// encode errors (*codec.EncodeError), decode errors (*codec.DecodeError
// naming the store's changelog topic, with Offset -1: stored values have
// no offset) and the errors of [Driver.StoreGet].
func (s *StoreView[K, V]) Get(k K) (V, bool, error) {
	var zero V
	if err := s.check(); err != nil {
		return zero, false, err
	}
	key, err := s.key(k)
	if err != nil {
		return zero, false, err
	}
	n, err := s.d.StorePartitions(s.name)
	if err != nil {
		return zero, false, err
	}
	p := int32(0)
	if len(key) > 0 {
		p = broker.KeyPartition(key, n)
	}
	return s.get(p, key)
}

// GetPartition returns k's value in partition and whether it is present.
// It fails like [StoreView.Get], and with broker.ErrUnknownPartition for
// a partition the store does not have.
func (s *StoreView[K, V]) GetPartition(partition int32, k K) (V, bool, error) {
	var zero V
	if err := s.check(); err != nil {
		return zero, false, err
	}
	key, err := s.key(k)
	if err != nil {
		return zero, false, err
	}
	return s.get(partition, key)
}

func (s *StoreView[K, V]) key(k K) ([]byte, error) {
	key, err := s.kc.Append(nil, k)
	if err != nil {
		return nil, &codec.EncodeError{Store: s.name, Part: "key", Err: err}
	}
	return key, nil
}

func (s *StoreView[K, V]) get(p int32, key []byte) (V, bool, error) {
	var zero V
	raw, ok, err := s.d.StoreGet(s.name, p, key)
	if err != nil || !ok {
		return zero, false, err
	}
	v, err := s.vc.Decode(raw)
	if err != nil {
		return zero, false, &codec.DecodeError{Topic: s.d.changelogTopic(s.name), Partition: p, Offset: -1, Part: "value", Err: err}
	}
	return v, true, nil
}

// All returns every pair of the store, partition by partition and in
// ascending key (byte) order within a partition. It returns decode errors
// (*codec.DecodeError, as [StoreView.Get]) and the errors of
// [Driver.StoreGet].
func (s *StoreView[K, V]) All() ([]KeyValue[K, V], error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	n, err := s.d.StorePartitions(s.name)
	if err != nil {
		return nil, err
	}
	var out []KeyValue[K, V]
	for p := range n {
		pairs, errf := s.d.StoreAll(s.name, p)
		for k, v := range pairs {
			var kv KeyValue[K, V]
			if kv.Key, err = s.kc.Decode(k); err == nil {
				kv.Value, err = s.vc.Decode(v)
				if err != nil {
					err = &codec.DecodeError{Topic: s.d.changelogTopic(s.name), Partition: p, Offset: -1, Part: "value", Err: err}
				}
			} else {
				err = &codec.DecodeError{Topic: s.d.changelogTopic(s.name), Partition: p, Offset: -1, Part: "key", Err: err}
			}
			if err != nil {
				break
			}
			out = append(out, kv)
		}
		if err = errors.Join(err, errf()); err != nil {
			return nil, err
		}
	}
	return out, nil
}
