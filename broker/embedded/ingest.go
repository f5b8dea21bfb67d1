package embedded

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/logfmt"
)

// Huge batches skip the memtable. A chunked batch written in the group's
// Pebble batch is held whole in that batch's buffer, then in Pebble's
// write-ahead log blocks (which its log writer keeps until the log
// rotates) and in a memtable or a flushable batch until it is flushed:
// one 100 MiB record cost two or three times its size there. A batch of
// ingestMin bytes or more has its chunks written, one at a time, into
// an sstable that Pebble ingests before the group commits: the file is
// synced and linked into the database, without a write-ahead log or
// memtable copy. The stub follows in the group's batch, as for other
// chunked batches, so readers see the chunks only once the group commits.
//
// The sstable also holds a pending marker, the chunk key of index
// pendingIndex, which the group's batch deletes with the stub. Chunks at
// or beyond a partition's next offset are therefore those of a batch
// whose group did not commit (the process died, or the group failed) if
// and only if the marker of their base offset is there: Open deletes them
// (see findOrphans) and reports any other chunk there as corruption, and
// a failed group deletes those it ingested (dropIngested).
const (
	ingestMin    = 16 << 20
	pendingIndex = 0xffffffff
	// ingestFile is the name of the sstable being written, in the data
	// directory; Pebble links it into the database under a name of its
	// own, and Open removes one that a crash left.
	ingestFile = "duality-ingest.sst.tmp"
)

// ingested is a batch whose chunks were ingested for the staged group.
type ingested struct {
	p    *partition
	base int64
}

// ingestChunked writes the records of w.recs, the batch at base offset
// base of p of size bytes, as chunks into an sstable with its pending
// marker, ingests it, and stages the stub and the marker's deletion in
// the group's batch.
func (w *writer) ingestChunked(p *partition, base int64, size int) (err error) {
	body, cl := size-logfmt.HeaderLen, w.b.cfg.chunkLen
	n := (body + cl - 1) / cl
	if err := w.b.space.Admit(int64(size)); err != nil {
		return err
	}
	fs := w.b.cfg.fs
	path := fs.PathJoin(w.b.dir, ingestFile)
	f, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("embedded: ingest: %w", err)
	}
	defer func() { _ = fs.Remove(path) }()
	sw := sstable.NewWriter(objstorageprovider.NewFileWritable(f), w.b.popts.MakeWriterOptions(0, w.b.db.TableFormat()))
	closed := false
	defer func() {
		if !closed {
			_ = sw.Close()
		}
	}()
	if cap(w.chunk) < cl {
		w.chunk = make([]byte, cl)
	}
	var filled []byte // the chunk last handed to WriteBatch
	i := 0
	put := func() error {
		if filled == nil {
			return nil
		}
		w.key = chunkKey(w.key[:0], p.t.id, p.num, base, uint32(i-1))
		return sw.Set(w.key, filled) // copied into the writer's block
	}
	next := func() ([]byte, error) {
		if err := put(); err != nil {
			return nil, err
		}
		if i >= n {
			return nil, fmt.Errorf("embedded: internal error: batch longer than its %d bytes", size)
		}
		filled = w.chunk[:min(cl, body-i*cl)]
		i++
		return filled, nil
	}
	h, got, err := logfmt.WriteBatch(base, w.recs, next)
	if err == nil {
		err = put()
	}
	if err == nil && (got != size || i != n) {
		err = fmt.Errorf("embedded: internal error: batch encoded to %d bytes in %d chunks, expected %d in %d", got, i, size, n)
	}
	marker := chunkKey(nil, p.t.id, p.num, base, pendingIndex)
	if err == nil {
		err = sw.Set(marker, nil)
	}
	closed = true
	if err = errors.Join(err, sw.Close()); err != nil {
		return fmt.Errorf("embedded: ingest: %w", err)
	}
	if err := w.ingest(path); err != nil {
		return err
	}
	w.ingested = append(w.ingested, ingested{p: p, base: base})
	if err := w.batch.Delete(marker, nil); err != nil {
		return err
	}
	w.key = recordKey(w.key[:0], p.t.id, p.num, base)
	var stub [stubLen]byte
	return w.batch.Set(w.key, appendStub(stub[:0], uint32(n), size, h[:]), nil)
}

// ingest ingests the sstable at path, turning a Pebble fatal error into
// an error.
func (w *writer) ingest(path string) (err error) {
	defer recoverFatal(&err)
	// A log rotation by the ingestion (to flush an overlapping memtable)
	// comes after every committed batch.
	w.b.applying.Store(w.seq + 1)
	if err := w.b.db.Ingest(context.Background(), []string{path}); err != nil {
		return fmt.Errorf("embedded: ingest: %w", diskFull(err))
	}
	return nil
}

// dropIngested deletes the chunks that the group being failed ingested,
// in a batch of their own, unless the broker failed (Open deletes them).
func (w *writer) dropIngested() {
	if len(w.ingested) == 0 {
		return
	}
	defer func() { clear(w.ingested); w.ingested = w.ingested[:0] }()
	if w.b.failed.Load() != nil {
		return
	}
	batch := w.b.db.NewBatch()
	defer batch.Close()
	for _, in := range w.ingested {
		lo, hi := chunkSpan(recordKey(nil, in.p.t.id, in.p.num, in.base))
		_ = batch.DeleteRange(lo, hi, nil)
	}
	seq := w.seq + 1
	_ = batch.Set(chainKey(seq), nil, nil)
	w.b.applying.Store(seq)
	if err := w.apply(batch, w.b.wo); err != nil {
		w.fail(err)
		return
	}
	w.seq = seq
}

// findOrphans checks the chunks of p at or beyond its next offset: each
// must belong to a batch whose pending marker is there (an ingested batch
// whose group did not commit), or it fails with an error matching
// broker.ErrCorrupt. It adds the span of those chunks to b.orphans, which
// startAcked deletes.
func (b *Broker) findOrphans(p *partition, next int64) error {
	lo := chunkBound(recordKey(nil, p.t.id, p.num, next))
	hi := partKey(nil, prefixChunks, p.t.id, p.num+1)
	it, err := b.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return wrapRead("check records", err)
	}
	defer it.Close()
	found := false
	for valid := it.First(); valid; {
		k := it.Key()
		if len(k) != chunkKeyLen {
			return fmt.Errorf("%w: chunk key %x", broker.ErrCorrupt, k)
		}
		off := int64(binary.BigEndian.Uint64(k[recordKeyLen-8:]))
		if !it.SeekGE(chunkKey(nil, p.t.id, p.num, off, pendingIndex)) || !equalKey(it.Key(), chunkKey(nil, p.t.id, p.num, off, pendingIndex)) {
			if err := it.Error(); err != nil {
				return wrapRead("check records", err)
			}
			return fmt.Errorf("%w: chunk of a batch at offset %d at or beyond the next offset %d", broker.ErrCorrupt, off, next)
		}
		found = true
		valid = it.Next()
	}
	if err := it.Error(); err != nil {
		return wrapRead("check records", err)
	}
	if found {
		b.log.Info("embedded: deleting the chunks of batches that were not committed", "topic", p.t.name, "partition", p.num, "offset", next)
		b.orphans = append(b.orphans, [2][]byte{lo, hi})
	}
	return nil
}

func equalKey(a, b []byte) bool { return string(a) == string(b) }
