package streamtest

import (
	"bytes"
	"errors"
	"fmt"
	"iter"
	"maps"
	"slices"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/internal/kvmerge"
	"github.com/duality-streams/duality/internal/topology"
	"github.com/duality-streams/duality/store"
	"github.com/duality-streams/duality/stream"
)

// storeInfo is what the driver knows of one store of the topology.
type storeInfo struct {
	sub        int    // index of the owning sub-topology in d.tasks
	changelog  string // broker topic name (a global store's topic)
	partitions int32  // 1 for a global store
	global     store.Store
}

// changelogTopic returns the broker name of store's changelog topic, as
// the runtime names it.
func (d *Driver) changelogTopic(storeName string) string {
	return d.topicName(storeName+"-changelog", true)
}

// pending is a write of the record being processed: a value, or a
// deletion.
type pending struct {
	value []byte
	del   bool
}

// taskStore is a task's partition of a store (topology.KV): a store of
// the driver's MemoryDB plus the writes of the record being processed.
// The driver commits after every record processed by the task: commit
// writes one changelog record per written key (its newest value) and
// applies the writes to the store; discard forgets them.
type taskStore struct {
	d         *Driver
	name      string
	partition int32
	changelog string
	st        store.Store
	cur       map[string]pending // writes of the record being processed
	order     []string           // cur's keys in first-write order
	ranges    [][2][]byte        // range deletions of the record being processed; nil end: no bound
	batch     store.Batch
}

// deleted reports whether a range deletion of rs holds k.
func deleted(rs [][2][]byte, k []byte) bool {
	for _, r := range rs {
		if bytes.Compare(k, r[0]) >= 0 && (r[1] == nil || bytes.Compare(k, r[1]) < 0) {
			return true
		}
	}
	return false
}

// DeleteRange implements topology.KV.DeleteRange as the runtime's stores
// do: it forgets the record's writes in [start, end) (nil end: no upper
// bound), hides the stored keys there, and at the commit applies one
// range deletion to the store, without changelog records.
func (s *taskStore) DeleteRange(start, end []byte) error {
	if s.d.storesClosed {
		return s.errClosed()
	}
	if end != nil && bytes.Compare(start, end) >= 0 {
		return nil
	}
	r := [2][]byte{bytes.Clone(start), nil}
	if end != nil {
		r[1] = bytes.Clone(end)
	}
	rs := [][2][]byte{r}
	s.order = slices.DeleteFunc(s.order, func(k string) bool {
		if deleted(rs, []byte(k)) {
			delete(s.cur, k)
			return true
		}
		return false
	})
	s.ranges = append(s.ranges, r)
	return nil
}

func (s *taskStore) errClosed() error {
	return fmt.Errorf("streamtest: store %s/%d: %w", s.name, s.partition, ErrClosed)
}

func (s *taskStore) Get(key []byte) ([]byte, bool, error) {
	if s.d.storesClosed {
		return nil, false, s.errClosed()
	}
	if p, ok := s.cur[string(key)]; ok {
		if p.del {
			return nil, false, nil
		}
		return bytes.Clone(p.value), true, nil
	}
	if deleted(s.ranges, key) {
		return nil, false, nil
	}
	return s.st.Get(key)
}

func (s *taskStore) Put(key, value []byte) error {
	return s.write(key, pending{value: append([]byte{}, value...)}) // never nil: nil is a tombstone
}

func (s *taskStore) Delete(key []byte) error { return s.write(key, pending{del: true}) }

func (s *taskStore) write(key []byte, p pending) error {
	if s.d.storesClosed {
		return s.errClosed()
	}
	if s.cur == nil {
		s.cur = make(map[string]pending)
	}
	k := string(key)
	if _, had := s.cur[k]; !had {
		s.order = append(s.order, k)
	}
	s.cur[k] = p
	return nil
}

// Range merges the record's writes with a cursor on the store, as the
// runtime's stores do.
func (s *taskStore) Range(start, end []byte) (iter.Seq2[[]byte, []byte], func() error) {
	var err error
	seq := func(yield func([]byte, []byte) bool) {
		if s.d.storesClosed {
			err = s.errClosed()
			return
		}
		in := func(k string) bool {
			return (start == nil || k >= string(start)) && (end == nil || k < string(end))
		}
		// Snapshot the overlay at the first step: later writes are not seen.
		over := make(map[string]pending)
		for k, p := range s.cur {
			if in(k) {
				over[k] = p
			}
		}
		keys := slices.Sorted(maps.Keys(over))
		ranges := slices.Clone(s.ranges)
		c := s.st.Range(start, end)
		defer func() { err = errors.Join(err, c.Close()) }()
		visible := yield
		if len(ranges) > 0 {
			// The record's writes postdate its range deletions.
			visible = func(k, v []byte) bool {
				if _, written := over[string(k)]; !written && deleted(ranges, k) {
					return true
				}
				return yield(k, v)
			}
		}
		kvmerge.Merge(c, keys, func(k string) ([]byte, bool) { p := over[k]; return p.value, p.del }, visible)
	}
	return seq, func() error { return err }
}

// commit writes one changelog record per key written by the record just
// processed, with its newest value (nil for a deletion), in the order the
// keys were first written, then applies the writes to the store with the
// offset of the last changelog record.
func (s *taskStore) commit() error {
	if len(s.order) == 0 && len(s.ranges) == 0 {
		return nil
	}
	defer s.discard()
	s.batch.Reset()
	for _, r := range s.ranges {
		s.batch.DeleteRange(r[0], r[1])
	}
	for _, k := range s.order {
		p := s.cur[k]
		rec := broker.Record{Topic: s.changelog, Partition: s.partition, Key: []byte(k)}
		if p.del {
			s.batch.Delete(rec.Key)
		} else {
			rec.Value = p.value
			s.batch.Put(rec.Key, p.value)
		}
		if err := s.d.append(rec); err != nil {
			return fmt.Errorf("streamtest: store %s/%d: changelog: %w", s.name, s.partition, err)
		}
	}
	if len(s.order) > 0 {
		l := s.d.topics[s.changelog]
		s.batch.SetOffset(int64(len(l.parts[s.partition]) - 1))
	}
	if err := s.st.Apply(&s.batch); err != nil {
		return fmt.Errorf("streamtest: store %s/%d: apply: %w", s.name, s.partition, err)
	}
	return nil
}

// discard forgets the writes of the record being processed.
func (s *taskStore) discard() {
	clear(s.cur)
	clear(s.order)
	s.order = s.order[:0]
	s.ranges = nil
}

// Store returns the task's partition of the store name.
func (e *taskEnv) Store(name string) (topology.KV, error) {
	if s, ok := e.stores[name]; ok {
		return s, nil
	}
	return nil, fmt.Errorf("streamtest: store %q is not a store of sub-topology %d: %w", name, e.id.SubTopology, stream.ErrUnknownStore)
}

// commitStores commits the state writes of the record a task just
// processed.
func (e *taskEnv) commitStores() error {
	var errs []error
	for _, s := range e.order {
		errs = append(errs, s.commit())
	}
	return errors.Join(errs...)
}

// discardStores undoes the state writes of the record that failed.
func (e *taskEnv) discardStores() {
	for _, s := range e.order {
		s.discard()
	}
}

// openStores creates the stores of env's task in the driver's MemoryDB.
func (d *Driver) openStores(env *taskEnv, sub *topology.SubTopology) error {
	for _, ss := range sub.Stores {
		st, err := d.db.Store(ss.Name, env.id.Partition)
		if err != nil {
			return fmt.Errorf("streamtest: open store %s/%d: %w", ss.Name, env.id.Partition, err)
		}
		s := &taskStore{d: d, name: ss.Name, partition: env.id.Partition, changelog: d.changelogTopic(ss.Name), st: st}
		if env.stores == nil {
			env.stores = make(map[string]*taskStore)
		}
		env.stores[ss.Name] = s
		env.order = append(env.order, s)
	}
	return nil
}

// lookupStore returns the store info of name, or an error matching
// stream.ErrUnknownStore, ErrClosed or broker.ErrUnknownPartition.
func (d *Driver) lookupStore(name string, partition int32) (storeInfo, error) {
	if d.closed {
		return storeInfo{}, ErrClosed
	}
	info, ok := d.stores[name]
	if !ok {
		return storeInfo{}, fmt.Errorf("streamtest: %w: the topology has no store %q", stream.ErrUnknownStore, name)
	}
	if partition < 0 || partition >= info.partitions {
		return storeInfo{}, fmt.Errorf("streamtest: store %s has %d partitions: %w", name, info.partitions,
			&broker.TopicError{Topic: info.changelog, Partition: partition, Err: broker.ErrUnknownPartition})
	}
	return info, nil
}

// StoreGet returns a copy of key's value in partition of the state store
// name (the partition of the task that wrote it) and true, or nil and
// false if key is absent. Every processed record is committed, so it sees
// every write of records processed without error. It fails with an error
// matching stream.ErrUnknownStore for a store no step declared,
// broker.ErrUnknownPartition for a partition the store does not have
// (it has one per task of its sub-topology), and ErrClosed after Close.
func (d *Driver) StoreGet(name string, partition int32, key []byte) ([]byte, bool, error) {
	info, err := d.lookupStore(name, partition)
	if err != nil {
		return nil, false, err
	}
	if info.global != nil {
		return info.global.Get(key)
	}
	return d.tasks[info.sub][partition].env.stores[name].Get(key)
}

// StorePartitions returns the partition count of the state store name:
// the task count of the sub-topology that owns it. It fails like
// [Driver.StoreGet].
func (d *Driver) StorePartitions(name string) (int32, error) {
	info, err := d.lookupStore(name, 0)
	if err != nil {
		return 0, err
	}
	return info.partitions, nil
}

// StoreAll returns a single-use iterator over the pairs of partition of
// the state store name, in ascending key order, and a function returning
// the error that ended the iteration (check it after the loop). The
// yielded slices are valid until the next step and must not be modified.
// It fails like [Driver.StoreGet], through the error function.
func (d *Driver) StoreAll(name string, partition int32) (iter.Seq2[[]byte, []byte], func() error) {
	info, err := d.lookupStore(name, partition)
	if err != nil {
		return func(func([]byte, []byte) bool) {}, func() error { return err }
	}
	if info.global != nil {
		c := info.global.Range(nil, nil)
		return c.All(), c.Close
	}
	return d.tasks[info.sub][partition].env.stores[name].Range(nil, nil)
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
		return nil, &codec.EncodeError{Topic: s.d.changelogTopic(s.name), Part: "key", Err: err}
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
