package stream

import (
	"fmt"
	"iter"

	"github.com/duality-streams/duality/codec"
)

// StoreSpec declares a state store for [WithStores]: a typed store made by
// [NewKeyValueStoreSpec], or a store of byte strings named with
// [BytesStoreSpec]. A declaration is a description shared by every task;
// each task's processor opens its own partition of the store, a handle:
// a [KeyValueStore] or a [BytesStore]. Only this package implements it.
type StoreSpec interface {
	// StoreName returns the store's name.
	StoreName() string
	// check returns an error for an invalid declaration (nil codecs).
	check() error
}

// BytesStoreSpec declares the state store name as a store of byte
// strings, which the processor opens with [ProcessorContext].Store as a
// [BytesStore]:
//
//	stream.Process(s, newDedup, stream.WithStores(stream.BytesStoreSpec("seen")))
//
// It is the same store as a [KeyValueStoreSpec] of that name: only the view
// differs.
type BytesStoreSpec string

// StoreName returns the store's name.
func (s BytesStoreSpec) StoreName() string { return string(s) }

func (s BytesStoreSpec) check() error { return nil }

// KeyValueStoreSpec declares a typed state store, once, with its name and
// codecs: pass it to [WithStores] on the [Process] steps that use it and
// open it in their processors' Init with [KeyValueStoreSpec.Open]:
//
//	counts := stream.NewKeyValueStoreSpec("counts", codec.String(), codec.Int64())
//	stream.Process(s, newCounter, stream.WithStores(counts))
//	// in Init:
//	st, err := counts.Open(pc)
//
// It is a description, shared by every task; each task opens its own
// [KeyValueStore]. A KeyValueStoreSpec is safe for concurrent use.
type KeyValueStoreSpec[K, V any] struct {
	name string
	kc   codec.Codec[K]
	vc   codec.Codec[V]
}

// NewKeyValueStoreSpec declares the state store name whose keys are encoded
// with kc and values with vc. The store is a key-value store per task,
// logged to the changelog topic "<app-id>-<name>-changelog" and restored
// from it, as every store declared with [WithStores]; Build reports an
// invalid name (ErrInvalidOption) and nil codecs (ErrNilCodec) for the
// steps that declare it. Entries are ordered by their encoded keys, so
// ranges follow K's order only with an order-preserving kc (see package
// codec, "Order preservation").
func NewKeyValueStoreSpec[K, V any](name string, kc codec.Codec[K], vc codec.Codec[V]) *KeyValueStoreSpec[K, V] {
	return &KeyValueStoreSpec[K, V]{name: name, kc: kc, vc: vc}
}

// StoreName returns the store's name.
func (s *KeyValueStoreSpec[K, V]) StoreName() string { return s.name }

// KeyCodec returns the codec of the store's keys.
func (s *KeyValueStoreSpec[K, V]) KeyCodec() codec.Codec[K] { return s.kc }

// ValueCodec returns the codec of the store's values.
func (s *KeyValueStoreSpec[K, V]) ValueCodec() codec.Codec[V] { return s.vc }

func (s *KeyValueStoreSpec[K, V]) check() error {
	switch {
	case s == nil:
		return fmt.Errorf("%w: WithStores with a nil *KeyValueStoreSpec", ErrInvalidOption)
	case s.kc == nil:
		return fmt.Errorf("store %q: key codec: %w", s.name, ErrNilCodec)
	case s.vc == nil:
		return fmt.Errorf("store %q: value codec: %w", s.name, ErrNilCodec)
	}
	return nil
}

// StoreOpener opens the task's partition of a store by name. Every
// [ProcessorContext] is one; [KeyValueStoreSpec.Open] takes it.
type StoreOpener interface {
	Store(name string) (BytesStore, error)
}

// Open returns the task's partition of the store, typed: call it from the
// processor's Init with its [ProcessorContext]. It fails as
// [ProcessorContext].Store does: with an error matching ErrUnknownStore
// when the step did not declare the store with [WithStores]. The store is
// valid until the processor's Close.
func (s *KeyValueStoreSpec[K, V]) Open(pc StoreOpener) (*KeyValueStore[K, V], error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	kv, err := pc.Store(s.name)
	if err != nil {
		return nil, err
	}
	return &KeyValueStore[K, V]{kv: kv, name: s.name, kc: s.kc, vc: s.vc}, nil
}

// KeyValueStore is a task's partition of a typed state store, the handle
// that [KeyValueStoreSpec.Open] returns: a [BytesStore] whose keys and
// values are encoded and decoded with the store's codecs. It has the
// BytesStore's semantics: writes
// are buffered until the task's commit and logged to the changelog with
// it, reads see the task's own writes, and a record that fails under a
// skip error policy leaves no writes behind. Entries are ordered by their
// encoded keys. Codec failures name the store: an encode failure is a
// *codec.EncodeError (its Store set), a decode failure an error wrapping
// the codec's. Not safe for concurrent use.
type KeyValueStore[K, V any] struct {
	kv   BytesStore
	name string
	kc   codec.Codec[K]
	vc   codec.Codec[V]
	kbuf []byte
	vbuf []byte
}

// Name returns the store's name.
func (s *KeyValueStore[K, V]) Name() string { return s.name }

func (s *KeyValueStore[K, V]) key(k K) ([]byte, error) {
	b, err := s.kc.Append(s.kbuf[:0], k)
	if err != nil {
		return nil, &codec.EncodeError{Store: s.name, Part: "key", Err: err}
	}
	s.kbuf = b
	return b, nil
}

// Get returns k's value and true, or V's zero value and false if k is
// absent.
func (s *KeyValueStore[K, V]) Get(k K) (V, bool, error) {
	var zero V
	kb, err := s.key(k)
	if err != nil {
		return zero, false, err
	}
	b, ok, err := s.kv.Get(kb)
	if err != nil || !ok {
		return zero, false, err
	}
	v, err := s.vc.Decode(b)
	if err != nil {
		return zero, false, fmt.Errorf("store %q: decode the value: %w", s.name, err)
	}
	return v, true, nil
}

// Put sets k to v.
func (s *KeyValueStore[K, V]) Put(k K, v V) error {
	kb, err := s.key(k)
	if err != nil {
		return err
	}
	vb, err := s.vc.Append(s.vbuf[:0], v)
	if err != nil {
		return &codec.EncodeError{Store: s.name, Part: "value", Err: err}
	}
	s.vbuf = vb
	return s.kv.Put(kb, vb)
}

// Delete deletes k (a tombstone in the changelog, even for an absent
// key). A key put since the last commit that was absent before that Put
// is forgotten instead: the changelog gets neither record.
func (s *KeyValueStore[K, V]) Delete(k K) error {
	kb, err := s.key(k)
	if err != nil {
		return err
	}
	return s.kv.Delete(kb)
}

// Range returns a single-use iterator over the entries whose encoded keys
// are in [encoded from, encoded to), ascending by encoded key (a nil from:
// from the first entry; a nil to: no upper bound), and a function that
// returns the error that ended the iteration, if any: the store's, or a
// key or value that does not decode (check it after the loop). With an
// order-preserving key codec the range is [*from, *to) in K's order.
// Writes made during the iteration are not seen by it.
func (s *KeyValueStore[K, V]) Range(from, to *K) (iter.Seq2[K, V], func() error) {
	var start, end []byte
	var err error
	for _, b := range []struct {
		k   *K
		dst *[]byte
	}{{from, &start}, {to, &end}} {
		if b.k == nil {
			continue
		}
		if *b.dst, err = s.kc.Append(nil, *b.k); err != nil {
			err = &codec.EncodeError{Store: s.name, Part: "key", Err: err}
			return func(func(K, V) bool) {}, func() error { return err }
		}
		if *b.dst == nil {
			*b.dst = []byte{} // a bound, not "no bound"
		}
	}
	seq, errf := s.kv.Range(start, end)
	return func(yield func(K, V) bool) {
			for kb, vb := range seq {
				k, derr := s.kc.Decode(kb)
				if derr != nil {
					err = fmt.Errorf("store %q: decode a key: %w", s.name, derr)
					return
				}
				v, derr := s.vc.Decode(vb)
				if derr != nil {
					err = fmt.Errorf("store %q: decode a value: %w", s.name, derr)
					return
				}
				if !yield(k, v) {
					return
				}
			}
		}, func() error {
			if err != nil {
				return err
			}
			return errf()
		}
}
