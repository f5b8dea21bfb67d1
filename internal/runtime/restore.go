package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/store"
)

// RestoreProgress reports the restoration of one store partition from its
// changelog, or the bootstrap of a global store's partition, for the
// duality.OnRestore hook (duality.RestoreProgress is this type).
type RestoreProgress struct {
	// Store and Partition name the store partition.
	Store     string
	Partition int32
	// Restored is the number of changelog records applied so far; Total
	// is the number of offsets to read (an upper bound of the records:
	// compaction leaves gaps).
	Restored, Total int64
	// Done is true for the last report of the restoration.
	Done bool
}

// restoreLogInterval is the least time between two progress lines of one
// restoration.
const restoreLogInterval = 5 * time.Second

// openStores opens t's stores and brings each up to the end of its
// changelog before the task processes input.
func (w *worker) openStores(ctx context.Context, t *task) error {
	for _, sp := range t.sub.stores {
		st, err := w.app.db.Store(sp.name, t.id.Partition)
		if err != nil {
			return fmt.Errorf("open store %s: %w", sp.name, err)
		}
		noCache := w.app.cfg.CacheMaxBytes == 0
		s := &taskStore{w: w, t: t, name: sp.name, changelog: sp.changelog, st: st, noCache: noCache,
			ranged: w.keyOrder, recycle: !noCache && w.committed == nil, m: t.storeMetrics(sp.name)}
		t.stores = append(t.stores, s)
		w.app.copies.add(t.id, t.sub.stores)
		if err := w.restore(ctx, s); err != nil {
			t.noteCorrupt(s.name, err)
			return err
		}
		w.app.iq.open(s.name, t.id.Partition, st, &s.fence)
	}
	return nil
}

// restore catches s up with its changelog partition: from the store's
// offset, or from the beginning when the store has none or its offset
// does not fit the changelog (deleted or recreated). A standby replica
// of the task on this instance (see standby.go) kept the store's offset
// current, so that only the tail is read.
func (w *worker) restore(ctx context.Context, s *taskStore) error {
	p := s.t.id.Partition
	log := s.t.log.With(slog.String("store", s.name), slog.Int("partition", int(p)))
	next, offs, err := changelogStart(ctx, w.app.b, s.st, s.changelog, log)
	if err != nil {
		return fmt.Errorf("restore %s/%d: %w", s.name, p, err)
	}
	total := offs.Latest - next
	if total <= 0 {
		return nil
	}
	hook := w.app.cfg.OnRestore
	log.Info("restoring store", slog.Int64("offset", next), slog.Int64("latest", offs.Latest))
	sm := s.m
	sm.restored.Store(0)
	sm.restoreTotal.Store(total)
	sm.restoring.Store(true)
	defer sm.restoring.Store(false)
	start := time.Now()
	logged := start
	var restored int64
	rd := w.slot.restore
	defer rd.release()
	tp := broker.TopicPartition{Topic: s.changelog, Partition: p}
	req := []broker.FetchRequest{{Topic: s.changelog, Partition: p}}
	for next < offs.Latest {
		req[0].Offset = next
		polled, err := rd.fetchRetrying(ctx, req, w.app.cfg.FetchMaxWait, log, "restore fetch failed, retrying")
		if err != nil {
			return fmt.Errorf("restore %s/%d at offset %d: %w", s.name, p, next, err)
		}
		if recs := polled.Records; len(recs) > 0 {
			if err := applyChangelog(s.st, &s.batch, recs, recs[len(recs)-1].Offset); err != nil {
				return fmt.Errorf("restore %s/%d: %w", s.name, p, err)
			}
			restored += int64(len(recs))
			next = recs[len(recs)-1].Offset + 1
			sm.restored.Store(restored)
		}
		if _, ok := polled.Ends[tp]; ok || next >= offs.Latest {
			break // at the end (the rest, if any, was compacted away)
		}
		if hook != nil && len(polled.Records) > 0 {
			hook(RestoreProgress{Store: s.name, Partition: p, Restored: restored, Total: total})
		}
		if time.Since(logged) >= restoreLogInterval {
			logged = time.Now()
			log.Info("restoring store", slog.Int64("restored", restored), slog.Int64("total", total))
		}
	}
	if hook != nil {
		hook(RestoreProgress{Store: s.name, Partition: p, Restored: restored, Total: total, Done: true})
	}
	log.Info("restored store", slog.Int64("restored", restored), slog.Int64("total", total),
		slog.Duration("took", time.Since(start)))
	return nil
}

// changelogStart returns the offset from which st, a store partition
// logged to changelog (its partition is st's), catches up with it, and
// the changelog's offsets: the offset after the one st recorded, or the
// changelog's earliest offset when st recorded none, or when its offset
// does not fit the changelog (records deleted under it, or the topic
// recreated): st is then dropped, and the mismatch logged on log at Warn.
func changelogStart(ctx context.Context, b broker.Broker, st store.Store, changelog string, log *slog.Logger) (int64, broker.Offsets, error) {
	offs, err := b.ListOffsets(ctx, changelog, st.Partition())
	if err != nil {
		return 0, offs, fmt.Errorf("list offsets: %w", err)
	}
	off, ok, err := st.Offset()
	if err != nil {
		return 0, offs, err
	}
	if !ok {
		return offs.Earliest, offs, nil
	}
	if off+1 > offs.Latest || off+1 < offs.Earliest {
		log.Warn("local state does not match the changelog: rebuilding it",
			slog.Int64("offset", off), slog.Int64("earliest", offs.Earliest), slog.Int64("latest", offs.Latest))
		if err := st.Drop(); err != nil {
			return 0, offs, fmt.Errorf("drop: %w", err)
		}
		return offs.Earliest, offs, nil
	}
	return off + 1, offs, nil
}

// applyChangelog writes recs, changelog records of st's partition in
// offset order, to st in one batch (b, reset first) with the offset off
// (the last record's, or a later one up to which the changelog holds no
// other record): a record without value deletes its key.
func applyChangelog(st store.Store, b *store.Batch, recs []broker.Record, off int64) error {
	b.Reset()
	for i := range recs {
		r := &recs[i]
		if r.Value == nil {
			b.Delete(r.Key)
		} else {
			b.Put(r.Key, r.Value)
		}
	}
	b.SetOffset(off)
	return st.Apply(b)
}

// startRestore starts, or goes on with after a failure, the restoration
// of s, the replica run's copy of a store of a task that moved here
// (standby.go), positioned at next: to the changelog's end latest as
// listed now. It is reported as worker.restore reports its restorations,
// in the task's metrics too (StoreMetrics.Restoring, Restored and
// RestoreTotal) from now on.
func (r *standbyRun) startRestore(s *standbyStore, next, latest int64) {
	rs := s.rs
	rs.target = latest
	if rs.started.IsZero() {
		rs.started = time.Now()
		rs.logged = rs.started
		rs.log = r.a.log.With(slog.String("task", s.task.String()), slog.String("store", s.name), slog.Int("partition", int(s.tp.Partition)))
		rs.total = max(0, latest-next)
		if rs.total > 0 {
			rs.log.Info("restoring store", slog.Int64("offset", next), slog.Int64("latest", latest))
			rs.m.restored.Store(0)
			rs.m.restoreTotal.Store(rs.total)
		}
	}
	rs.done = false
	rs.m.restoring.Store(rs.total > 0)
	if next >= latest {
		r.finishRestore(s)
	}
}

// restoredSome records that n changelog records were applied to s, a
// copy that restores, and finishes its restoration once it reached its
// target or the changelog's end.
func (r *standbyRun) restoredSome(s *standbyStore, n int64) {
	rs := s.rs
	rs.restored += n
	if n > 0 {
		rs.m.restored.Store(rs.restored)
	}
	if s.next >= rs.target || s.atEnd {
		r.finishRestore(s)
		return
	}
	if n == 0 {
		return
	}
	if hook := r.a.cfg.OnRestore; hook != nil {
		hook(RestoreProgress{Store: s.name, Partition: s.tp.Partition, Restored: rs.restored, Total: rs.total})
	}
	if time.Since(rs.logged) >= restoreLogInterval {
		rs.logged = time.Now()
		rs.log.Info("restoring store", slog.Int64("restored", rs.restored), slog.Int64("total", rs.total))
	}
}

// finishRestore marks s's restoration done and reports it.
func (r *standbyRun) finishRestore(s *standbyStore) {
	rs := s.rs
	if rs.done {
		return
	}
	rs.done = true
	rs.m.restoring.Store(false)
	if rs.total <= 0 {
		return // it was up to date: not reported
	}
	if hook := r.a.cfg.OnRestore; hook != nil {
		hook(RestoreProgress{Store: s.name, Partition: s.tp.Partition, Restored: rs.restored, Total: rs.total, Done: true})
	}
	rs.log.Info("restored store", slog.Int64("restored", rs.restored), slog.Int64("total", rs.total),
		slog.Duration("took", time.Since(rs.started)))
}

// handOver closes the stores of the tasks whose restoration is done and
// hands each to the app's loop (standbyRun.restored). It returns false
// when ctx ended first.
func (r *standbyRun) handOver(ctx context.Context) bool {
	for i := 0; i < len(r.restoring); {
		rt := r.restoring[i]
		done := !slices.ContainsFunc(rt.stores, func(s *standbyStore) bool { return !s.positioned || !s.rs.done })
		if !done {
			i++
			continue
		}
		for _, s := range rt.stores {
			r.closeStore(s)
			delete(r.byTP, s.tp)
			r.gone = append(r.gone, s.tp)
		}
		r.stores = slices.DeleteFunc(r.stores, func(s *standbyStore) bool { return slices.Contains(rt.stores, s) })
		r.restoring = slices.Delete(r.restoring, i, i+1)
		select {
		case r.restored <- rt.t:
		case <-ctx.Done():
			return false
		}
	}
	return true
}
