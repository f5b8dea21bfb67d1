package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/duality-streams/duality/broker"
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
		s := &taskStore{w: w, t: t, name: sp.name, changelog: sp.changelog, st: st, noCache: w.app.cfg.CacheMaxBytes == 0,
			ranged: w.keyOrder}
		t.stores = append(t.stores, s)
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
// does not fit the changelog (deleted or recreated).
func (w *worker) restore(ctx context.Context, s *taskStore) error {
	p := s.t.id.Partition
	log := s.t.log.With(slog.String("store", s.name), slog.Int("partition", int(p)))
	offs, err := w.app.b.ListOffsets(ctx, s.changelog, p)
	if err != nil {
		return fmt.Errorf("restore %s/%d: list offsets: %w", s.name, p, err)
	}
	next := offs.Earliest
	off, ok, err := s.st.Offset()
	if err != nil {
		return fmt.Errorf("restore %s/%d: %w", s.name, p, err)
	}
	if ok {
		if off+1 > offs.Latest || off+1 < offs.Earliest {
			log.Warn("local state does not match the changelog: rebuilding it",
				slog.Int64("offset", off), slog.Int64("earliest", offs.Earliest), slog.Int64("latest", offs.Latest))
			if err := s.st.Drop(); err != nil {
				return fmt.Errorf("restore %s/%d: drop: %w", s.name, p, err)
			}
		} else {
			next = off + 1
		}
	}
	total := offs.Latest - next
	if total <= 0 {
		return nil
	}
	hook := w.app.cfg.OnRestore
	log.Info("restoring store", slog.Int64("offset", next), slog.Int64("latest", offs.Latest))
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
			s.batch.Reset()
			for i := range recs {
				r := &recs[i]
				if r.Value == nil {
					s.batch.Delete(r.Key)
				} else {
					s.batch.Put(r.Key, r.Value)
				}
			}
			last := recs[len(recs)-1].Offset
			s.batch.SetOffset(last)
			if err := s.st.Apply(&s.batch); err != nil {
				return fmt.Errorf("restore %s/%d: %w", s.name, p, err)
			}
			restored += int64(len(recs))
			next = last + 1
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
