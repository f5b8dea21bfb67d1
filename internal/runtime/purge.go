package runtime

import (
	"context"
	"log/slog"
	"time"

	"github.com/duality-streams/duality/broker"
)

// purgeRun is a purge of internal topics running in the background: one
// DeleteRecords per partition, up to its committed offset.
type purgeRun struct {
	parts  []*partState
	before []int64
	errs   []error
	done   chan struct{} // closed when every call has returned
}

// maybePurge starts a purge in the background when the purge interval has
// passed since the last one started and a partition the worker purges has
// a committed offset beyond what was purged. Only offsets of successful
// commits are purged (await records them), so no record a restart or
// another owner would read again is deleted. The purge runs with ctx, the
// generation's context; at most one is in flight, and its outcome is
// collected here or by awaitPurge.
func (w *worker) maybePurge(ctx context.Context) {
	every := w.app.cfg.RepartitionPurgeInterval
	if every <= 0 || len(w.purgeParts) == 0 {
		return
	}
	if r := w.purging; r != nil {
		select {
		case <-r.done:
			w.finishPurge(ctx, r)
		default:
			return
		}
	}
	if time.Since(w.lastPurge) < every {
		return
	}
	w.lastPurge = time.Now()
	r := &purgeRun{done: make(chan struct{})}
	for _, ps := range w.purgeParts {
		if ps.committed > ps.purged {
			r.parts = append(r.parts, ps)
			r.before = append(r.before, ps.committed)
		}
	}
	if len(r.parts) == 0 {
		return
	}
	r.errs = make([]error, len(r.parts))
	w.purging = r
	b := w.app.b
	tps := make([]broker.TopicPartition, len(r.parts))
	for i, ps := range r.parts {
		tps[i] = ps.tp
	}
	go func() {
		defer close(r.done)
		for i, tp := range tps {
			r.errs[i] = b.DeleteRecords(ctx, tp.Topic, tp.Partition, r.before[i])
		}
	}()
}

// finishPurge records the outcome of the finished purge r: purged offsets
// move on and count in the metrics; failures are logged at Warn (unless
// the generation is stopping) and retried at the next interval.
func (w *worker) finishPurge(ctx context.Context, r *purgeRun) {
	w.purging = nil
	for i, ps := range r.parts {
		err := r.errs[i]
		if err == nil {
			ps.purged = max(ps.purged, r.before[i])
			w.app.m.purges.Add(1)
			continue
		}
		if ctx.Err() != nil {
			continue
		}
		ps.task.log.Warn("purging an internal topic failed; retrying at the next interval",
			slog.String("topic", ps.tp.Topic), slog.Int("partition", int(ps.tp.Partition)),
			slog.Int64("offset", r.before[i]), slog.Any("error", err))
	}
}

// awaitPurge waits for the purge in flight, if any, and records its
// outcome. At the shutdown's deadline it leaves the purge running: a
// purge deletes only committed records, so abandoning it loses nothing.
func (w *worker) awaitPurge(ctx context.Context) {
	if r := w.purging; r != nil {
		select {
		case <-r.done:
			w.finishPurge(ctx, r)
		case <-w.app.shut.ctx.Done():
			w.purging = nil
		}
	}
}
