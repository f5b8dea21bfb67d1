package duality

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/internal/runtime"
	"github.com/duality-streams/duality/internal/tablecore"
	"github.com/duality-streams/duality/internal/topology"
	"github.com/duality-streams/duality/table"
)

// IsRetryableQueryError reports whether an error of a [ReadOnlyStore] or
// [ReadOnlyWindowStore] read may go away by itself, after a rebalance or a restore: it matches
// [ErrStoreNotReady] or [ErrNotOwned] (ownership moves with rebalances).
// It classifies query errors only; broker.IsRetryable classifies broker
// errors.
func IsRetryableQueryError(err error) bool {
	return errors.Is(err, ErrStoreNotReady) || errors.Is(err, ErrNotOwned)
}

// ReadOnlyStore is a typed, read-only view of a key-value store of a
// running [App], made by [Query] or [QueryTable]. It serves the
// partitions this instance owns and only those: a key of another
// instance's partition fails with a *[NotOwnedError] that names the
// owner's [Endpoint], which [ReadOnlyStore.Owner] also tells without
// reading; package httpquery asks the owner over HTTP, so that any
// instance answers any key.
//
// Reads see committed state only: the store as of the last successful
// commit of its task, never the task's uncommitted writes, so the values
// match the output the app has committed. And never older: a commit's
// writes are visible to reads as soon as its input offsets are visible
// to the broker's clients, so once the group's lag is 0
// (broker.GroupLag) a read holds every input record. A read of a
// partition whose task is committing waits for that commit, at most its
// duration or until ctx ends. A ReadOnlyStore is safe for
// concurrent use, including while the app's workers write and rebalance,
// and stays valid across rebalances.
type ReadOnlyStore[K, V any] struct {
	r  *runtime.StoreReader
	kc codec.Codec[K]
	vc codec.Codec[V]
	// route returns the partition key of an encoded key (nil: the key
	// itself; see tablecore.Table.Route).
	route func([]byte) ([]byte, error)
}

// Query returns a read-only view of the key-value store named name of
// a's topology, with the codecs of its keys and values (for table.Count,
// the grouping's key codec and codec.Int64()): the store of a table (see
// also [QueryTable], which knows its name and codecs), of a stream.Process
// step, or a global store (table.Global), which every instance holds in
// full: Get then answers every key, Range and All scan the whole store,
// reads see the records applied so far (there are no commits), and
// ErrStoreNotReady means the app is not running or is still bootstrapping
// it. It may be called before or while a runs.
//
// It returns an error matching stream.ErrUnknownStore when the topology
// has no such store, [ErrWrongStoreKind] for the store of a windowed
// aggregation (query it with [QueryWindows]) or of a windowed join, and
// [ErrInvalidConfig] for a nil app or codec.
func Query[K, V any](a *App, name string, kc codec.Codec[K], vc codec.Codec[V]) (*ReadOnlyStore[K, V], error) {
	if a == nil || kc == nil || vc == nil {
		return nil, fmt.Errorf("%w: query %q: nil app or codec", ErrInvalidConfig, name)
	}
	r, err := storeReader(a, name, topology.StoreKeyValue)
	if err != nil {
		return nil, err
	}
	return &ReadOnlyStore[K, V]{r: r, kc: kc, vc: vc}, nil
}

// QueryTable is [Query] of the store of t, with t's codecs: a table from
// table.From, an aggregation of package table, table.Materialize or a
// foreign-key join. A table derived by Filter, MapValues or a table-table
// join has no store of its own (Materialize it to query it), and the
// table of a windowed aggregation is queried with [QueryWindows]: both are
// errors matching [ErrWrongStoreKind].
func QueryTable[K, V any](a *App, t table.Table[K, V]) (*ReadOnlyStore[K, V], error) {
	r, err := queryTable(a, t, topology.StoreKeyValue)
	if err != nil {
		return nil, err
	}
	return &ReadOnlyStore[K, V]{r: r, kc: t.KeyCodec(), vc: t.ValueCodec(), route: tablecore.Table[K, V](t).Route()}, nil
}

// queryTable returns the reader of t's own store, which must be of one of
// the kinds.
func queryTable[K, V any](a *App, t table.Table[K, V], kinds ...topology.StoreKind) (*runtime.StoreReader, error) {
	name, own := tablecore.Table[K, V](t).Store()
	switch {
	case a == nil || name == "" || t.KeyCodec() == nil || t.ValueCodec() == nil:
		return nil, fmt.Errorf("%w: query %q: nil app, or the zero Table", ErrInvalidConfig, name)
	case !own:
		return nil, fmt.Errorf("%w: query: the table is derived from the table of store %q (by Filter, MapValues or a join) and has no store of its own: Materialize it, or query %q", ErrWrongStoreKind, name, name)
	}
	return storeReader(a, name, kinds...)
}

// storeReader returns the reader of the store name of a, which must be
// of one of the kinds.
func storeReader(a *App, name string, kinds ...topology.StoreKind) (*runtime.StoreReader, error) {
	r, err := a.rt.StoreReader(name)
	if err != nil {
		return nil, err
	}
	kind := r.Spec().Kind
	if slices.Contains(kinds, kind) {
		return r, nil
	}
	var hint string
	switch kind {
	case topology.StoreWindow, topology.StoreSession:
		hint = ": query it with duality.QueryWindows"
	case topology.StoreKeyValue:
		hint = ": query it with duality.Query or duality.QueryTable"
	case topology.StoreJoinBuffer:
		hint = " of a windowed join, which cannot be queried"
	}
	return nil, fmt.Errorf("%w: store %q is a %s store%s", ErrWrongStoreKind, name, kind, hint)
}

// Name returns the store's name.
func (s *ReadOnlyStore[K, V]) Name() string { return s.r.Name() }

// Get returns the committed value of key, and whether it exists. The key
// is encoded with the key codec and routed to its partition with
// [broker.KeyPartition] over the store's partition count, as the runtime
// partitions records by key. This assumes that a store's keys are the keys
// its input was partitioned by, as for table aggregations; a low-level
// processor's store with other keys is read with Range or All instead.
// A view made by [QueryTable] of a table with windowed keys (a
// materialised windowed table) routes a key by its record key, as the
// windows of a key were partitioned.
// Errors: a *[NotOwnedError] when another instance owns
// that partition, [ErrStoreNotReady] (retryable) while the app is not
// running, rebalancing or restoring the partition, ctx's error, and codec
// or store errors.
func (s *ReadOnlyStore[K, V]) Get(ctx context.Context, key K) (V, bool, error) {
	var zero V
	if err := ctx.Err(); err != nil {
		return zero, false, err
	}
	k, err := s.kc.Append(nil, key)
	if err != nil {
		return zero, false, fmt.Errorf("store %s: encode key: %w", s.r.Name(), err)
	}
	pk := k
	if s.route != nil {
		if pk, err = s.route(k); err != nil {
			return zero, false, fmt.Errorf("store %s: encode key: %w", s.r.Name(), err)
		}
	}
	b, ok, p, err := s.r.GetPartitionOf(ctx, pk, k)
	if err != nil || !ok {
		return zero, false, err
	}
	v, err := s.vc.Decode(b)
	if err != nil {
		return zero, false, fmt.Errorf("store %s partition %d: decode value: %w", s.r.Name(), p, err)
	}
	return v, true, nil
}

// Owner returns which instance owns key, routed to its partition as
// [ReadOnlyStore.Get] routes it, in this instance's current assignment,
// without reading the store (Kafka Streams' queryMetadataForKey): this
// instance (Local) or another, named by its [Endpoint]. A global store's
// keys are all local. Errors: [ErrStoreNotReady] before the app's first
// assignment and after it stops, and codec errors.
func (s *ReadOnlyStore[K, V]) Owner(key K) (KeyOwner, error) {
	k, err := s.kc.Append(nil, key)
	if err != nil {
		return KeyOwner{}, fmt.Errorf("store %s: encode key: %w", s.r.Name(), err)
	}
	if s.route != nil {
		if k, err = s.route(k); err != nil {
			return KeyOwner{}, fmt.Errorf("store %s: encode key: %w", s.r.Name(), err)
		}
	}
	return s.r.OwnerOf(k)
}

// Range returns the committed pairs with from <= key < to (compared as
// encoded keys: use an order-preserving key codec for a meaningful range)
// over every partition this instance owns, merged in encoded key order.
// The sequence is single-use; the error function reports, after the
// iteration, the first error that stopped it: [ErrStoreNotReady] if the
// app is not running or one of its partitions is restoring (a range is
// never silently partial), ctx's error, codec and store errors. Each
// partition is read from a snapshot taken when the iteration starts.
// Shutdown of the app waits for ranges being iterated: do not keep one
// open indefinitely.
func (s *ReadOnlyStore[K, V]) Range(ctx context.Context, from, to K) (iter.Seq2[K, V], func() error) {
	return s.Scan(ctx, &from, &to)
}

// All is Range over every key of the partitions this instance owns.
func (s *ReadOnlyStore[K, V]) All(ctx context.Context) (iter.Seq2[K, V], func() error) {
	return s.scan(ctx, nil, nil)
}

// Scan is Range with optional bounds: a nil from starts at the first key,
// a nil to means no upper bound.
func (s *ReadOnlyStore[K, V]) Scan(ctx context.Context, from, to *K) (iter.Seq2[K, V], func() error) {
	var start, end []byte
	var errs []error
	if from != nil {
		b, err := s.kc.Append(nil, *from)
		errs = append(errs, err)
		start = b
	}
	if to != nil {
		b, err := s.kc.Append(nil, *to)
		errs = append(errs, err)
		end = b
		if end == nil {
			end = []byte{}
		}
	}
	if err := errors.Join(errs...); err != nil {
		err = fmt.Errorf("store %s: encode range bound: %w", s.r.Name(), err)
		return func(func(K, V) bool) {}, func() error { return err }
	}
	return s.scan(ctx, start, end)
}

// scan decodes the pairs of the byte-level scan of [start, end): a codec
// error stops the iteration and is its error; otherwise the error is the
// scan's.
func (s *ReadOnlyStore[K, V]) scan(ctx context.Context, start, end []byte) (iter.Seq2[K, V], func() error) {
	raw, rawErr := s.r.Scan(ctx, start, end)
	var err error
	seq := func(yield func(K, V) bool) {
		err = nil
		for kb, vb := range raw {
			k, kerr := s.kc.Decode(kb)
			if kerr != nil {
				err = fmt.Errorf("store %s: decode key: %w", s.r.Name(), kerr)
				return
			}
			v, verr := s.vc.Decode(vb)
			if verr != nil {
				err = fmt.Errorf("store %s: decode value: %w", s.r.Name(), verr)
				return
			}
			if !yield(k, v) {
				return
			}
		}
	}
	return seq, func() error {
		if err != nil {
			return err
		}
		return rawErr()
	}
}
