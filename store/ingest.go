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

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Huge values skip the batch. A chunked value written in an Apply's
// Pebble batch is held whole in the batch's buffer, then in Pebble's
// write-ahead log blocks and in a flushable batch until it is flushed: a
// 100 MiB value cost two or three times its size in memory there. The
// chunks of a value of ingestMin bytes or more are written, one at a
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
// versioned keys, and their stub (valChunkedV) names the version and the
// chunks' length:
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
// ones and older versions.
//
// An ingestion whose batch does not commit (the process dies between the
// two, or the Apply fails) must not leave its chunks behind: nothing
// names them, and a 100 MiB value would stay on disk for good. So before
// it writes the sstable an Apply commits, synced, an intent naming the
// version and the keys:
//
//	0x05 uvarint(id) version               uvarint(len(key)) key, ...
//
// The Apply's batch deletes the intent with the stubs; a failed Apply
// deletes the ingested chunks and the intent; and OpenPebble deletes the
// chunks of every intent it finds, then the intent (dropOrphans). The
// intent's batch also upgrades the database's format marker to formatV3,
// before anything of that format is on disk: a formatV2 database that
// never held a value of ingestMin bytes keeps its format, and versions
// that do not know valChunkedV refuse a formatV3 database at open.

// ingestMin is the length from which a value's chunks are ingested
// (tests lower it: see export_test.go).
var ingestMin atomic.Int64

func init() { ingestMin.Store(16 << 20) }

// ingestChunk is the length of the chunks of ingested values (tests
// change it: see export_test.go); each stub says the length of its
// chunks. Pebble's sstable writer puts each chunk in a block of its own
// and keeps its block buffers for reuse only up to 256 KiB (colblk's
// maxBlockRetainedSize, block.tempBufferMaxReusedSize): 1 MiB chunks
// left 1 MiB of garbage each, 100 MiB for a 100 MiB value, which the
// garbage collector lets pile up to the size of the live heap. 192 KiB
// and the block's keys stay under 256 KiB even compressed (Snappy's
// worst case is 32 + n + n/6 bytes: 224 KiB).
var ingestChunk atomic.Int64

func init() { ingestChunk.Store(ingestChunkSize) }

const (
	valChunkedV = 0x02
	versionLen  = 16
	stubVLen    = stubLen + 4 + versionLen
	// ingestChunkSize is the default of ingestChunk.
	ingestChunkSize = 192 << 10
	tagIntent       = 0x05
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
// version v, in the store whose chunk keys start with chunkPrefix.
func versionPrefix(dst, chunkPrefix, key []byte, v version) []byte {
	dst = appendBody(append(dst, chunkPrefix...), key)
	dst = append(dst, 0x00, 0x02)
	return append(dst, v[:]...)
}

// versionSpan returns the span of the chunk keys of key's value of
// version v, in the store whose chunk keys start with chunkPrefix.
func versionSpan(chunkPrefix, key []byte, v version) (lo, hi []byte) {
	lo = versionPrefix(nil, chunkPrefix, key, v)
	return lo, PrefixEnd(lo)
}

func (s *pebbleStore) versionSpan(key []byte, v version) (lo, hi []byte) {
	return versionSpan(s.chunkPrefix, key, v)
}

// intentKey returns the key of the intent of the ingestion of version v
// in the store of id.
func intentKey(id []byte, v version) []byte {
	return append(append([]byte{tagIntent}, id...), v[:]...)
}

// appendStubV appends the stub of a value of size bytes in n chunks of
// chunk bytes of version v.
func appendStubV(dst []byte, n uint32, size, chunk int, v version) []byte {
	dst = appendStub(dst, n, size)
	dst[len(dst)-stubLen] = valChunkedV
	dst = binary.BigEndian.AppendUint32(dst, uint32(chunk))
	return append(dst, v[:]...)
}

// afterIngest, when not nil, is called by an Apply that ingested chunks
// before it commits its batch; an error fails the Apply (tests set it:
// see export_test.go).
var afterIngest func() error

func afterIngested(in *ingestion) error {
	if in == nil || afterIngest == nil {
		return nil
	}
	return afterIngest()
}

// ingestion is the ingested part of an Apply: the indexes of the batch's
// operations whose chunks were ingested, their version and the length of
// their chunks.
type ingestion struct {
	ops   []int // in key order
	ver   version
	chunk int
}

func (in *ingestion) has(i int) bool { return slices.Contains(in.ops, i) }

// planIngest returns the indexes of the puts of b whose values are of
// ingestMin bytes or more, in key order; nil if none. A put is left to the
// batch when its key has other point writes in b or a range deletion
// before it covers it: those delete the key's chunks in the batch, which
// commits after the ingestion and would delete the ingested ones too.
// (The store's commits write each key once; the range deletions of
// windowed stores cover old keys.)
func planIngest(b *Batch) []int {
	// Only values of more than one chunk (chunked: Apply writes them
	// through a chunkApply).
	lim := max(int(ingestMin.Load()), chunkSize+1)
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

// ingest commits the intent of the ingestion of the values of b's
// operations ops, writes their chunks with a new version into an sstable
// and ingests it. If it fails, it leaves neither chunks nor intent
// behind, if it can (see dropIngested).
func (s *pebbleStore) ingest(b *Batch, ops []int) (*ingestion, error) {
	d := s.db
	total := 0
	for _, i := range ops {
		total += len(b.ops[i].value(b.buf))
	}
	if err := d.space.Admit(int64(total)); err != nil {
		return nil, err
	}
	in := &ingestion{ops: ops, ver: d.nextVersion(), chunk: int(ingestChunk.Load())}
	if err := s.commitIntent(b, in); err != nil {
		return nil, err
	}
	if err := s.writeIngest(b, in); err != nil {
		s.dropIngested(b, in)
		return nil, err
	}
	return in, nil
}

// commitIntent commits, synced, the intent of in (and the formatV3
// marker if the database is not of that format yet).
func (s *pebbleStore) commitIntent(b *Batch, in *ingestion) error {
	var keys []byte
	for _, i := range in.ops {
		k := b.ops[i].key(b.buf)
		keys = append(binary.AppendUvarint(keys, uint64(len(k))), k...)
	}
	pb := s.db.db.NewBatch()
	defer pb.Close()
	_ = pb.Set(intentKey(s.id(), in.ver), keys, nil)
	v3 := s.db.v3.Load()
	if !v3 {
		_ = pb.Set(formatKey, []byte(formatV3), nil)
	}
	if err := s.db.commit(pb, pebble.Sync); err != nil {
		return err
	}
	if !v3 {
		s.db.v3.Store(true)
	}
	return nil
}

// writeIngest writes the chunks of in into an sstable and ingests it.
func (s *pebbleStore) writeIngest(b *Batch, in *ingestion) (err error) {
	d := s.db
	fs := d.popts.FS
	path := fs.PathJoin(d.dir, fmt.Sprintf("%s%d%s", ingestPrefix, d.ingestFiles.Add(1), ingestSuffix))
	f, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	defer func() { _ = fs.Remove(path) }()
	sw := sstable.NewWriter(objstorageprovider.NewFileWritable(f), d.popts.MakeWriterOptions(0, d.db.TableFormat()))
	var key []byte
	for _, i := range in.ops {
		op := &b.ops[i]
		v := op.value(b.buf)
		key = versionPrefix(key[:0], s.chunkPrefix, op.key(b.buf), in.ver)
		base := len(key)
		for j := range numChunks(len(v), in.chunk) {
			key = binary.BigEndian.AppendUint32(key[:base], uint32(j))
			// Set copies the chunk into the writer's block.
			if err = sw.Set(key, v[j*in.chunk:min(len(v), (j+1)*in.chunk)]); err != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	// Close syncs the file (Pebble requires ingested files synced).
	if err = errors.Join(err, sw.Close()); err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	if err := d.db.Ingest(context.Background(), []string{path}); err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	return nil
}

// dropIngested deletes the chunks that in ingested (or may have) for an
// Apply of b that failed, and its intent, in a batch of its own, if it
// can: else the next OpenPebble does (dropOrphans).
func (s *pebbleStore) dropIngested(b *Batch, in *ingestion) {
	err := s.db.space.AdmitSmall()
	if err == nil {
		pb := s.db.db.NewBatch()
		for _, i := range in.ops {
			lo, hi := s.versionSpan(b.ops[i].key(b.buf), in.ver)
			_ = pb.DeleteRange(lo, hi, nil)
		}
		_ = pb.Delete(intentKey(s.id(), in.ver), nil)
		err = s.db.commit(pb, s.db.wo)
		_ = pb.Close()
	}
	if err != nil {
		s.db.cfg.logger.Warn("store: cannot delete the chunks of a failed write; the next open will",
			"store", s.name, "partition", s.partition, "error", err)
	}
}

// putIngested sets the data key dk (the store's prefix and key) to the
// stub of v, whose chunks of in's version are ingested, and deletes key's
// older chunks.
func (c *chunkApply) putIngested(dk, key, v []byte, in *ingestion) error {
	had, err := c.had(key)
	if err != nil {
		return err
	}
	if !had {
		c.delta++
	}
	c.state[string(key)] = true
	lo, _ := c.s.keySpan(key)
	if err := c.pb.DeleteRange(lo, c.s.versionPrefix(nil, key, in.ver), nil); err != nil {
		return err
	}
	c.scratch = c.s.indexKey(c.scratch[:0], key)
	if err := c.pb.Set(c.scratch, nil, nil); err != nil {
		return err
	}
	var stub [stubVLen]byte
	return c.pb.Set(dk, appendStubV(stub[:0], uint32(numChunks(len(v), in.chunk)), len(v), in.chunk, in.ver), nil)
}

func (s *pebbleStore) versionPrefix(dst, key []byte, v version) []byte {
	return versionPrefix(dst, s.chunkPrefix, key, v)
}

// id returns the uvarint of s's id.
func (s *pebbleStore) id() []byte { return s.chunkPrefix[1:] }

// ingestedBatchSize is what the operations of b that in ingested take
// in the Pebble batch of s less what chunkedBatchSize and Batch.Size
// count for them.
func (s *pebbleStore) ingestedBatchSize(b *Batch, in *ingestion) int {
	const entry = 1 + 2*5
	n := entry + 1 + len(s.id()) + versionLen // the intent's deletion
	for _, i := range in.ops {
		op := &b.ops[i]
		k, v := op.key(b.buf), op.value(b.buf)
		esc := len(s.chunkPrefix) + 2*len(k) + 2 + 4
		n -= len(v) + numChunks(len(v), chunkSize)*(entry+esc) + stubLen
		n += entry + 2*esc + versionLen + stubVLen
	}
	return n
}

// dropOrphans deletes the chunks of the ingestions whose batch did not
// commit, which their intents name, and the intents (see above). Open
// calls it once the write chain is loaded.
func (d *PebbleDB) dropOrphans() error {
	it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagIntent}, UpperBound: []byte{tagIntent + 1}})
	if err != nil {
		return err
	}
	defer it.Close()
	pb := d.db.NewBatch()
	defer pb.Close()
	n := 0
	for valid := it.First(); valid; valid = it.Next() {
		k := it.Key()
		_, l := binary.Uvarint(k[1:])
		if l <= 0 || len(k) != 1+l+versionLen {
			return fmt.Errorf("%w: ingestion intent key %x", ErrCorrupt, k)
		}
		id, ver := k[1:1+l], version(k[1+l:])
		chunkPrefix := append([]byte{tagChunk}, id...)
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		for len(v) > 0 {
			kl, l := binary.Uvarint(v)
			if l <= 0 || kl > uint64(len(v)-l) {
				return fmt.Errorf("%w: ingestion intent %x: bad key list", ErrCorrupt, k)
			}
			lo, hi := versionSpan(chunkPrefix, v[l:l+int(kl)], ver)
			_ = pb.DeleteRange(lo, hi, nil)
			v = v[l+int(kl):]
		}
		_ = pb.Delete(k, nil)
		n++
	}
	if err := it.Error(); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	d.cfg.logger.Info("store: deleting the chunks of writes that did not commit", "dir", d.dir, "writes", n)
	return d.commit(pb, d.wo)
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
