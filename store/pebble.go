package store

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"

	"github.com/duality-streams/duality/internal/diskspace"
	"github.com/duality-streams/duality/internal/pebblelog"
)

// Key layout inside the Pebble database. Every store gets a numeric id from
// the catalog, so store names never reach keys or file names:
//
//	0x00                                       format marker
//	0x00 uvarint(len(name)) name be32(partition) catalog: uvarint(id)
//	0x01 uvarint(id) key                         data
//	0x02 uvarint(id)                             offset: be64(offset)
//	0x03 uvarint(id) escaped(key) be32(i)        chunk i of a value
//	0x04 uvarint(id) key                         index of chunked values
//	0x05 uvarint(id) version                     intent of an ingestion
//
// uvarint is prefix-free, so no store's data prefix is a prefix of
// another's, and ids are never reused. The format marker says how values
// are stored: formatV2 tags them and stores large ones in chunks (see
// chunks.go); formatV3 also has stubs of versioned chunks and intents,
// which huge values are ingested with (see ingest.go); formatV1, written
// by earlier versions, stores them as they are. A new database is of
// formatV2, which its first ingestion upgrades to formatV3; a formatV1
// database keeps its format.
const (
	tagMeta   = 0x00
	tagData   = 0x01
	tagOffset = 0x02

	formatV1 = "duality-store-v1"
	formatV2 = "duality-store-v2"
	formatV3 = "duality-store-v3"
)

var (
	formatKey    = []byte{tagMeta}
	catalogStart = []byte{tagMeta, 0x01}
	catalogEnd   = []byte{tagData}
)

// Tuned Pebble settings besides the options' defaults.
const (
	l0CompactionThreshold = 4
	l0StopWritesThreshold = 24

	// exactCountBytes is the on-disk size of a store's range under which
	// ApproximateCount counts keys one by one.
	exactCountBytes = 4 << 20
)

// PebbleDB is a DB on one Pebble database: one per app instance, shared by
// the stores of all its tasks, each under its own key prefix.
//
// # Tuning
//
// OpenPebble sets a 64 MiB block cache, 32 MiB memtables, bloom filters of
// 10 bits per key on every level (so a Get of an absent key rarely reads a
// data block), and L0 thresholds of 4 files to compact and 24 to stop
// writes; see the Options to change them and WithPebbleOptions for
// anything else. These are starting values (Pebble's defaults are sized
// for small embedded use), not yet tuned against end-to-end benchmarks.
//
// # Drop
//
// Drop writes one range deletion over the store's prefix and deletes its
// offset: it costs the same whatever the store's size, and the disk space
// comes back as Pebble compacts the range in the background.
//
// # Count
//
// ApproximateCount is exact while the store's range takes less than 4 MiB
// on disk: it then counts the keys, memtables included, so it reads up to
// 4 MiB of sstables plus the memtables' share of the store. Above that it
// estimates from the sstables' properties: the entries minus the deletions
// of each sstable, in proportion to the part of the sstable in the range.
// The estimate counts overwritten and deleted keys until compactions drop
// them (except that an empty store, for example a dropped one, counts 0),
// and misses the keys still in memtables (at most two memtables' worth).
//
// A PebbleDB is safe for concurrent use, except Close (see DB).
type PebbleDB struct {
	dir    string
	cfg    config
	db     *pebble.DB
	wo     *pebble.WriteOptions
	space  *diskspace.Guard // admits writes while the disk has room
	closed atomic.Bool
	// tagged says the database is of formatV2 or formatV3: values are
	// tagged and large ones chunked; v3 that it is of formatV3.
	tagged bool
	v3     atomic.Bool
	// popts are the options Pebble was opened with (ingest.go writes
	// sstables with them).
	popts *pebble.Options
	// epoch is the write chain's number of the batch that the open
	// committed; ingestions counts the chunk versions given out since
	// and ingestFiles names the sstables written for ingestion.
	epoch                   uint64
	ingestions, ingestFiles atomic.Uint64
	// corrupt is closed when Pebble first reports on-disk corruption,
	// which corruptErr (set before) describes.
	corrupt     chan struct{}
	corruptOnce sync.Once
	corruptErr  error
	logs        []string // the write-ahead logs present at open, for errors

	// chain orders the commits of the write chain (see chain.go);
	// applying is the sequence number of the batch being committed and
	// rotatedAt its value when Pebble last switched to a new log.
	chain struct {
		sync.Mutex
		seq, first uint64
		trimWait   int
	}
	applying, rotatedAt atomic.Uint64

	mu struct {
		sync.Mutex
		ids     map[storeKey]uint64
		next    uint64
		cursors map[*pebbleCursor]struct{}
		chunks  map[uint64]*chunkState // by store id
	}
}

// OpenPebble opens or creates the Pebble database in dir (on the file
// system of WithFS), first finishing a QuarantinePebble of dir that a
// crash interrupted. It returns an error matching ErrInvalidConfig for bad
// options; ErrCorrupt if dir holds a damaged database (a checksum
// mismatch, a malformed manifest, OPTIONS file or write-ahead log, a file
// the manifest lists missing or of the wrong size, database files without
// a manifest marker or a format marker), a Pebble database that is not a
// store or an unreadable catalog; ErrDiskFull, at once, if the file system
// has no room to flush the write-ahead log the open replays (see
// WithDiskReserve); and Pebble's or the file system's error if the
// database cannot be opened otherwise (for example because another
// process has it open). Damage that only a read reaches (a corrupt block
// of an sstable) is reported by that read, as ErrCorrupt.
func OpenPebble(dir string, opts ...Option) (db *PebbleDB, err error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if o != nil {
			o.apply(&cfg)
		}
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	d := &PebbleDB{dir: dir, cfg: cfg, wo: pebble.NoSync, corrupt: make(chan struct{})}
	if cfg.sync {
		d.wo = pebble.Sync
	}
	d.mu.ids = make(map[storeKey]uint64)
	d.mu.cursors = make(map[*pebbleCursor]struct{})
	d.mu.chunks = make(map[uint64]*chunkState)
	d.mu.next = 1

	// Pebble panics on some invalid options (set through
	// WithPebbleOptions), and calls Fatalf (which panics with a
	// fatalError on this goroutine) on some storage failures; report both
	// as errors.
	exit := pebblelog.Enter()
	defer func() {
		exit()
		r := recover()
		if r == nil {
			return
		}
		f, fatal := r.(pebblelog.Fatal)
		switch {
		case fatal:
			db, err = nil, fmt.Errorf("store: open %s: %w", dir, f.Error())
		case d.db == nil:
			db, err = nil, fmt.Errorf("store: open %s: %w: pebble: %v", dir, ErrInvalidConfig, r)
		default:
			panic(r) // a bug after Pebble opened
		}
	}()
	if err := finishQuarantine(cfg.fs, dir); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	if err := checkManifestMarker(cfg.fs, dir); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	opened, err := d.openSpace()
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	d.logs = listLogs(cfg.fs, dir) // before Pebble recycles or deletes them
	popts := d.pebbleOptions()
	// A directory with Pebble's files but no manifest marker is damaged:
	// Pebble would silently create an empty database in it.
	popts.ErrorIfNotExists = hasPebbleFiles(cfg.fs, dir)
	d.popts = popts
	pdb, err := pebble.Open(dir, popts)
	if err != nil {
		if err = openError(err); damagedOpen(err) && !errors.Is(err, ErrCorrupt) {
			err = fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	d.db = pdb
	// Only now, under Pebble's lock on dir: an open of a directory that
	// another process has open fails at the lock, and must not delete
	// that process's ingestion in progress first.
	if err := removeIngestFiles(cfg.fs, dir); err != nil {
		_ = pdb.Close()
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	if err := d.load(); err != nil {
		_ = pdb.Close()
		if pebble.IsCorruptionError(err) && !errors.Is(err, ErrCorrupt) {
			err = fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	opened()
	return d, nil
}

// cacheSize returns the size of the Pebble cache that leaves blockCache
// bytes for blocks: Pebble reserves the size of every memtable (the
// mutable one and one being flushed or recycled) in its cache. 0 keeps
// Pebble's default.
func cacheSize(blockCache, memTable int64) int64 {
	if blockCache == 0 {
		return 0
	}
	return blockCache + 2*memTable
}

// pebbleOptions returns the tuned options, then the user's functions, then
// the settings the DB relies on.
func (d *PebbleDB) pebbleOptions() *pebble.Options {
	logger := pebblelog.Logger{Log: d.cfg.logger, Name: "store"}
	o := &pebble.Options{
		FormatMajorVersion:    pebble.FormatNewest,
		CacheSize:             cacheSize(d.cfg.blockCacheSize, d.cfg.memTableSize),
		MemTableSize:          uint64(d.cfg.memTableSize),
		L0CompactionThreshold: l0CompactionThreshold,
		L0StopWritesThreshold: l0StopWritesThreshold,
		Logger:                logger,
		EventListener: &pebble.EventListener{
			// Pebble's default exits the process on a corrupt block. A
			// read that found it returns an error matching ErrCorrupt
			// anyway, and a compaction's is signalled (Corrupted), so
			// log it and carry on.
			DataCorruption: func(info pebble.DataCorruptionInfo) {
				d.cfg.logger.Error("store: on-disk corruption", "path", info.Path, "error", info.Details)
				d.corruptOnce.Do(func() {
					d.corruptErr = fmt.Errorf("%w: %s: %w", ErrCorrupt, info.Path, info.Details)
					close(d.corrupt)
				})
			},
		},
	}
	if d.cfg.bloomBits > 0 {
		for i := range o.Levels {
			o.Levels[i].FilterPolicy = bloom.FilterPolicy(d.cfg.bloomBits)
		}
	}
	o.EnsureDefaults()
	for _, f := range d.cfg.pebbleOpts {
		f(o)
	}
	o.FS = d.space.WatchFS(d.cfg.fs) // see diskspace.go
	var el pebble.EventListener
	if o.EventListener != nil {
		el = *o.EventListener
	}
	walCreated := el.WALCreated
	el.WALCreated = func(info pebble.WALCreateInfo) {
		// Called by the goroutine whose commit (under d.chain) or Flush
		// rotated the log; see trimChain.
		d.rotatedAt.Store(d.applying.Load())
		if walCreated != nil {
			walCreated(info)
		}
	}
	o.EventListener = &el
	o.Comparer = pebble.DefaultComparer
	o.Merger = pebble.DefaultMerger
	o.ReadOnly = false
	return o
}

// load checks the format marker (writing it into an empty database) and
// reads the catalog.
func (d *PebbleDB) load() error {
	v, closer, err := d.db.Get(formatKey)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		it, err := d.db.NewIter(nil)
		if err != nil {
			return err
		}
		nonEmpty := it.First()
		if err := errors.Join(it.Error(), it.Close()); err != nil {
			return err
		}
		if nonEmpty {
			return fmt.Errorf("%w: not a store database (no format marker)", ErrCorrupt)
		}
		if err := d.db.Set(formatKey, []byte(formatV2), pebble.Sync); err != nil {
			return err
		}
		d.tagged = true
	case err != nil:
		return err
	default:
		format := string(v)
		_ = closer.Close()
		switch format {
		case formatV1:
		case formatV2:
			d.tagged = true
		case formatV3:
			d.tagged = true
			d.v3.Store(true)
		default:
			return fmt.Errorf("%w: unknown format marker %q", ErrCorrupt, format)
		}
	}

	it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: catalogStart, UpperBound: catalogEnd})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		name, partition, err := parseCatalogKey(it.Key())
		if err != nil {
			return err
		}
		val, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		id, n := binary.Uvarint(val)
		if n <= 0 || n != len(val) || id == 0 {
			return fmt.Errorf("%w: catalog entry of %s/%d: bad id", ErrCorrupt, name, partition)
		}
		d.mu.ids[storeKey{name, partition}] = id
		d.mu.next = max(d.mu.next, id+1)
	}
	if err := it.Error(); err != nil {
		return err
	}
	if err := d.loadChain(); err != nil {
		return err
	}
	if !d.tagged {
		return nil
	}
	return d.dropOrphans()
}

func catalogKey(name string, partition int32) []byte {
	k := make([]byte, 0, 1+binary.MaxVarintLen64+len(name)+4)
	k = append(k, tagMeta)
	k = binary.AppendUvarint(k, uint64(len(name)))
	k = append(k, name...)
	return binary.BigEndian.AppendUint32(k, uint32(partition))
}

func parseCatalogKey(k []byte) (string, int32, error) {
	l, n := binary.Uvarint(k[1:])
	if n <= 0 || l == 0 {
		return "", 0, fmt.Errorf("%w: catalog key %x", ErrCorrupt, k)
	}
	rest := k[1+n:]
	if l > uint64(len(rest)) || uint64(len(rest))-l != 4 {
		return "", 0, fmt.Errorf("%w: catalog key %x", ErrCorrupt, k)
	}
	name, p := string(rest[:l]), int32(binary.BigEndian.Uint32(rest[l:]))
	// Only the canonical encoding (no padded uvarint) is a catalog key.
	if p < 0 || n != len(binary.AppendUvarint(nil, l)) {
		return "", 0, fmt.Errorf("%w: catalog key %x", ErrCorrupt, k)
	}
	return name, p, nil
}

// Has reports whether d holds the store name/partition: whether Store
// has opened it since the database was created, in this process or an
// earlier one (its data may be empty). Unlike Store it writes nothing. It
// is false after Close.
func (d *PebbleDB) Has(name string, partition int32) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed.Load() {
		return false
	}
	_, ok := d.mu.ids[storeKey{name, partition}]
	return ok
}

// Store implements DB. A new store's catalog entry is written with the
// DB's write options (see WithSync).
func (d *PebbleDB) Store(name string, partition int32) (Store, error) {
	if err := validName(name, partition); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed.Load() {
		return nil, wrap(name, partition, "open", ErrClosed)
	}
	k := storeKey{name, partition}
	id, ok := d.mu.ids[k]
	if !ok {
		if err := d.space.Admit(int64(len(name) + 32)); err != nil {
			return nil, wrap(name, partition, "open", err)
		}
		id = d.mu.next
		pb := d.db.NewBatch()
		_ = pb.Set(catalogKey(name, partition), binary.AppendUvarint(nil, id), nil)
		err := d.commit(pb, d.wo)
		_ = pb.Close()
		if err != nil {
			return nil, wrap(name, partition, "open", err)
		}
		d.mu.next++
		d.mu.ids[k] = id
	}
	prefix := binary.AppendUvarint([]byte{tagData}, id)
	cs := d.mu.chunks[id]
	if cs == nil {
		cs = &chunkState{}
		d.mu.chunks[id] = cs
	}
	return &pebbleStore{
		db: d, name: name, partition: partition,
		prefix:      prefix,
		end:         PrefixEnd(prefix),
		offsetKey:   binary.AppendUvarint([]byte{tagOffset}, id),
		chunkPrefix: binary.AppendUvarint([]byte{tagChunk}, id),
		indexPrefix: binary.AppendUvarint([]byte{tagIndex}, id),
		chunks:      cs,
	}, nil
}

// Close implements DB: it closes the cursors still open, flushes the
// memtables to sstables (so that a cleanly closed directory holds nothing
// that exists only in a write-ahead log) and closes the Pebble database.
// Closing twice returns nil.
func (d *PebbleDB) Close() error {
	if d.closed.Swap(true) {
		return nil
	}
	d.mu.Lock()
	var errs []error
	for c := range d.mu.cursors {
		c.closed = true
		c.err = wrap(c.store.name, c.store.partition, "range", ErrClosed)
		errs = append(errs, c.chunks.close(), c.it.Close())
	}
	d.mu.cursors = nil
	d.mu.Unlock()
	// The flush needs room for its sstables: after a failed log write,
	// or on a disk the guard says is full, Pebble would crash or retry a
	// failed flush forever, so the database is left depending on its
	// write-ahead log, which the next open replays.
	if d.space.Failed() == nil && d.space.AdmitSmall() == nil {
		if err := d.flushRecovering(); err != nil {
			errs = append(errs, fmt.Errorf("flush: %w", err))
		}
	}
	errs = append(errs, d.db.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// Corrupted returns a channel closed when Pebble first reports on-disk
// corruption in the database: found by a read, which also returns an
// error matching ErrCorrupt to its caller, or by a background compaction,
// which returns no error to anyone (and fails again when retried).
// CorruptionError then says what was found.
func (d *PebbleDB) Corrupted() <-chan struct{} { return d.corrupt }

// CorruptionError returns the first on-disk corruption Pebble reported
// (see Corrupted), matching ErrCorrupt and naming the file, or nil when
// there was none.
func (d *PebbleDB) CorruptionError() error {
	select {
	case <-d.corrupt:
		return d.corruptErr
	default:
		return nil
	}
}

// Dir returns the directory the DB was opened in.
func (d *PebbleDB) Dir() string { return d.dir }

// Flush writes the memtables to sstables, so that everything applied so
// far is on disk without the write-ahead log. Tests use it to exercise
// sstables; the runtime does not need it.
func (d *PebbleDB) Flush() error {
	if d.closed.Load() {
		return fmt.Errorf("store: flush: %w", ErrClosed)
	}
	if err := d.space.Failed(); err != nil {
		return fmt.Errorf("store: flush: %w", err)
	}
	if err := d.db.Flush(); err != nil {
		return fmt.Errorf("store: flush: %w", err)
	}
	return nil
}

// flushRecovering flushes the memtables, turning a Pebble fatal error
// into an error.
func (d *PebbleDB) flushRecovering() (err error) {
	exit := pebblelog.Enter()
	defer exit()
	defer func() {
		if r := recover(); r != nil {
			err = pebblelog.FromPanic(r, "store: storage failed")
		}
	}()
	return d.db.Flush()
}

// pebbleStore is a handle on one store of a PebbleDB.
type pebbleStore struct {
	db        *PebbleDB
	name      string
	partition int32
	prefix    []byte // tagData uvarint(id)
	end       []byte // PrefixEnd(prefix)
	offsetKey []byte
	// chunkPrefix and indexPrefix start the keys of the store's chunks
	// and of its index of chunked values (formatV2).
	chunkPrefix, indexPrefix []byte
	chunks                   *chunkState
	closed                   atomic.Bool
}

func (s *pebbleStore) Name() string     { return s.name }
func (s *pebbleStore) Partition() int32 { return s.partition }

func (s *pebbleStore) check(op string) error {
	if s.closed.Load() || s.db.closed.Load() {
		return wrap(s.name, s.partition, op, ErrClosed)
	}
	return nil
}

// keyPool holds buffers for the Pebble keys of Get, which Pebble needs
// until the value's closer is closed.
var keyPool = sync.Pool{New: func() any { b := make([]byte, 0, 64); return &b }}

func (s *pebbleStore) Get(key []byte) ([]byte, bool, error) {
	if err := s.check("get"); err != nil {
		return nil, false, err
	}
	bp := keyPool.Get().(*[]byte)
	k := append(append((*bp)[:0], s.prefix...), key...)
	defer func() {
		if cap(k) <= 64<<10 {
			*bp = k[:0]
			keyPool.Put(bp)
		}
	}()
	v, closer, err := s.db.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, wrap(s.name, s.partition, "get", err)
	}
	if s.db.tagged {
		if len(v) == 0 || v[0] != valInline {
			chunked, err := isStub(v), badTag(v)
			_ = closer.Close()
			if chunked {
				out, ok, err := s.getChunked(k)
				if err != nil {
					return nil, false, wrap(s.name, s.partition, "get", err)
				}
				return out, ok, nil
			}
			return nil, false, wrap(s.name, s.partition, "get", err)
		}
		v = v[1:]
	}
	out := make([]byte, len(v))
	copy(out, v)
	_ = closer.Close()
	return out, true, nil
}

// sortedApplyMin is the number of operations from which Apply writes a
// batch's operations in key order (see Batch.keyOrder).
const sortedApplyMin = 64

// keyOrder returns the indexes of b's operations sorted by key, the
// operations of one key in the order they were added, or nil when b is
// small or holds a range deletion. Pebble inserts a batch into its
// memtable (a skiplist) in batch order, remembering where the last
// insert went: keys in order are inserted next to each other, while keys
// in random order (a restore in changelog order, a commit of the record
// cache in map order) each search the skiplist from its top, a cache miss
// a level. Operations on different keys commute, those of one key keep
// their order, so the batch writes the same state; a range deletion
// would not commute with the writes it covers.
func (b *Batch) keyOrder() []int32 {
	if len(b.ops) < sortedApplyMin {
		return nil
	}
	b.order = b.order[:0]
	for i := range b.ops {
		if b.ops[i].kind == opDeleteRange {
			return nil
		}
		b.order = append(b.order, int32(i))
	}
	slices.SortFunc(b.order, func(x, y int32) int {
		if c := bytes.Compare(b.ops[x].key(b.buf), b.ops[y].key(b.buf)); c != 0 {
			return c
		}
		return cmp.Compare(x, y)
	})
	return b.order
}

func (s *pebbleStore) Apply(b *Batch) error {
	if err := s.check("apply"); err != nil {
		return err
	}
	if b == nil || b.empty() {
		return nil
	}
	cs := s.chunks
	cs.Lock()
	defer cs.Unlock()
	// chunks writes the operations when the store has chunked values
	// or gets some; nil otherwise, and always in a formatV1 database.
	var chunks *chunkApply
	var in *ingestion // the values whose chunks are ingested
	extra := 0
	if s.db.tagged {
		if err := s.loadChunks(); err != nil {
			return wrap(s.name, s.partition, "apply", err)
		}
		if cs.n > 0 || b.maxValue > chunkSize {
			chunks = &chunkApply{s: s, state: make(map[string]bool)}
			extra = s.chunkedBatchSize(b)
		}
		if ops := planIngest(b); ops != nil {
			var err error
			if in, err = s.ingest(b, ops); err != nil {
				return wrap(s.name, s.partition, "apply", err)
			}
			extra += s.ingestedBatchSize(b, in)
		}
	}
	err := afterIngested(in)
	if err == nil {
		err = s.apply(b, chunks, in, extra)
	}
	if err != nil {
		if in != nil {
			s.dropIngested(b, in)
		}
		return wrap(s.name, s.partition, "apply", err)
	}
	if chunks != nil {
		cs.n += chunks.delta
	}
	return nil
}

// apply writes b to the store in one Pebble batch: its chunked values
// through chunks (nil: b has none, nor has the store), those of in
// (nil: none) as stubs of the chunks that were ingested, with the
// deletion of in's intent. extra is the room the batch needs beyond b's
// operations.
func (s *pebbleStore) apply(b *Batch, chunks *chunkApply, in *ingestion, extra int) error {
	// The initial size is given twice: Pebble sizes a batch's first
	// write by doubling its initial size, ignoring the room the batch
	// has, so a 100 MiB value would otherwise take a 128 MiB buffer after
	// the 100 MiB one. 256 bytes cover the batch header, the offset and
	// the write chain's keys.
	size := b.Size() + len(b.ops)*(len(s.prefix)+17) + extra + 256
	pb := s.db.db.NewBatchWithSize(size, pebble.WithInitialSizeBytes(size))
	defer pb.Close()
	if chunks != nil {
		chunks.pb = pb
	}
	var scratch, scratch2 []byte
	order := b.keyOrder()
	for j := range b.ops {
		i := j
		if order != nil {
			i = int(order[j])
		}
		op := &b.ops[i]
		k := op.key(b.buf)
		var err error
		switch op.kind {
		case opPut:
			v := op.value(b.buf)
			if chunks != nil {
				scratch = append(append(scratch[:0], s.prefix...), k...)
				if in != nil && in.has(i) {
					err = chunks.putIngested(scratch, k, v, in)
				} else {
					err = chunks.put(scratch, k, v)
				}
				break
			}
			tag := 0
			if s.db.tagged {
				tag = 1
			}
			d := pb.SetDeferred(len(s.prefix)+len(k), tag+len(v))
			copy(d.Key, s.prefix)
			copy(d.Key[len(s.prefix):], k)
			if tag == 1 {
				d.Value[0] = valInline
			}
			copy(d.Value[tag:], v)
			err = d.Finish()
		case opDelete:
			scratch = append(append(scratch[:0], s.prefix...), k...)
			if chunks != nil {
				err = chunks.delete(scratch, k)
			} else {
				err = pb.Delete(scratch, nil)
			}
		case opDeleteRange:
			end := s.end
			var e []byte
			if !op.endNil {
				e = op.value(b.buf)
				if bytes.Compare(k, e) >= 0 {
					continue
				}
				scratch2 = append(append(scratch2[:0], s.prefix...), e...)
				end = scratch2
			}
			if chunks != nil {
				if err = chunks.deleteRange(k, e); err != nil {
					break
				}
			}
			scratch = append(append(scratch[:0], s.prefix...), k...)
			err = pb.DeleteRange(scratch, end, nil)
		}
		if err != nil {
			return err
		}
	}
	if b.hasOffset {
		if err := pb.Set(s.offsetKey, binary.BigEndian.AppendUint64(nil, uint64(b.offset)), nil); err != nil {
			return err
		}
	}
	if in != nil {
		if err := pb.Delete(intentKey(s.id(), in.ver), nil); err != nil {
			return err
		}
	}
	if err := s.db.space.Admit(int64(pb.Len())); err != nil {
		return err
	}
	return s.db.commit(pb, s.db.wo)
}

func (s *pebbleStore) Offset() (int64, bool, error) {
	if err := s.check("offset"); err != nil {
		return 0, false, err
	}
	v, closer, err := s.db.db.Get(s.offsetKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, wrap(s.name, s.partition, "offset", err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, false, wrap(s.name, s.partition, "offset", fmt.Errorf("%w: offset of %d bytes", ErrCorrupt, len(v)))
	}
	return int64(binary.BigEndian.Uint64(v)), true, nil
}

func (s *pebbleStore) Drop() error {
	if err := s.check("drop"); err != nil {
		return err
	}
	cs := s.chunks
	cs.Lock()
	defer cs.Unlock()
	pb := s.db.db.NewBatch()
	defer pb.Close()
	if err := pb.DeleteRange(s.prefix, s.end, nil); err != nil {
		return wrap(s.name, s.partition, "drop", err)
	}
	if err := pb.Delete(s.offsetKey, nil); err != nil {
		return wrap(s.name, s.partition, "drop", err)
	}
	if s.db.tagged {
		// Also when the store has no chunked value: the chunks of an
		// ingestion whose batch did not commit may be there (ingest.go).
		_ = pb.DeleteRange(s.chunkPrefix, PrefixEnd(s.chunkPrefix), nil)
		_ = pb.DeleteRange(s.indexPrefix, PrefixEnd(s.indexPrefix), nil)
		intents := append([]byte{tagIntent}, s.id()...)
		_ = pb.DeleteRange(intents, PrefixEnd(intents), nil)
	}
	if err := s.db.space.AdmitSmall(); err != nil {
		return wrap(s.name, s.partition, "drop", err)
	}
	if err := s.db.commit(pb, s.db.wo); err != nil {
		return wrap(s.name, s.partition, "drop", err)
	}
	cs.n = 0
	return nil
}

func (s *pebbleStore) ApproximateCount() (int64, error) {
	if err := s.check("count"); err != nil {
		return 0, err
	}
	levels, err := s.db.db.SSTables(pebble.WithKeyRangeFilter(s.prefix, s.end), pebble.WithApproximateSpanBytes(), pebble.WithProperties())
	if err != nil {
		return 0, wrap(s.name, s.partition, "count", err)
	}
	var bytesInRange uint64
	var estimate float64
	for _, level := range levels {
		for _, t := range level {
			bytesInRange += t.ApproximateSpanBytes
			if t.Properties == nil || t.Size == 0 {
				continue
			}
			live := float64(t.Properties.NumEntries) - float64(t.Properties.NumDeletions)
			estimate += live * min(1, float64(t.ApproximateSpanBytes)/float64(t.Size))
		}
	}
	it, err := s.db.db.NewIter(&pebble.IterOptions{LowerBound: s.prefix, UpperBound: s.end})
	if err != nil {
		return 0, wrap(s.name, s.partition, "count", err)
	}
	var n int64
	if bytesInRange >= exactCountBytes {
		// Estimate, unless the store is empty (dropped, or every key
		// deleted) and the sstables still hold the deleted keys.
		if it.First() {
			n = max(1, int64(estimate))
		}
	} else {
		for ok := it.First(); ok; ok = it.Next() {
			n++
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return 0, wrap(s.name, s.partition, "count", err)
	}
	return n, nil
}

func (s *pebbleStore) Close() error {
	s.closed.Store(true)
	return nil
}

func (s *pebbleStore) Range(start, end []byte) Cursor {
	return s.cursor(start, end, false)
}

func (s *pebbleStore) RangeReverse(start, end []byte) Cursor {
	return s.cursor(start, end, true)
}

func (s *pebbleStore) Prefix(prefix []byte) Cursor {
	return s.cursor(prefix, PrefixEnd(prefix), false)
}

func (s *pebbleStore) cursor(start, end []byte, reverse bool) Cursor {
	if err := s.check("range"); err != nil {
		return errCursor{err}
	}
	if end != nil && bytes.Compare(start, end) >= 0 {
		return errCursor{}
	}
	lo := append(bytes.Clone(s.prefix), start...)
	hi := s.end
	if end != nil {
		hi = append(bytes.Clone(s.prefix), end...)
	}
	d := s.db
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed.Load() {
		return errCursor{wrap(s.name, s.partition, "range", ErrClosed)}
	}
	it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return errCursor{wrap(s.name, s.partition, "range", err)}
	}
	c := &pebbleCursor{store: s, it: it, reverse: reverse}
	d.mu.cursors[c] = struct{}{}
	return c
}

// pebbleCursor wraps a Pebble iterator; the iterator's bounds keep it
// inside the store's prefix.
type pebbleCursor struct {
	store      *pebbleStore
	it         *pebble.Iterator
	reverse    bool
	started    bool
	done       bool
	closed     bool
	key, value []byte
	err        error
	chunks     chunkReader // reassembles chunked values
	lo, hi     []byte      // Reseek's bounds (Pebble copies them)
}

// Reseek implements Reseeker: the iterator's bounds change (SetBounds),
// its view does not.
func (c *pebbleCursor) Reseek(start, end []byte) bool {
	if c.closed || c.err != nil || c.store.check("range") != nil {
		return false
	}
	c.started, c.key, c.value = false, nil, nil
	if end != nil && bytes.Compare(start, end) >= 0 {
		c.done = true // an empty range, as Range's
		return true
	}
	c.done = false
	c.lo = append(append(c.lo[:0], c.store.prefix...), start...)
	hi := c.store.end
	if end != nil {
		c.hi = append(append(c.hi[:0], c.store.prefix...), end...)
		hi = c.hi
	}
	c.it.SetBounds(c.lo, hi)
	return true
}

func (c *pebbleCursor) Next() bool {
	if c.done || c.closed {
		return false
	}
	var ok bool
	switch {
	case !c.started && !c.reverse:
		ok = c.it.First()
	case !c.started:
		ok = c.it.Last()
	case !c.reverse:
		ok = c.it.Next()
	default:
		ok = c.it.Prev()
	}
	c.started = true
	var err error
	if ok {
		var v []byte
		if v, err = c.it.ValueAndErr(); err == nil {
			key := c.it.Key()[len(c.store.prefix):]
			if c.store.db.tagged {
				v, err = c.chunks.value(c.store, c.it, key, v)
			}
			if err == nil {
				c.key, c.value = key, v
				return true
			}
		}
	}
	c.done, c.key, c.value = true, nil, nil
	if err == nil {
		err = c.it.Error()
	}
	if err != nil {
		c.err = wrap(c.store.name, c.store.partition, "range", err)
	}
	return false
}

func (c *pebbleCursor) Key() []byte                    { return c.key }
func (c *pebbleCursor) Value() []byte                  { return c.value }
func (c *pebbleCursor) All() iter.Seq2[[]byte, []byte] { return cursorAll(c) }
func (c *pebbleCursor) Err() error                     { return c.err }

func (c *pebbleCursor) Close() error {
	if c.closed {
		return c.err
	}
	d := c.store.db
	d.mu.Lock()
	defer d.mu.Unlock()
	if c.closed { // closed by PebbleDB.Close
		return c.err
	}
	c.closed, c.key, c.value = true, nil, nil
	delete(d.mu.cursors, c)
	if err := errors.Join(c.chunks.close(), c.it.Close()); err != nil && c.err == nil {
		c.err = wrap(c.store.name, c.store.partition, "range", err)
	}
	return c.err
}
