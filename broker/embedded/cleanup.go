package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/logfmt"
)

// errTopicGone is the outcome of a cleanup edit of a topic deleted (and
// possibly recreated) since the edit was computed; the edit is dropped.
var errTopicGone = errors.New("embedded: topic deleted during cleanup")

// cleanupEdit is a retention or compaction change to one partition,
// computed from a snapshot below the partition's next offset and applied by
// the writer, so concurrent appends (always at or above that offset) are
// never touched.
type cleanupEdit struct {
	p            *partition
	rangeStart   []byte // DeleteRange [rangeStart, rangeEnd) when non-nil
	rangeEnd     []byte
	deletes      [][]byte
	sets         []keyValue
	removedBytes int64 // how much smaller the partition's batches get
	logStart     int64 // new log start offset
}

type keyValue struct{ key, value []byte }

// stageCleanup stages e into the writer's batch.
func (w *writer) stageCleanup(e *cleanupEdit) error {
	if w.b.mu.topics[e.p.t.name] != e.p.t {
		return errTopicGone
	}
	need := 0
	for _, kv := range e.sets {
		need += len(kv.value) + (len(kv.value)/w.b.cfg.chunkLen+2)*chunkOverhead // chunks and stub
	}
	w.ensureBatch(need)
	var err error
	if e.rangeStart != nil {
		// The batches' chunks go with them (see chunks.go).
		err = errors.Join(err, w.batch.DeleteRange(e.rangeStart, e.rangeEnd, nil),
			w.batch.DeleteRange(chunkBound(e.rangeStart), chunkBound(e.rangeEnd), nil))
	}
	for _, k := range e.deletes {
		lo, hi := chunkSpan(k)
		err = errors.Join(err, w.batch.Delete(k, nil), w.batch.DeleteRange(lo, hi, nil))
	}
	for _, kv := range e.sets {
		err = errors.Join(err, w.stageBatchBytes(kv.key, kv.value))
	}
	if err != nil {
		w.failGroup(err)
		return err
	}
	st := w.pending(e.p)
	st.bytes = max(0, st.bytes-e.removedBytes)
	st.logStart = max(st.logStart, min(e.logStart, st.next))
	return nil
}

// Cleanup runs retention (topics with broker.CleanupDelete) and compaction
// (broker.CleanupCompact), or both, retention first
// (broker.CleanupCompactDelete), over every partition now, as the background
// cleanup does every WithCleanupInterval. It returns the errors of all
// partitions joined; ctx ending or Close stops it early.
//
// Retention deletes whole stored batches (the records of one Produce or
// Commit call to one partition), oldest first: while a batch's newest
// timestamp is older than now minus RetentionTime, or while the
// partition's stored bytes exceed RetentionBytes. Compaction keeps, per key,
// only the record with the highest offset, and drops that record too when it
// is a tombstone (nil Value) whose timestamp is older than now minus
// DeleteRetention. Records with a nil key are kept. Offsets never change;
// the gaps are skipped by Fetch. Either way the log start offset (Earliest)
// advances to the first record still stored, or to the latest offset when
// none is; offsets are never reused.
func (b *Broker) Cleanup(ctx context.Context) error {
	return b.cleanup(ctx, true)
}

// cleanup runs retention and compaction. Unless force is set, a partition
// is compacted only when it is dirty enough: new data since its last
// compaction is at least half of what that compaction kept, or a kept
// tombstone has expired since (Kafka's min.cleanable.dirty.ratio idea), so
// that the background task does not rescan large compacted partitions
// every interval.
func (b *Broker) cleanup(ctx context.Context, force bool) error {
	if err := b.enter(); err != nil {
		return err
	}
	defer b.leave()
	b.cleanupMu.Lock()
	defer b.cleanupMu.Unlock()
	b.m.cleanupRuns.Add(1)
	b.mu.RLock()
	topics := make([]*topic, 0, len(b.mu.topics))
	for _, t := range b.mu.topics {
		topics = append(topics, t)
	}
	b.mu.RUnlock()
	now := b.cfg.clock()
	var errs []error
	for _, t := range topics {
		for _, p := range t.parts {
			if err := ctx.Err(); err != nil {
				return errors.Join(append(errs, err)...)
			}
			select {
			case <-b.closing:
				return errors.Join(append(errs, broker.ErrClosed)...)
			default:
			}
			var err error
			switch t.cfg.Cleanup {
			case broker.CleanupDelete:
				err = b.retain(ctx, p, now)
			case broker.CleanupCompact:
				err = b.compact(ctx, p, now, force)
			case broker.CleanupCompactDelete:
				// Retention first, so that compaction does not rewrite
				// batches retention is about to delete.
				if err = b.retain(ctx, p, now); err == nil {
					if st, _, _ := p.snapshot(); p.compactedBytes > st.bytes {
						p.compactedBytes = st.bytes
					}
					err = b.compact(ctx, p, now, force)
				}
			}
			if err != nil && !errors.Is(err, errTopicGone) {
				errs = append(errs, &broker.TopicError{Topic: t.name, Partition: p.num, Err: fmt.Errorf("cleanup: %w", err)})
			}
		}
	}
	return errors.Join(errs...)
}

// cleanupLoop runs Cleanup every cleanup interval until Close.
func (b *Broker) cleanupLoop() {
	defer b.bg.Done()
	// Close cancels a run in progress, even inside a large partition.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.bg.Add(1)
	go func() {
		defer b.bg.Done()
		<-b.closing
		cancel()
	}()
	tick := time.NewTicker(b.cfg.cleanupInterval)
	defer tick.Stop()
	for {
		select {
		case <-b.closing:
			return
		case <-tick.C:
		}
		if err := b.cleanup(ctx, false); err != nil && !errors.Is(err, broker.ErrClosed) && ctx.Err() == nil {
			b.log.Error("embedded: cleanup", slog.Any("error", err))
		}
	}
}

// partitionIter returns an iterator over the stored batches of p below
// offset next.
func (b *Broker) partitionIter(p *partition, next int64) (*pebble.Iterator, error) {
	it, err := b.db.NewIter(&pebble.IterOptions{
		LowerBound: recordKey(nil, p.t.id, p.num, 0),
		UpperBound: recordKey(nil, p.t.id, p.num, next),
	})
	if err != nil {
		return nil, wrapRead("read records", err)
	}
	return it, nil
}

// retain applies time and size retention to partition p.
func (b *Broker) retain(ctx context.Context, p *partition, now time.Time) error {
	cfg := p.t.cfg
	if cfg.RetentionTime < 0 && cfg.RetentionBytes <= 0 {
		return nil
	}
	st, _, _ := p.snapshot()
	if st.bytes == 0 {
		return nil
	}
	cutoff := int64(0)
	if cfg.RetentionTime > 0 {
		cutoff = now.Add(-cfg.RetentionTime).UnixMilli()
	}
	it, err := b.partitionIter(p, st.next)
	if err != nil {
		return err
	}
	defer it.Close()
	remaining := st.bytes
	var removed int64
	keep := st.next // first offset kept
	for valid := it.First(); valid; valid = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return wrapRead("read records", err)
		}
		off, _ := recordKeyOffset(it.Key())
		h, n, err := batchInfo(v)
		if err != nil {
			return fmt.Errorf("batch at offset %d: %w", off, err)
		}
		expired := cfg.RetentionTime > 0 && h.MaxTimestamp < cutoff
		oversize := cfg.RetentionBytes > 0 && remaining > cfg.RetentionBytes
		if !expired && !oversize {
			keep = off
			break
		}
		size := int64(n)
		removed += size
		remaining -= size
	}
	if err := it.Error(); err != nil {
		return wrapRead("read records", err)
	}
	if removed == 0 {
		return nil
	}
	e := &cleanupEdit{
		p:            p,
		rangeStart:   recordKey(nil, p.t.id, p.num, 0),
		rangeEnd:     recordKey(nil, p.t.id, p.num, keep),
		removedBytes: removed,
		logStart:     keep,
	}
	b.log.Debug("embedded: retention", "topic", p.t.name, "partition", p.num, "offset", keep, "bytes", removed)
	if err := b.submitEntered(ctx, &writeOp{kind: opCleanup, edit: e}); err != nil {
		return err
	}
	b.m.bytesRemoved.Add(uint64(e.removedBytes))
	return nil
}

// compact compacts partition p.
func (b *Broker) compact(ctx context.Context, p *partition, now time.Time, force bool) error {
	st, _, _ := p.snapshot()
	tombstoneDue := p.tombstoneDue != 0 && now.UnixMilli() >= p.tombstoneDue
	switch {
	case st.bytes == 0:
		return nil
	case p.compactedNext == st.next && !tombstoneDue:
		return nil // nothing new
	case !force && p.compactedNext >= 0 && !tombstoneDue && st.bytes-p.compactedBytes < p.compactedBytes/2:
		return nil // not dirty enough yet
	}
	cutoff := now.Add(-p.t.cfg.DeleteRetention).UnixMilli()
	it, err := b.partitionIter(p, st.next)
	if err != nil {
		return err
	}
	defer it.Close()
	chunks := chunkReader{src: it}
	defer chunks.close()

	// Pass 1: the newest offset of every key.
	newest := make(map[string]int64)
	var recs []broker.Record
	for n, valid := 0, it.First(); valid; n, valid = n+1, it.Next() {
		if n%256 == 255 && ctx.Err() != nil {
			return ctx.Err()
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return wrapRead("read records", err)
		}
		off, _ := recordKeyOffset(it.Key())
		if v, err = chunks.view(p, off, v); err != nil {
			return fmt.Errorf("batch at offset %d: %w", off, err)
		}
		if recs, _, err = logfmt.Decode(recs[:0], v); err != nil {
			return fmt.Errorf("batch at offset %d: %w", off, err)
		}
		for i := range recs {
			if recs[i].Key != nil {
				newest[string(recs[i].Key)] = recs[i].Offset
			}
		}
	}
	if err := it.Error(); err != nil {
		return wrapRead("read records", err)
	}

	// Pass 2: rewrite the batches that lose records.
	e := &cleanupEdit{p: p, logStart: st.next}
	var tombstoneDueMs int64
	first := true
	for n, valid := 0, it.First(); valid; n, valid = n+1, it.Next() {
		if n%256 == 255 && ctx.Err() != nil {
			return ctx.Err()
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return wrapRead("read records", err)
		}
		off, _ := recordKeyOffset(it.Key())
		if v, err = chunks.view(p, off, v); err != nil {
			return fmt.Errorf("batch at offset %d: %w", off, err)
		}
		if recs, _, err = logfmt.Decode(recs[:0], v); err != nil {
			return fmt.Errorf("batch at offset %d: %w", off, err)
		}
		kept := recs[:0]
		for _, rec := range recs {
			if rec.Key != nil {
				if newest[string(rec.Key)] != rec.Offset {
					continue
				}
				if rec.Value == nil {
					if rec.Timestamp.UnixMilli() < cutoff {
						continue
					}
					if due := rec.Timestamp.UnixMilli() + p.t.cfg.DeleteRetention.Milliseconds(); tombstoneDueMs == 0 || due < tombstoneDueMs {
						tombstoneDueMs = due
					}
				}
			}
			kept = append(kept, rec)
		}
		if len(kept) > 0 && first {
			e.logStart = kept[0].Offset
			first = false
		}
		switch {
		case len(kept) == len(recs):
			continue
		case len(kept) == 0:
			e.deletes = append(e.deletes, recordKey(nil, p.t.id, p.num, off)) // and its chunks
			e.removedBytes += int64(len(v))
		default:
			nv, err := logfmt.AppendBatch(nil, off, kept)
			if err != nil {
				return fmt.Errorf("rewrite batch at offset %d: %w", off, err)
			}
			e.sets = append(e.sets, keyValue{recordKey(nil, p.t.id, p.num, off), nv})
			e.removedBytes += int64(len(v) - len(nv))
		}
	}
	if err := it.Error(); err != nil {
		return wrapRead("read records", err)
	}
	if len(e.deletes) > 0 || len(e.sets) > 0 || e.logStart > st.logStart {
		b.log.Debug("embedded: compaction", "topic", p.t.name, "partition", p.num,
			"rewritten", len(e.sets), "deleted", len(e.deletes), "offset", e.logStart)
		if err := b.submitEntered(ctx, &writeOp{kind: opCleanup, edit: e}); err != nil {
			return err
		}
		b.m.bytesRemoved.Add(uint64(e.removedBytes))
	}
	p.compactedNext = st.next
	p.compactedBytes = max(0, st.bytes-e.removedBytes)
	p.tombstoneDue = tombstoneDueMs
	return nil
}

// DeleteRecords deletes the records of a partition below offset before, as
// Kafka's DeleteRecords does; see broker.Broker. It raises the log start
// offset (Earliest) to before and deletes every stored batch that lies
// wholly below it, in one Pebble batch with the new log start, through the
// writer like retention: the log start is as durable as an append under
// the sync policy and never moves back. A batch that straddles before is
// kept whole; Fetch skips its records below the log start. The deleted
// bytes count in Metrics.BytesRemoved.
//
// Errors: before above the latest offset, or negative, gives a
// *broker.OffsetOutOfRangeError; a topic with the cleanup policy
// broker.CleanupCompact alone refuses it with an error matching
// broker.ErrInvalidConfig (Kafka's policy violation); unknown topics and
// partitions give errors matching broker.ErrUnknownTopic and
// broker.ErrUnknownPartition.
func (b *Broker) DeleteRecords(ctx context.Context, topic string, partition int32, before int64) error {
	if err := b.enter(); err != nil {
		return err
	}
	defer b.leave()
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := b.lookupPartition(topic, partition)
	if err != nil {
		return err
	}
	if p.t.cfg.Cleanup == broker.CleanupCompact {
		return &broker.TopicError{Topic: topic, Partition: partition,
			Err: fmt.Errorf("%w: cannot delete records of a topic with cleanup policy %q (it must include delete)", broker.ErrInvalidConfig, p.t.cfg.Cleanup)}
	}
	// Serialized with retention and compaction, whose edits are computed
	// from a snapshot too: two edits removing the same batch would count
	// its bytes twice.
	b.cleanupMu.Lock()
	defer b.cleanupMu.Unlock()
	st, _, deleted := p.snapshot()
	if deleted {
		return unknownTopic(topic)
	}
	if before < 0 || before > st.next {
		return &broker.OffsetOutOfRangeError{Topic: topic, Partition: partition, Offset: before,
			Offsets: broker.Offsets{Earliest: st.logStart, Latest: st.next}}
	}
	if before <= st.logStart {
		return nil
	}
	// The batches with a base offset below before; all but possibly the
	// last lie wholly below it.
	it, err := b.partitionIter(p, before)
	if err != nil {
		return err
	}
	defer it.Close()
	var removed, lastSize int64
	var lastKey []byte
	end := before // the batches in [0, end) go
	for valid := it.First(); valid; valid = it.Next() {
		lv := it.LazyValue()
		lastSize = int64(lv.Len())
		if lastSize == stubLen {
			// Maybe a chunked batch's stub: its size is the batch's.
			v, err := it.ValueAndErr()
			if err != nil {
				return wrapRead("read records", err)
			}
			if chunked(v) {
				off, _ := recordKeyOffset(it.Key())
				_, n, err := batchInfo(v)
				if err != nil {
					return batchError(p, off, err)
				}
				lastSize = int64(n)
			}
		}
		removed += lastSize
		lastKey = append(lastKey[:0], it.Key()...)
	}
	if err := it.Error(); err != nil {
		return wrapRead("read records", err)
	}
	// Read the last batch's header forward: Last would copy its value.
	if lastKey != nil && it.SeekGE(lastKey) {
		v, err := it.ValueAndErr()
		if err != nil {
			return wrapRead("read records", err)
		}
		off, _ := recordKeyOffset(it.Key())
		h, _, err := batchInfo(v)
		if err != nil {
			return batchError(p, off, err)
		}
		if h.LastOffset() >= before {
			end = off
			removed -= lastSize
		}
	}
	e := &cleanupEdit{p: p, removedBytes: removed, logStart: before}
	if removed > 0 {
		e.rangeStart, e.rangeEnd = recordKey(nil, p.t.id, p.num, 0), recordKey(nil, p.t.id, p.num, end)
	}
	b.log.Debug("embedded: delete records", "topic", topic, "partition", partition, "offset", before, "bytes", removed)
	if err := b.submitEntered(ctx, &writeOp{kind: opCleanup, edit: e}); err != nil {
		if errors.Is(err, errTopicGone) {
			return unknownTopic(topic)
		}
		return err
	}
	b.m.bytesRemoved.Add(uint64(removed))
	return nil
}
