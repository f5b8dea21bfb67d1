package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/topology"
	"github.com/duality-streams/duality/store"
)

// This file holds the interactive queries of an App: the registry of the
// store partitions open for reading, and the byte-level reads of one
// store ([StoreReader]): a key routed to its partition, and ranges merged
// over the partitions this instance owns. The root package's Query adds
// the codecs.

// openPart is a store partition open for queries.
type openPart struct {
	st store.Store
	// fence is held while a commit of the partition's task writes the
	// store (see commitFence).
	fence *commitFence
}

// committed returns the store once the commit in flight that writes it,
// if any, has written it (or failed), or ctx's error.
func (p *openPart) committed(ctx context.Context) (store.Store, error) {
	if err := p.fence.wait(ctx); err != nil {
		return nil, err
	}
	return p.st, nil
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
		owned map[string]map[int32]*openPart
		// globals are the bootstrapped global stores, by name.
		globals map[string]*globalStore
		// owners maps each store to the endpoint advertised by the owner
		// of each of its partitions in the current assignment (see
		// App.owners); a partition is absent when its owner advertises
		// none or it is unassigned.
		owners map[string]map[int32]string
	}
	// endpoint is this instance's Config.Endpoint, set by New.
	endpoint string
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

// assign records the store partitions of a new assignment, not open yet
// unless they stay open (their tasks go on in a cooperative rebalance),
// and the endpoints of their owners (nil: none known).
func (q *queries) assign(tasks []*task, owners map[string]map[int32]string) {
	owned := map[string]map[int32]*openPart{}
	for _, t := range tasks {
		for _, sp := range t.sub.stores {
			if owned[sp.name] == nil {
				owned[sp.name] = map[int32]*openPart{}
			}
			owned[sp.name][t.id.Partition] = nil
		}
	}
	q.mu.Lock()
	// A store partition that stays (a cooperative rebalance keeps its
	// task running) stays readable.
	for name, parts := range owned {
		for p := range parts {
			parts[p] = q.mu.owned[name][p]
		}
	}
	q.mu.running, q.mu.owned, q.mu.owners = true, owned, owners
	q.mu.Unlock()
}

// open makes a restored store partition readable, its reads waiting at
// fence; closed makes it unreadable again, before the store is closed.
func (q *queries) open(name string, p int32, st store.Store, fence *commitFence) {
	q.set(name, p, &openPart{st: st, fence: fence})
}
func (q *queries) closed(name string, p int32) { q.set(name, p, nil) }

func (q *queries) set(name string, p int32, st *openPart) {
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
	q.mu.running, q.mu.owned, q.mu.owners = false, nil, nil
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

// reopen lets queries in again after close.
func (g *gate) reopen() {
	g.mu.Lock()
	g.closing = false
	g.mu.Unlock()
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

// lookup returns the open store of partition p of name, once it holds
// the writes of its task's commit in flight (see commitFence).
func (q *queries) lookup(ctx context.Context, name string, p int32) (store.Store, error) {
	op, err := q.part(name, p)
	if err != nil {
		return nil, err
	}
	return op.committed(ctx)
}

// part returns the open partition p of name.
func (q *queries) part(name string, p int32) (*openPart, error) {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if !q.mu.running {
		return nil, fmt.Errorf("store %s partition %d: app not running or rebalancing: %w", name, p, ErrStoreNotReady)
	}
	op, ok := q.mu.owned[name][p]
	if !ok {
		return nil, &NotOwnedError{Store: name, Partition: p, Owner: q.mu.owners[name][p]}
	}
	if op == nil {
		return nil, fmt.Errorf("store %s partition %d: opening or restoring: %w", name, p, ErrStoreNotReady)
	}
	return op, nil
}

// owner returns the owner of partition p of name in the current
// assignment: ErrStoreNotReady before the first one.
func (q *queries) owner(name string, p int32) (KeyOwner, error) {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if !q.mu.running {
		return KeyOwner{}, fmt.Errorf("store %s partition %d: app not running: %w", name, p, ErrStoreNotReady)
	}
	_, local := q.mu.owned[name][p]
	o := KeyOwner{Store: name, Partition: p, Local: local, Endpoint: q.mu.owners[name][p]}
	if local {
		o.Endpoint = q.endpoint
	}
	return o, nil
}

// ownedStores returns the open stores of the partitions of name this
// instance owns, in partition order, once each holds the writes of its
// task's commit in flight.
func (q *queries) ownedStores(ctx context.Context, name string) ([]store.Store, error) {
	parts, err := q.ownedParts(name)
	if err != nil {
		return nil, err
	}
	out := make([]store.Store, 0, len(parts))
	for _, op := range parts {
		st, err := op.committed(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// ownedParts returns the open partitions of name this instance owns, in
// partition order.
func (q *queries) ownedParts(name string) ([]*openPart, error) {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if !q.mu.running {
		return nil, fmt.Errorf("store %s: app not running or rebalancing: %w", name, ErrStoreNotReady)
	}
	n := q.mu.partitions[name]
	var out []*openPart
	for p := range n {
		op, ok := q.mu.owned[name][p]
		if !ok {
			continue
		}
		if op == nil {
			return nil, fmt.Errorf("store %s partition %d: opening or restoring: %w", name, p, ErrStoreNotReady)
		}
		out = append(out, op)
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

// StoreReader reads the committed state of one store of an [App] as
// bytes: the byte-level half of duality.Query, which adds the codecs and
// documents the semantics. It serves the partitions this instance owns
// (all of a global store), reads committed state only, and is safe for
// concurrent use, also while the app's workers write and rebalance.
//
// A read is never older than the input offsets committed when it starts:
// the writes of a commit are visible to reads as soon as its offsets are
// to the broker's clients (a group lag of 0 means every input record is
// in the state read). A read of a partition whose task is committing
// waits for that commit to write the store, at most the commit's
// duration (or until its ctx ends).
type StoreReader struct {
	q      *queries
	name   string
	spec   topology.StoreSpec
	global bool
}

// StoreReader returns a reader of the store name of a's topology: a store
// of a sub-topology or a global store. It may be called before or while a
// runs. It returns an error matching topology.ErrUnknownStore
// (stream.ErrUnknownStore) when the topology declares no such store.
func (a *App) StoreReader(name string) (*StoreReader, error) {
	for _, sp := range a.plan.subs {
		for _, s := range sp.st.Stores {
			if s.Name == name {
				return &StoreReader{q: &a.iq, name: name, spec: s}, nil
			}
		}
	}
	for _, g := range a.plan.globals {
		if g.name == name {
			return &StoreReader{q: &a.iq, name: name, spec: topology.StoreSpec{Name: name}, global: true}, nil
		}
	}
	return nil, fmt.Errorf("%w: %q", topology.ErrUnknownStore, name)
}

// Name returns the store's name.
func (r *StoreReader) Name() string { return r.name }

// Spec returns the store's declaration, whose Kind says how to read its
// keys and values (a global store is a key-value store).
func (r *StoreReader) Spec() topology.StoreSpec { return r.spec }

// Get returns a copy of the committed value of key and true, or false,
// and the partition it read: the one [broker.KeyPartition] routes key to
// over the store's partition count, as the runtime partitions records
// (0 for a global store, which holds every key). It reads the local
// store only. Errors: a *[NotOwnedError] when another instance owns the
// partition, [ErrStoreNotReady] while the app is not running,
// rebalancing or restoring the partition (or bootstrapping a global
// store), ctx's error (while it waits for a commit in flight), and store
// errors.
func (r *StoreReader) Get(ctx context.Context, key []byte) (value []byte, ok bool, partition int32, err error) {
	return r.GetPartitionOf(ctx, key, key)
}

// GetPartitionOf is Get of key in the partition that
// [broker.KeyPartition] routes pkey to: for a store whose keys are not
// the keys its records were partitioned by, such as a table with windowed
// keys (partitioned by the record key).
func (r *StoreReader) GetPartitionOf(ctx context.Context, pkey, key []byte) (value []byte, ok bool, partition int32, err error) {
	q := r.q
	if !q.gate.enter() {
		return nil, false, 0, errStopped(r.name)
	}
	defer q.gate.leave()
	if r.global {
		g := q.globalStore(r.name)
		if g == nil {
			return nil, false, 0, errNoGlobal(r.name)
		}
		value, ok, _, err = g.get(nil, key)
	} else {
		n := q.partitionCount(r.name)
		if n <= 0 {
			return nil, false, 0, fmt.Errorf("store %s: app not running: %w", r.name, ErrStoreNotReady)
		}
		partition = broker.KeyPartition(pkey, n)
		st, lerr := q.lookup(ctx, r.name, partition)
		if lerr != nil {
			return nil, false, partition, lerr
		}
		value, ok, err = st.Get(key)
	}
	if err != nil {
		return nil, false, partition, notReady(r.name, err)
	}
	return value, ok, partition, nil
}

// OwnerOf returns the owner of the partition that [broker.KeyPartition]
// routes pkey to, as Get routes it, in the current assignment: this
// instance (Local) or another, named by the endpoint it advertises. For
// a global store, which every instance holds, it is this instance. It
// errs with [ErrStoreNotReady] before the app's first assignment (before
// the global store is bootstrapped) and after Run returns.
func (r *StoreReader) OwnerOf(pkey []byte) (KeyOwner, error) {
	q := r.q
	if r.global {
		if q.globalStore(r.name) == nil {
			return KeyOwner{}, errNoGlobal(r.name)
		}
		return KeyOwner{Store: r.name, Local: true, Endpoint: q.endpoint}, nil
	}
	n := q.partitionCount(r.name)
	if n <= 0 {
		return KeyOwner{}, fmt.Errorf("store %s: app not running: %w", r.name, ErrStoreNotReady)
	}
	return q.owner(r.name, broker.KeyPartition(pkey, n))
}

// Scan returns the committed pairs with start <= key < end (nil start:
// from the first key; nil end: no upper bound) over every partition this
// instance owns, merged in key order (bytes.Compare), each partition read
// from a snapshot taken when the iteration starts. The sequence is
// single-use; the yielded slices are valid until the next step. The
// error function reports, after the iteration, the first error that
// stopped it: [ErrStoreNotReady] if the app is not running or one of its
// partitions is restoring (a range is never silently partial), ctx's
// error (checked before every pair), and store errors. Run's shutdown
// waits for scans being iterated.
func (r *StoreReader) Scan(ctx context.Context, start, end []byte) (iter.Seq2[[]byte, []byte], func() error) {
	return r.scan(ctx, nil, start, end)
}

// ScanPartitionOf is Scan over the one partition that [broker.KeyPartition]
// routes key to, as Get does (the whole store for a global store): for a
// store whose entries of one record key, in whatever encoding, all sit in
// the partition of that key, such as a windowed store. It fails with a
// *[NotOwnedError] when another instance owns that partition, besides
// Scan's errors.
func (r *StoreReader) ScanPartitionOf(ctx context.Context, key, start, end []byte) (iter.Seq2[[]byte, []byte], func() error) {
	if key == nil {
		key = []byte{}
	}
	return r.scan(ctx, key, start, end)
}

// scan is Scan over every owned partition (key nil), or over the
// partition of key.
func (r *StoreReader) scan(ctx context.Context, key, start, end []byte) (iter.Seq2[[]byte, []byte], func() error) {
	var err error
	seq := func(yield func([]byte, []byte) bool) {
		err = nil
		if err = ctx.Err(); err != nil {
			return
		}
		q := r.q
		if !q.gate.enter() {
			err = errStopped(r.name)
			return
		}
		defer q.gate.leave()
		var sts []func(start, end []byte) store.Cursor
		if r.global {
			g := q.globalStore(r.name)
			if g == nil {
				err = errNoGlobal(r.name)
				return
			}
			sts = append(sts, g.rangeData)
		} else if key != nil {
			n := q.partitionCount(r.name)
			if n <= 0 {
				err = fmt.Errorf("store %s: app not running: %w", r.name, ErrStoreNotReady)
				return
			}
			st, lerr := q.lookup(ctx, r.name, broker.KeyPartition(key, n))
			if lerr != nil {
				err = lerr
				return
			}
			sts = append(sts, st.Range)
		} else {
			owned, lerr := q.ownedStores(ctx, r.name)
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
					err = notReady(r.name, cerr)
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
				err = notReady(r.name, cerr)
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
			if !yield(c.Key(), c.Value()) {
				return
			}
			if !c.Next() {
				if cerr := c.Err(); cerr != nil {
					err = notReady(r.name, cerr)
					return
				}
				live = append(live[:i], live[i+1:]...)
			}
		}
	}
	return seq, func() error { return err }
}
