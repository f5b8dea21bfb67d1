package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Huge values skip the batch. A chunked value written in an Apply's
// Pebble batch is held whole in the batch's buffer, then in Pebble's
// write-ahead log blocks and in a flushable batch until it is flushed: a
// 100 MiB value cost two or three times its size in memory there. The
// chunks of a value of ingestMin bytes or more are written, 1 MiB at a
// time, into an sstable that Pebble ingests before the Apply's batch
// commits (the file is synced and linked into the database, without a
// write-ahead log or memtable copy); the batch then holds the value's
// stub, its index entry and the deletion of the key's older chunks, as
// for other chunked values.
//
// An ingested sstable shadows what is older at once, while the stub comes
// only with the batch: the chunks of one key's values must not share
// keys, or a reader (or a crash) between the ingestion and the commit
// would pair the old stub with new chunks. So ingested chunks have
// versioned keys, and their stub (valChunkedV) names the version:
//
//	0x03 uvarint(id) body(key) 0x00 0x02 be64(epoch) be64(n) be32(i)
//
// where body(key) is appendEscaped without its terminator 0x00 0x01 (the
// unversioned chunks of valChunked stubs are body(key) 0x00 0x01 be32(i)).
// body(key) 0x00 0x02 sorts after every unversioned chunk key of key and
// before any chunk key of a key greater than key (whose body continues
// with 0x00 0xff or a byte from 0x01), so the chunks of every kind of the
// keys in [a, b) are still in [chunkBound(a), chunkBound(b)), and those of
// one key in [body 0x00 0x01, body 0x00 0x03) (keySpan).
//
// The epoch is the write chain's number of the batch that OpenPebble
// commits, synced, before any write: it grows from one open to the next,
// so a version is never used twice, not even after a crash lost batches
// that were not synced. n counts the ingestions of the process. The batch
// that commits a version deletes the key's chunks below it: unversioned
// ones, older versions, and the chunks of ingestions whose batch never
// committed (a crash between the two, or a failed Apply) if any. Such
// orphans are not looked for: they are deleted with the key's chunks by
// the next chunked value written to the key, by any write of the key
// that has a chunked value, by a range deletion over it while the store
// has chunked values, and by a Drop. After a crash the restore
// writes the same value again (the store's offset is behind the changelog
// records of a batch that did not commit); an Apply that fails after its
// ingestion deletes its chunks at once if it can.
//
// The first versioned stub upgrades the database's format marker to
// formatV3 in the batch that writes it: a formatV2 database that never
// held a value of ingestMin bytes keeps its format, and versions that
// do not know valChunkedV refuse a formatV3 database at open.

// ingestMin is the length from which a value's chunks are ingested
// (tests lower it: see export_test.go).
var ingestMin atomic.Int64

func init() { ingestMin.Store(16 << 20) }

const (
	valChunkedV = 0x02
	versionLen  = 16
	stubVLen    = stubLen + versionLen
	// ingestPrefix and ingestSuffix frame the names of the sstables
	// being written for ingestion, in the database's directory; Pebble
	// links an ingested one into the database under a name of its own,
	// and OpenPebble removes those a crash left.
	ingestPrefix = "duality-ingest-"
	ingestSuffix = ".sst.tmp"
)

// version is the version of ingested chunks: the epoch of the DB's open
// and the number of the ingestion in it.
type version [versionLen]byte

// nextVersion returns a version that d has never used (see above).
func (d *PebbleDB) nextVersion() version {
	var v version
	binary.BigEndian.PutUint64(v[:8], d.epoch)
	binary.BigEndian.PutUint64(v[8:], d.ingestions.Add(1))
	return v
}

// appendBody appends escaped(key) without its terminator.
func appendBody(dst, key []byte) []byte {
	dst = appendEscaped(dst, key)
	return dst[:len(dst)-2]
}

// keySpan returns the span of every chunk key of key's values, versioned
// or not.
func (s *pebbleStore) keySpan(key []byte) (lo, hi []byte) {
	lo = s.chunkBound(nil, key) // body 0x00 0x01
	hi = bytes.Clone(lo)
	hi[len(hi)-1] = 0x03
	return lo, hi
}

// versionPrefix appends the prefix of the chunk keys of key's value of
// version v.
func (s *pebbleStore) versionPrefix(dst, key []byte, v version) []byte {
	dst = appendBody(append(dst, s.chunkPrefix...), key)
	dst = append(dst, 0x00, 0x02)
	return append(dst, v[:]...)
}

// versionSpan returns the span of the chunk keys of key's value of
// version v.
func (s *pebbleStore) versionSpan(key []byte, v version) (lo, hi []byte) {
	lo = s.versionPrefix(nil, key, v)
	return lo, PrefixEnd(lo)
}

// appendStubV appends the stub of a value of size bytes in n chunks of
// version v.
func appendStubV(dst []byte, n uint32, size int, v version) []byte {
	dst = appendStub(dst, n, size)
	dst[len(dst)-stubLen] = valChunkedV
	return append(dst, v[:]...)
}

// ingestion is the ingested part of an Apply: the indexes of the batch's
// operations whose chunks were ingested, and their version.
type ingestion struct {
	ops map[int]bool
	ver version
}

// planIngest returns the indexes of the puts of b whose values are of
// ingestMin bytes or more, in key order; nil if none. A put is left to
// the batch when its key has other point writes in b or a range deletion
// before it covers it: those delete the key's chunks in the batch, which
// commits after the ingestion and would delete the ingested ones too.
// (The store's commits write each key once; the range deletions of
// windowed stores cover old keys.)
func planIngest(b *Batch) []int {
	lim := int(ingestMin.Load())
	if b.maxValue < lim {
		return nil
	}
	cand := map[string]int{} // key: index of its put
	for i := range b.ops {
		op := &b.ops[i]
		if op.kind == opPut && len(op.value(b.buf)) >= lim {
			cand[string(op.key(b.buf))] = i
		}
	}
	writes := map[string]int{} // key: its point writes
	for i := range b.ops {
		op := &b.ops[i]
		if op.kind == opDeleteRange {
			continue
		}
		if k := string(op.key(b.buf)); hasKey(cand, k) {
			writes[k]++
		}
	}
	var ops []int
	for k, i := range cand {
		if writes[k] == 1 && !rangeDeleted(b, i, k) {
			ops = append(ops, i)
		}
	}
	slices.SortFunc(ops, func(x, y int) int { return bytes.Compare(b.ops[x].key(b.buf), b.ops[y].key(b.buf)) })
	return ops
}

func hasKey(m map[string]int, k string) bool {
	_, ok := m[k]
	return ok
}

// rangeDeleted reports whether a range deletion among the first n
// operations of b covers key.
func rangeDeleted(b *Batch, n int, key string) bool {
	for i := range n {
		op := &b.ops[i]
		if op.kind == opDeleteRange && key >= string(op.key(b.buf)) && (op.endNil || key < string(op.value(b.buf))) {
			return true
		}
	}
	return false
}

// ingest writes the chunks of the values of b's operations ops (in key
// order) with a new version into an sstable and ingests it.
func (s *pebbleStore) ingest(b *Batch, ops []int) (*ingestion, error) {
	d := s.db
	total := 0
	for _, i := range ops {
		total += len(b.ops[i].value(b.buf))
	}
	if err := d.space.Admit(int64(total)); err != nil {
		return nil, err
	}
	fs := d.popts.FS
	path := fs.PathJoin(d.dir, fmt.Sprintf("%s%d%s", ingestPrefix, d.ingestFiles.Add(1), ingestSuffix))
	f, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	defer func() { _ = fs.Remove(path) }()
	sw := sstable.NewWriter(objstorageprovider.NewFileWritable(f), d.popts.MakeWriterOptions(0, d.db.TableFormat()))
	in := &ingestion{ops: make(map[int]bool, len(ops)), ver: d.nextVersion()}
	var key []byte
	for _, i := range ops {
		op := &b.ops[i]
		v := op.value(b.buf)
		key = s.versionPrefix(key[:0], op.key(b.buf), in.ver)
		base := len(key)
		for j := range numChunks(len(v)) {
			key = binary.BigEndian.AppendUint32(key[:base], uint32(j))
			// Set copies the chunk into the writer's block.
			if err = sw.Set(key, v[j*chunkSize:min(len(v), (j+1)*chunkSize)]); err != nil {
				break
			}
		}
		if err != nil {
			break
		}
		in.ops[i] = true
	}
	if err = errors.Join(err, sw.Close()); err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	if err := d.db.Ingest(context.Background(), []string{path}); err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	return in, nil
}

// dropIngested deletes the chunks that in ingested for an Apply of b
// that failed, in a batch of its own, if it can: else the next write of
// their keys deletes them (see above).
func (s *pebbleStore) dropIngested(b *Batch, in *ingestion) {
	pb := s.db.db.NewBatch()
	defer pb.Close()
	for i := range in.ops {
		lo, hi := s.versionSpan(b.ops[i].key(b.buf), in.ver)
		_ = pb.DeleteRange(lo, hi, nil)
	}
	if err := s.db.commit(pb, s.db.wo); err != nil {
		s.db.cfg.logger.Warn("store: cannot delete the chunks of a failed write; the next write of their keys will",
			"store", s.name, "partition", s.partition, "error", err)
	}
}

// putIngested sets the data key dk (the store's prefix and key) to the
// stub of v, whose chunks of version ver are ingested, and deletes key's
// older chunks.
func (c *chunkApply) putIngested(dk, key, v []byte, ver version) error {
	had, err := c.had(key)
	if err != nil {
		return err
	}
	if !had {
		c.delta++
	}
	c.state[string(key)] = true
	lo, _ := c.s.keySpan(key)
	if err := c.pb.DeleteRange(lo, c.s.versionPrefix(nil, key, ver), nil); err != nil {
		return err
	}
	c.scratch = c.s.indexKey(c.scratch[:0], key)
	if err := c.pb.Set(c.scratch, nil, nil); err != nil {
		return err
	}
	var stub [stubVLen]byte
	return c.pb.Set(dk, appendStubV(stub[:0], uint32(numChunks(len(v))), len(v), ver), nil)
}

// ingestedBatchSize is what the operations of b that in ingested take
// in the Pebble batch of s less what chunkedBatchSize and Batch.Size
// count for them.
func (s *pebbleStore) ingestedBatchSize(b *Batch, in *ingestion) int {
	const entry = 1 + 2*5
	n := 0
	for i := range in.ops {
		op := &b.ops[i]
		k, v := op.key(b.buf), op.value(b.buf)
		esc := len(s.chunkPrefix) + 2*len(k) + 2 + 4
		n -= len(v) + numChunks(len(v))*(entry+esc) + stubLen
		n += entry + 2*esc + versionLen + stubVLen
	}
	return n
}

// removeIngestFiles removes the sstables that a crash left being written
// for ingestion in dir.
func removeIngestFiles(fs vfs.FS, dir string) error {
	names, err := fs.List(dir)
	if err != nil {
		return nil // the directory does not exist yet: Pebble creates it
	}
	for _, n := range names {
		if strings.HasPrefix(n, ingestPrefix) && strings.HasSuffix(n, ingestSuffix) {
			if err := fs.Remove(fs.PathJoin(dir, n)); err != nil {
				return fmt.Errorf("remove %s: %w", n, err)
			}
		}
	}
	return nil
}
