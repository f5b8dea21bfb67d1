package duality

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/store"
)

var (
	// ErrStoreNotReady is matched by query errors while the store partition
	// cannot be read yet: the app is not running, it is joining the group
	// or rebalancing, or the partition is being restored from its
	// changelog. The query may succeed if retried later.
	ErrStoreNotReady = errors.New("duality: store not ready")
	// ErrNotOwned is matched by a *[NotOwnedError]: the key's partition is
	// assigned to another instance of the app.
	ErrNotOwned = errors.New("duality: store partition not owned by this instance")
	// ErrUnknownStore is returned by [Query] for a store name the topology
	// does not declare.
	ErrUnknownStore = errors.New("duality: unknown store")
)

// NotOwnedError is returned by a query for a key whose partition this
// instance does not own. It matches [ErrNotOwned]. Another instance of the
// app may own it; Duality does not forward queries between instances.
type NotOwnedError struct {
	// Store is the store's name.
	Store string
	// Partition is the key's partition, owned by another instance.
	Partition int32
}

func (e *NotOwnedError) Error() string {
	return fmt.Sprintf("duality: store %s partition %d is not owned by this instance", e.Store, e.Partition)
}

// Is reports whether target is [ErrNotOwned].
func (e *NotOwnedError) Is(target error) bool { return target == ErrNotOwned }

// IsRetryable reports whether a query error may go away by itself, after a
// rebalance or a restore: it matches [ErrStoreNotReady] or [ErrNotOwned]
// (ownership moves with rebalances).
func IsRetryable(err error) bool {
	return errors.Is(err, ErrStoreNotReady) || errors.Is(err, ErrNotOwned)
}

// queries is an app's registry of the store partitions open for queries.
type queries struct {
	// gate counts the queries using a store, so that Run closes the DB
	// only once none reads it.
	gate gate
	mu   struct {
		sync.RWMutex
		// running is true between an assignment and its revocation.
		running bool
		// partitions is the partition count of each store of the plan.
		partitions map[string]int32
		// owned maps each store to its assigned partitions, with the
		// open store (nil while it is not open or being restored).
		owned map[string]map[int32]store.Store
		// globals are the bootstrapped global stores, by name.
		globals map[string]*globalStore
	}
}

// setGlobals makes the global stores readable once bootstrapped (nil:
// unreadable again, before they close).
func (q *queries) setGlobals(gs []*globalStore) {
	m := map[string]*globalStore{}
	for _, g := range gs {
		m[g.name] = g
	}
	q.mu.Lock()
	q.mu.globals = m
	q.mu.Unlock()
}

// globalStore returns the global store name, nil when it is not
// readable.
func (q *queries) globalStore(name string) *globalStore {
	q.mu.RLock()
	defer q.mu.RUnlock()
	return q.mu.globals[name]
}

// setPartitions records the partition count of every store (the count of
// its changelog topic), once Run knows the topics.
func (q *queries) setPartitions(p *plan, topics map[string]int32) {
	parts := map[string]int32{}
	for _, sp := range p.subs {
		for _, s := range sp.stores {
			parts[s.name] = topics[s.changelog]
		}
	}
	q.mu.Lock()
	q.mu.partitions = parts
	q.mu.Unlock()
}

// assign records the store partitions of a new assignment, not open yet.
func (q *queries) assign(tasks []*task) {
	owned := map[string]map[int32]store.Store{}
	for _, t := range tasks {
		for _, sp := range t.sub.stores {
			if owned[sp.name] == nil {
				owned[sp.name] = map[int32]store.Store{}
			}
			owned[sp.name][t.id.Partition] = nil
		}
	}
	q.mu.Lock()
	q.mu.running, q.mu.owned = true, owned
	q.mu.Unlock()
}

// open makes a restored store partition readable; closed makes it
// unreadable again, before the store is closed.
func (q *queries) open(name string, p int32, st store.Store) { q.set(name, p, st) }
func (q *queries) closed(name string, p int32)               { q.set(name, p, nil) }

func (q *queries) set(name string, p int32, st store.Store) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if m := q.mu.owned[name]; m != nil {
		if _, ok := m[p]; ok {
			m[p] = st
		}
	}
}

// stop makes every query fail with ErrStoreNotReady, and waits for the
// queries in flight, before Run closes the DB.
func (q *queries) stop() {
	q.mu.Lock()
	q.mu.running, q.mu.owned = false, nil
	q.mu.Unlock()
	q.gate.close()
}

// gate lets queries in until it is closed, and close waits for those in.
// Entering never blocks, so a query may run inside another (a Get in the
// body of a Range loop) without deadlocking a concurrent close.
type gate struct {
	mu      sync.Mutex
	closing bool
	active  int
	idle    chan struct{} // closed when active drops to 0 while closing
}

func (g *gate) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closing {
		return false
	}
	g.active++
	return true
}

func (g *gate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.active--
	if g.active == 0 && g.idle != nil {
		close(g.idle)
		g.idle = nil
	}
}

func (g *gate) close() {
	g.mu.Lock()
	g.closing = true
	if g.active == 0 {
		g.mu.Unlock()
		return
	}
	idle := make(chan struct{})
	g.idle = idle
	g.mu.Unlock()
	<-idle
}

// errStopped is the error of a query after Run has stopped.
func errStopped(name string) error {
	return fmt.Errorf("store %s: app not running: %w", name, ErrStoreNotReady)
}

// errNoGlobal is the error of a query of a global store that is not
// readable.
func errNoGlobal(name string) error {
	return fmt.Errorf("global store %s: app not running or still bootstrapping the store: %w", name, ErrStoreNotReady)
}

// lookup returns the open store of partition p of name.
func (q *queries) lookup(name string, p int32) (store.Store, error) {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if !q.mu.running {
		return nil, fmt.Errorf("store %s partition %d: app not running or rebalancing: %w", name, p, ErrStoreNotReady)
	}
	st, ok := q.mu.owned[name][p]
	if !ok {
		return nil, &NotOwnedError{Store: name, Partition: p}
	}
	if st == nil {
		return nil, fmt.Errorf("store %s partition %d: opening or restoring: %w", name, p, ErrStoreNotReady)
	}
	return st, nil
}

// ownedStores returns the open stores of the partitions of name this
// instance owns, in partition order.
func (q *queries) ownedStores(name string) ([]store.Store, error) {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if !q.mu.running {
		return nil, fmt.Errorf("store %s: app not running or rebalancing: %w", name, ErrStoreNotReady)
	}
	n := q.mu.partitions[name]
	var out []store.Store
	for p := range n {
		st, ok := q.mu.owned[name][p]
		if !ok {
			continue
		}
		if st == nil {
			return nil, fmt.Errorf("store %s partition %d: opening or restoring: %w", name, p, ErrStoreNotReady)
		}
		out = append(out, st)
	}
	return out, nil
}

func (q *queries) partitionCount(name string) int32 {
	q.mu.RLock()
	defer q.mu.RUnlock()
	return q.mu.partitions[name]
}

// notReady turns a closed store (closed by a rebalance during the query)
// into ErrStoreNotReady.
func notReady(name string, err error) error {
	if errors.Is(err, store.ErrClosed) {
		return fmt.Errorf("store %s: closed by a rebalance: %w: %w", name, ErrStoreNotReady, err)
	}
	return err
}

// ReadOnlyStore is a typed, read-only view of a store of a running [App],
// made by [Query]. It serves the partitions this instance owns and only
// those: a key of another instance's partition fails with a
// *[NotOwnedError] (as in Kafka Streams, finding and asking the owner needs
// an RPC layer between instances, which Duality does not provide).
//
// Reads see committed state only: the store as of the last successful
// commit of its task, never the task's uncommitted writes, so the values
// match the output the app has committed. A ReadOnlyStore is safe for
// concurrent use, including while the app's workers write and rebalance,
// and stays valid across rebalances.
type ReadOnlyStore[K, V any] struct {
	app    *App
	name   string
	global bool
	kc     codec.Codec[K]
	vc     codec.Codec[V]
}

// Query returns a read-only view of the store named name of a's topology,
// with the codecs of its keys and values (for table.Count, the grouping's
// key codec and codec.Int64()). name may be a global store (table.Global),
// which every instance holds in full: Get then answers every key, Range and
// All scan the whole store, reads see the records applied so far (there
// are no commits), and ErrStoreNotReady means the app is not running or is
// still bootstrapping it. It may be called before or while a runs.
// It returns an error matching [ErrUnknownStore] when the topology has no
// such store, and [ErrInvalidConfig] for a nil app or codec.
func Query[K, V any](a *App, name string, kc codec.Codec[K], vc codec.Codec[V]) (*ReadOnlyStore[K, V], error) {
	if a == nil || kc == nil || vc == nil {
		return nil, fmt.Errorf("%w: query %q: nil app or codec", ErrInvalidConfig, name)
	}
	for _, sp := range a.plan.subs {
		for _, s := range sp.stores {
			if s.name == name {
				return &ReadOnlyStore[K, V]{app: a, name: name, kc: kc, vc: vc}, nil
			}
		}
	}
	for _, g := range a.plan.globals {
		if g.name == name {
			return &ReadOnlyStore[K, V]{app: a, name: name, global: true, kc: kc, vc: vc}, nil
		}
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownStore, name)
}

// Name returns the store's name.
func (s *ReadOnlyStore[K, V]) Name() string { return s.name }

// Get returns the committed value of key, and whether it exists. The key
// is encoded with the key codec and routed to its partition with
// [broker.KeyPartition] over the store's partition count, as the runtime
// partitions records by key. This assumes that a store's keys are the keys
// its input was partitioned by, as for table aggregations; a low-level
// processor's store with other keys is read with Range or All instead.
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
		return zero, false, fmt.Errorf("store %s: encode key: %w", s.name, err)
	}
	q := &s.app.iq
	if !q.gate.enter() {
		return zero, false, errStopped(s.name)
	}
	defer q.gate.leave()
	var b []byte
	var ok bool
	var p int32
	if s.global {
		g := q.globalStore(s.name)
		if g == nil {
			return zero, false, errNoGlobal(s.name)
		}
		b, ok, _, err = g.get(nil, k)
	} else {
		n := q.partitionCount(s.name)
		if n <= 0 {
			return zero, false, fmt.Errorf("store %s: app not running: %w", s.name, ErrStoreNotReady)
		}
		p = broker.KeyPartition(k, n)
		st, lerr := q.lookup(s.name, p)
		if lerr != nil {
			return zero, false, lerr
		}
		b, ok, err = st.Get(k)
	}
	if err != nil {
		return zero, false, notReady(s.name, err)
	}
	if !ok {
		return zero, false, nil
	}
	v, err := s.vc.Decode(b)
	if err != nil {
		return zero, false, fmt.Errorf("store %s partition %d: decode value: %w", s.name, p, err)
	}
	return v, true, nil
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
		err = fmt.Errorf("store %s: encode range bound: %w", s.name, err)
		return func(func(K, V) bool) {}, func() error { return err }
	}
	return s.scan(ctx, start, end)
}

func (s *ReadOnlyStore[K, V]) scan(ctx context.Context, start, end []byte) (iter.Seq2[K, V], func() error) {
	var err error
	seq := func(yield func(K, V) bool) {
		err = nil
		if err = ctx.Err(); err != nil {
			return
		}
		q := &s.app.iq
		if !q.gate.enter() {
			err = errStopped(s.name)
			return
		}
		defer q.gate.leave()
		var sts []func(start, end []byte) store.Cursor
		if s.global {
			g := q.globalStore(s.name)
			if g == nil {
				err = errNoGlobal(s.name)
				return
			}
			sts = append(sts, g.rangeData)
		} else {
			owned, lerr := q.ownedStores(s.name)
			if lerr != nil {
				err = lerr
				return
			}
			for _, st := range owned {
				sts = append(sts, st.Range)
			}
		}
		if end != nil && bytes.Compare(start, end) >= 0 {
			return
		}
		curs := make([]store.Cursor, 0, len(sts))
		defer func() {
			for _, c := range curs {
				if cerr := c.Close(); cerr != nil && err == nil {
					err = notReady(s.name, cerr)
				}
			}
		}()
		var live []store.Cursor
		for _, rangeOf := range sts {
			c := rangeOf(start, end)
			curs = append(curs, c)
			if c.Next() {
				live = append(live, c)
			} else if cerr := c.Err(); cerr != nil {
				err = notReady(s.name, cerr)
				return
			}
		}
		for len(live) > 0 {
			if err = ctx.Err(); err != nil {
				return
			}
			i := 0
			for j := 1; j < len(live); j++ {
				if bytes.Compare(live[j].Key(), live[i].Key()) < 0 {
					i = j
				}
			}
			c := live[i]
			k, kerr := s.kc.Decode(c.Key())
			if kerr != nil {
				err = fmt.Errorf("store %s: decode key: %w", s.name, kerr)
				return
			}
			v, verr := s.vc.Decode(c.Value())
			if verr != nil {
				err = fmt.Errorf("store %s: decode value: %w", s.name, verr)
				return
			}
			if !yield(k, v) {
				return
			}
			if !c.Next() {
				if cerr := c.Err(); cerr != nil {
					err = notReady(s.name, cerr)
					return
				}
				live = append(live[:i], live[i+1:]...)
			}
		}
	}
	return seq, func() error { return err }
}
