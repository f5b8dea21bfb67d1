package runtime

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/store"
)

// Layout of a global store in its store.Store: the data keys behind
// globalData, and the next offset to read of each partition of its topic
// behind globalPos (4-byte big-endian partition -> 8-byte big-endian
// offset). Data and positions are written in one batch, so the positions
// say exactly which prefix of each partition the data reflects. The key
// globalEpoch holds the store's epoch (8 bytes big-endian; absent: 0),
// raised by each rebuild (see globalStore).
const (
	globalPos   = 0x00
	globalData  = 0x01
	globalEpoch = 0x02
)

var globalEpochKey = []byte{globalEpoch}

// globalStore is a global store of a running app: every partition of its
// topic, written by the app's global goroutine and read concurrently by
// tasks and queries.
//
// It lives in two store.Store slots of the DB, partitions 0 and 1 of its
// name. Readers see the active one; the other is empty, or holds a
// rebuild in progress: when following the topic finds the store's
// position out of range (records deleted under it), the store is rebuilt
// from the beginning of the topic into the other slot, which replaces the
// active one only once it has caught up (rebuild). Readers therefore always
// see a complete store, never one dropped or half rebuilt. A completed
// rebuild raises the slot's epoch; at the next start the slot with the
// larger epoch is active (slot 0 on a tie, which is also where a store
// written before slots existed lives), and the other is dropped.
type globalStore struct {
	name, topic string
	slots       [2]store.Store
	// mu guards active against the swap of a rebuild: readers hold it
	// shared while they call the active slot, so none uses the old slot
	// once the swap returns.
	mu     sync.RWMutex
	active int
	// The fields below are owned by the goroutine that bootstraps and
	// follows the store. w is the slot written (the active one, or the
	// rebuild's); epoch is the active slot's epoch; next is w's next
	// offset to read of each partition.
	w     int
	epoch uint64
	next  []int64
	batch store.Batch
}

func globalPosKey(p int32) []byte {
	return binary.BigEndian.AppendUint32([]byte{globalPos}, uint32(p))
}

// get returns the value of key, using buf (which it returns, grown) for
// the store key.
func (g *globalStore) get(buf, key []byte) ([]byte, bool, []byte, error) {
	buf = append(append(buf[:0], globalData), key...)
	g.mu.RLock()
	v, ok, err := g.slots[g.active].Get(buf)
	g.mu.RUnlock()
	return v, ok, buf, err
}

// rangeData returns a cursor over the data keys in [start, end) (nil:
// unbounded), with the layout's prefix removed from the keys.
func (g *globalStore) rangeData(start, end []byte) store.Cursor {
	s := append([]byte{globalData}, start...)
	e := []byte{globalData + 1}
	if end != nil {
		e = append([]byte{globalData}, end...)
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	return dataCursor{g.slots[g.active].Range(s, e)} // a snapshot: valid after a swap
}

// st returns the slot the global goroutine writes.
func (g *globalStore) st() store.Store { return g.slots[g.w] }

// readEpoch returns the epoch of slot i.
func (g *globalStore) readEpoch(i int) (uint64, error) {
	b, ok, err := g.slots[i].Get(globalEpochKey)
	if err != nil || !ok {
		return 0, err
	}
	if len(b) != 8 {
		return 0, fmt.Errorf("global store %s: epoch of %d bytes", g.name, len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

// writeEpoch records epoch in the slot being written.
func (g *globalStore) writeEpoch(epoch uint64) error {
	g.batch.Reset()
	g.batch.Put(globalEpochKey, binary.BigEndian.AppendUint64(nil, epoch))
	return g.st().Apply(&g.batch)
}

// dataCursor strips the data prefix from a cursor's keys.
type dataCursor struct{ store.Cursor }

func (c dataCursor) Key() []byte { return c.Cursor.Key()[1:] }

func (c dataCursor) All() iter.Seq2[[]byte, []byte] {
	return func(yield func([]byte, []byte) bool) {
		for c.Next() {
			if !yield(c.Key(), c.Value()) {
				return
			}
		}
	}
}

// globalKV is a task's reader of a global store (topology.GlobalKV).
type globalKV struct {
	g   *globalStore
	t   *task // the reading task
	buf []byte
}

func (r *globalKV) Get(key []byte) ([]byte, bool, error) {
	v, ok, buf, err := r.g.get(r.buf, key)
	r.buf = buf
	if err != nil {
		r.t.noteCorrupt(r.g.name, err)
		return nil, false, fmt.Errorf("global store %s: %w", r.g.name, err)
	}
	return v, ok, nil
}

// globals runs an app's global stores: bootstrap before the tasks start,
// then a goroutine that follows their topics.
type globals struct {
	a      *App
	stores []*globalStore
	byTP   map[broker.TopicPartition]*globalStore
	reqs   []broker.FetchRequest
	// rd reads the stores' topics (nil until openGlobals created it).
	rd *reader
	// touched and key are apply's buffers.
	touched []int32
	key     []byte
}

// openGlobals opens the global stores in a.db and brings each up to the
// end of its topic, as of now. topics are the partition counts of the
// existing topics.
func (a *App) openGlobals(ctx context.Context, topics map[string]int32) (*globals, error) {
	g := &globals{a: a, byTP: map[broker.TopicPartition]*globalStore{}}
	rd, err := newReader(a.b, a.cfg.FetchMaxRecords)
	if err != nil {
		return g, fmt.Errorf("global stores: consumer: %w", err)
	}
	g.rd = rd
	for _, gp := range a.plan.globals {
		gs := &globalStore{name: gp.name, topic: gp.topic, next: make([]int64, topics[gp.topic])}
		for i := range gs.slots {
			st, err := a.db.Store(gp.name, int32(i))
			if err != nil {
				return g, fmt.Errorf("open global store %s: %w", gp.name, err)
			}
			gs.slots[i] = st
		}
		g.stores = append(g.stores, gs)
		if err := gs.pickSlot(); err != nil {
			return g, err
		}
		for p := range gs.next {
			tp := broker.TopicPartition{Topic: gs.topic, Partition: int32(p)}
			g.byTP[tp] = gs
			g.reqs = append(g.reqs, broker.FetchRequest{Topic: tp.Topic, Partition: tp.Partition})
		}
		if err := g.bootstrap(ctx, gs); err != nil {
			return g, err
		}
	}
	return g, nil
}

// pickSlot makes the slot with the larger epoch active (slot 0 on a tie)
// and drops the other, which may hold a rebuild a stop interrupted.
func (g *globalStore) pickSlot() error {
	var epochs [2]uint64
	for i := range g.slots {
		e, err := g.readEpoch(i)
		if err != nil {
			return fmt.Errorf("global store %s: read epoch: %w", g.name, err)
		}
		epochs[i] = e
	}
	g.active = 0
	if epochs[1] > epochs[0] {
		g.active = 1
	}
	g.w, g.epoch = g.active, epochs[g.active]
	if err := g.slots[1-g.active].Drop(); err != nil {
		return fmt.Errorf("global store %s: drop: %w", g.name, err)
	}
	return nil
}

// bootstrap catches gs up with every partition of its topic: from the
// positions it recorded, or from the beginning when it has none or one
// does not fit its partition (the topic was recreated, or records were
// deleted), in which case the store is dropped and rebuilt. It writes
// the slot gs.w: the active one, before tasks and queries read it, or a
// rebuild's (see rebuild).
func (g *globals) bootstrap(ctx context.Context, gs *globalStore) error {
	log := g.a.log.With(slog.String("store", gs.name), slog.String("topic", gs.topic))
	latest := make([]int64, len(gs.next))
	earliest := make([]int64, len(gs.next))
	// Without any position the store holds nothing of ours (data and
	// positions are written together), but may hold data of an older
	// store of the same name: start from an empty store.
	rebuild, anyPos := false, false
	for p := range gs.next {
		offs, err := g.a.b.ListOffsets(ctx, gs.topic, int32(p))
		if err != nil {
			return fmt.Errorf("global store %s: list offsets of partition %d: %w", gs.name, p, err)
		}
		latest[p], earliest[p] = offs.Latest, offs.Earliest
		gs.next[p] = offs.Earliest
		b, ok, err := gs.st().Get(globalPosKey(int32(p)))
		if err != nil {
			return fmt.Errorf("global store %s: read position of partition %d: %w", gs.name, p, err)
		}
		if !ok {
			continue
		}
		anyPos = true
		next := int64(-1)
		if len(b) == 8 {
			next = int64(binary.BigEndian.Uint64(b))
		}
		if next > offs.Latest || next < offs.Earliest {
			log.Warn("local state does not match the topic: rebuilding it", slog.Int("partition", p),
				slog.Int64("offset", next), slog.Int64("earliest", offs.Earliest), slog.Int64("latest", offs.Latest))
			rebuild = true
			continue
		}
		gs.next[p] = next
	}
	if rebuild || !anyPos {
		if err := gs.st().Drop(); err != nil {
			return fmt.Errorf("global store %s: drop: %w", gs.name, err)
		}
		if gs.w == gs.active && gs.epoch > 0 {
			// Keep the slot's epoch (see pickSlot).
			if err := gs.writeEpoch(gs.epoch); err != nil {
				return fmt.Errorf("global store %s: write epoch: %w", gs.name, err)
			}
		}
		copy(gs.next, earliest)
	}
	hook := g.a.cfg.OnRestore
	for p := range gs.next {
		total := latest[p] - gs.next[p]
		if total <= 0 {
			continue
		}
		log.Info("bootstrapping global store", slog.Int("partition", p), slog.Int64("offset", gs.next[p]), slog.Int64("latest", latest[p]))
		start := time.Now()
		var restored int64
		req := []broker.FetchRequest{{Topic: gs.topic, Partition: int32(p)}}
		for gs.next[p] < latest[p] {
			req[0].Offset = gs.next[p]
			polled, err := g.fetch(ctx, req, g.a.cfg.FetchMaxWait)
			if err != nil {
				return fmt.Errorf("global store %s: bootstrap partition %d: %w", gs.name, p, err)
			}
			if err := g.apply(polled.Records); err != nil {
				return err
			}
			restored += int64(len(polled.Records))
			if g.atEnds(polled) {
				break // the rest, if any, was compacted away
			}
			if hook != nil && len(polled.Records) > 0 && gs.next[p] < latest[p] {
				hook(RestoreProgress{Store: gs.name, Partition: int32(p), Restored: restored, Total: total})
			}
		}
		if hook != nil {
			hook(RestoreProgress{Store: gs.name, Partition: int32(p), Restored: restored, Total: total, Done: true})
		}
		log.Info("bootstrapped global store", slog.Int("partition", p), slog.Int64("restored", restored),
			slog.Duration("took", time.Since(start)))
	}
	return nil
}

// fetch fetches reqs, waiting up to wait for records, and retries
// retryable errors until ctx ends.
func (g *globals) fetch(ctx context.Context, reqs []broker.FetchRequest, wait time.Duration) (broker.Polled, error) {
	polled, err := g.rd.fetchRetrying(ctx, reqs, wait, g.a.log, "global store fetch failed, retrying")
	if err != nil {
		return polled, fmt.Errorf("fetch: %w", err)
	}
	return polled, nil
}

// atEnds moves the position of every partition polled read to its end
// there (offsets up to it hold no more records), and reports whether
// there was any such partition.
func (g *globals) atEnds(polled broker.Polled) bool {
	for tp, end := range polled.Ends {
		if gs := g.byTP[tp]; gs != nil && end > gs.next[tp.Partition] {
			gs.next[tp.Partition] = end
		}
	}
	return len(polled.Ends) > 0
}

// apply writes fetched records to their stores, one batch per store with
// the new positions of the partitions they came from. Records without key
// are skipped (and their offsets passed).
func (g *globals) apply(recs []broker.Record) error {
	for len(recs) > 0 {
		gs := g.byTP[broker.TopicPartition{Topic: recs[0].Topic, Partition: recs[0].Partition}]
		if gs == nil {
			return fmt.Errorf("global stores: fetch returned a record of unrequested partition %s/%d", recs[0].Topic, recs[0].Partition)
		}
		gs.batch.Reset()
		g.touched = g.touched[:0]
		n := 0
		for ; n < len(recs) && recs[n].Topic == gs.topic; n++ {
			r := &recs[n]
			if r.Key != nil {
				g.key = append(append(g.key[:0], globalData), r.Key...)
				if r.Value == nil {
					gs.batch.Delete(g.key)
				} else {
					gs.batch.Put(g.key, r.Value)
				}
			}
			if next := r.Offset + 1; next > gs.next[r.Partition] {
				gs.next[r.Partition] = next
				if !slices.Contains(g.touched, r.Partition) {
					g.touched = append(g.touched, r.Partition)
				}
			}
		}
		for _, p := range g.touched {
			g.key = binary.BigEndian.AppendUint64(g.key[:0], uint64(gs.next[p]))
			gs.batch.Put(globalPosKey(p), g.key)
		}
		if err := gs.st().Apply(&gs.batch); err != nil {
			return fmt.Errorf("global store %s: apply: %w", gs.name, err)
		}
		recs = recs[n:]
	}
	return nil
}

// follow keeps the global stores up to date until ctx ends. It returns
// only fatal errors (nil when ctx ends).
func (g *globals) follow(ctx context.Context) error {
	for ctx.Err() == nil {
		if _, err := g.poll(ctx, g.a.cfg.FetchMaxWait); err != nil {
			return err
		}
	}
	return nil
}

// rebuild rebuilds gs from the beginning of its topic into its other
// slot and, once caught up, makes that slot active: readers see the
// complete old store until the swap, then the complete new one. If ctx
// ends first or the rebuild fails, the old slot stays active and is
// written again from its positions (the partial slot is dropped by the
// next rebuild or start): a later poll, such as the Stepper's next
// CatchUpGlobals with a ctx of its own, finds the position out of range
// again and starts over, rather than writing a slot no reader sees.
func (g *globals) rebuild(ctx context.Context, gs *globalStore) error {
	active := slices.Clone(gs.next)
	gs.w = 1 - gs.active
	defer func() {
		if gs.w != gs.active { // not swapped
			gs.w = gs.active
			copy(gs.next, active)
		}
	}()
	if err := gs.st().Drop(); err != nil {
		return fmt.Errorf("global store %s: drop: %w", gs.name, err)
	}
	clear(gs.next)
	if err := g.bootstrap(ctx, gs); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := gs.writeEpoch(gs.epoch + 1); err != nil {
		return fmt.Errorf("global store %s: write epoch: %w", gs.name, err)
	}
	old := gs.active
	gs.mu.Lock()
	gs.active = gs.w
	gs.mu.Unlock()
	gs.epoch++
	if err := gs.slots[old].Drop(); err != nil {
		return fmt.Errorf("global store %s: drop the replaced store: %w", gs.name, err)
	}
	return nil
}

// poll fetches the records after the stores' positions, waiting up to
// wait for some, and applies them. It returns whether the stores moved
// (records applied, or a store rebuilt), and only fatal errors (nil when
// ctx ends).
func (g *globals) poll(ctx context.Context, wait time.Duration) (moved bool, err error) {
	for i := range g.reqs {
		r := &g.reqs[i]
		r.Offset = g.byTP[broker.TopicPartition{Topic: r.Topic, Partition: r.Partition}].next[r.Partition]
	}
	polled, err := g.fetch(ctx, g.reqs, wait)
	if err != nil {
		if ctx.Err() != nil {
			return false, nil
		}
		var oor *broker.OffsetOutOfRangeError
		if errors.As(err, &oor) {
			// Records were deleted under our position, or the topic
			// was recreated: rebuild the store from the beginning.
			gs := g.byTP[broker.TopicPartition{Topic: oor.Topic, Partition: oor.Partition}]
			if gs != nil {
				g.a.log.Warn("global store position out of range: rebuilding it; readers see the store as it is until then",
					slog.String("store", gs.name), slog.String("topic", oor.Topic),
					slog.Int("partition", int(oor.Partition)), slog.Int64("offset", oor.Offset))
				if err := g.rebuild(ctx, gs); err != nil {
					if ctx.Err() != nil {
						return false, nil
					}
					return false, err
				}
				return true, nil
			}
		}
		return false, err
	}
	if err := g.apply(polled.Records); err != nil {
		return false, err
	}
	g.atEnds(polled)
	return len(polled.Records) > 0, nil
}

// catchUp brings the global stores up to the end of their topics, as of
// now: it reads until every partition is at the end it had when catchUp
// started, or ctx ends.
func (g *globals) catchUp(ctx context.Context) error {
	type target struct {
		gs  *globalStore
		p   int32
		end int64
	}
	var targets []target
	for _, gs := range g.stores {
		for p := range gs.next {
			offs, err := g.a.b.ListOffsets(ctx, gs.topic, int32(p))
			if err != nil {
				return fmt.Errorf("global store %s: list offsets of partition %d: %w", gs.name, p, err)
			}
			targets = append(targets, target{gs, int32(p), offs.Latest})
		}
	}
	for {
		behind := false
		for _, t := range targets {
			behind = behind || t.gs.next[t.p] < t.end
		}
		if !behind || ctx.Err() != nil {
			return nil
		}
		if _, err := g.poll(ctx, g.a.cfg.FetchMaxWait); err != nil {
			return err
		}
	}
}

// close closes the global stores.
func (g *globals) close() error {
	var errs []error
	if g.rd != nil {
		errs = append(errs, g.rd.close())
	}
	for _, gs := range g.stores {
		for _, st := range gs.slots {
			if st != nil {
				errs = append(errs, st.Close())
			}
		}
	}
	return errors.Join(errs...)
}
