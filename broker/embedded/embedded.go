package embedded

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/diskspace"
	"github.com/duality-streams/duality/internal/pebblelog"
)

var _ broker.Broker = (*Broker)(nil)

// Broker is the embedded, durable broker.Broker: partitioned logs, group
// offsets and group membership in one process, stored in a Pebble database
// in a data directory. It is safe for concurrent use.
//
// Record slices passed to Produce and Commit belong to the caller again when
// the call returns; records returned by Fetch belong to the caller.
type Broker struct {
	cfg  config
	dir  string
	db   *pebble.DB
	lock io.Closer
	log  *slog.Logger
	wo   *pebble.WriteOptions // for appends and offset commits
	acks *ackRecorder         // the acknowledgement record; see acked.go
	// popts are the options db was opened with, for the sstables of
	// ingested chunks (ingest.go).
	popts *pebble.Options
	// orphans are the spans of chunks of batches that never committed,
	// found by Open and deleted by startAcked (see findOrphans).
	orphans [][2][]byte

	// applying is the sequence number of the next batch the writer
	// applies; rotatedAt is its value when Pebble last switched to a new
	// write-ahead log (and memtable): the batches before it are in older
	// ones. See writer.trimChain.
	applying, rotatedAt atomic.Uint64

	mu struct {
		sync.RWMutex
		// topics is written only by the writer goroutine.
		topics map[string]*topic
	}

	// closeMu is held shared by every call while it uses the database
	// (but not while a Fetch long-polls), and exclusively by Close, which
	// therefore waits for calls in flight before stopping the writer.
	closeMu sync.RWMutex
	closed  bool // guarded by closeMu

	closing    chan struct{} // closed when Close starts
	closeOnce  sync.Once
	closeErr   error
	writeCh    chan *writeOp
	stopWriter chan struct{}
	writerDone chan struct{}
	syncEvery  bool              // sync mode: every write waits for a sync
	syncCh     chan *commitGroup // committed groups waiting for their sync
	syncerDone chan struct{}
	failed     atomic.Pointer[error] // set by the first failed write
	bg         sync.WaitGroup        // background syncer and cleaner

	groups coordinator
	m      metrics
	space  *diskspace.Guard // admits writes while the disk has room

	// cleanupMu serializes retention and compaction runs.
	cleanupMu sync.Mutex

	w writer // state owned by the writer goroutine
}

// topic is an open topic. Its fields but parts' guarded state never change;
// a deleted topic is replaced by a new *topic with a new id.
type topic struct {
	name  string
	id    uint64
	cfg   broker.TopicConfig
	parts []*partition
	rr    uint32 // round-robin counter for nil keys; writer goroutine only
}

// partition is one partition of an open topic.
type partition struct {
	t   *topic
	num int32

	mu      sync.Mutex
	state   partitionValue // published state; written by the writer or syncer
	wstate  partitionValue // the writer's committed state; writer only
	wake    chan struct{}  // closed and replaced when state changes
	deleted bool
	// groups holds the published group offsets of the partition: a
	// commit's offsets become readable when its records become fetchable.
	groups map[string]int64
	// staged counts the records of the op being staged that go to the
	// partition, stagedAt is where their indexes start in writer.idx
	// (see writer.stageRecords); writer only.
	staged, stagedAt int

	// Bookkeeping of the last compaction; guarded by Broker.cleanupMu.
	compactedNext  int64 // next offset then; -1 before the first one
	compactedBytes int64 // stored bytes right after it
	tombstoneDue   int64 // Unix ms when the oldest kept tombstone expires; 0 if none
}

// snapshot returns the committed state and the channel closed at its next
// change.
func (p *partition) snapshot() (partitionValue, chan struct{}, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state, p.wake, p.deleted
}

// Open opens (creating if needed) the broker stored in dir and starts its
// writer and background goroutines, which Close stops.
//
// Errors: an invalid option gives an error matching broker.ErrInvalidConfig;
// a directory already opened by this or another process gives an error
// matching ErrLocked; a file system too full to replay the write-ahead log
// gives an error matching broker.ErrDiskFull (see WithDiskReserve), at
// once, instead of an open that waits for space; damaged or missing files
// give an error matching broker.ErrCorrupt, a *LostWritesError when
// acknowledged writes are gone from a damaged, truncated or deleted
// write-ahead log (see "Damaged files" in the package documentation).
// Damage inside sstable data blocks is found when they are read: Fetch
// returns an error matching broker.ErrCorrupt.
func Open(dir string, opts ...Option) (*Broker, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if o != nil {
			o.apply(&cfg)
		}
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if dir == "" {
		return nil, fmt.Errorf("%w: empty data directory", broker.ErrInvalidConfig)
	}
	if err := cfg.fs.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("embedded: create data directory %q: %w", dir, err)
	}
	lock, err := lockDir(cfg.fs, dir)
	if err != nil {
		return nil, err
	}
	b := &Broker{
		cfg:        cfg,
		dir:        dir,
		lock:       lock,
		log:        cfg.logger,
		wo:         pebble.Sync,
		closing:    make(chan struct{}),
		writeCh:    make(chan *writeOp, 256),
		stopWriter: make(chan struct{}),
		writerDone: make(chan struct{}),
		syncEvery:  cfg.syncInterval == 0,
		syncCh:     make(chan *commitGroup, 64),
		syncerDone: make(chan struct{}),
	}
	if cfg.syncInterval > 0 {
		b.wo = pebble.NoSync
	}
	b.mu.topics = make(map[string]*topic)
	b.groups.init(b)
	opened, err := b.openSpace()
	if err == nil {
		err = b.openDB()
	}
	if err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("embedded: open %q: %w", dir, err)
	}
	opened()
	b.w.init(b)
	go b.w.run()
	go b.syncGroups()
	if cfg.syncInterval > 0 {
		b.bg.Add(1)
		go b.syncLoop()
	} else if !cfg.ackRecordSync {
		b.bg.Add(1)
		go func() {
			defer b.bg.Done()
			b.acks.run(b.closing, func(err error) { b.w.fail(err) })
		}()
	}
	if cfg.cleanupInterval > 0 {
		b.bg.Add(1)
		go b.cleanupLoop()
	}
	return b, nil
}

// openDB opens the Pebble database and loads the metadata.
//
// A directory without an identity file (see identity.go) may hold no
// database yet: Pebble is opened once and closed at once to create it, then
// opened again. The write-ahead log Pebble creates with a new database
// predates its format upgrade and lacks the sync offsets that let recovery
// tell a torn tail from corruption; the first open writes nothing to it, and
// the log of the second open has them, so a damaged log is reported rather
// than silently truncated.
func (b *Broker) openDB() error {
	fileID, err := readIdentity(b.cfg.fs, b.dir)
	if err != nil {
		return err
	}
	if fileID == nil {
		db, err := openPebble(b.dir, b.pebbleOptions())
		if err != nil {
			return fmt.Errorf("create database: %w", err)
		}
		if err := db.Close(); err != nil {
			return fmt.Errorf("create database: %w", err)
		}
	}
	popts := b.pebbleOptions()
	// An existing database must not be silently replaced by a new one.
	popts.ErrorIfNotExists = true
	b.popts = popts
	// An sstable of chunks that a crash left before its ingestion.
	if err := b.cfg.fs.Remove(b.cfg.fs.PathJoin(b.dir, ingestFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", ingestFile, err)
	}
	logs := listLogs(b.cfg.fs, b.dir) // before Pebble recycles or deletes them
	b.db, err = openPebble(b.dir, popts)
	if err != nil {
		return err
	}
	if err := b.loadRecovering(fileID, logs); err != nil {
		_ = b.db.Close()
		if b.acks != nil {
			_ = b.acks.close()
		}
		return err
	}
	return nil
}

// openPebble is pebble.Open with fatal errors and panics turned into
// errors. Pebble panics on some failed fsyncs during Open (it never returns
// a half-open DB: it releases what it opened and re-panics), so recovering
// there is safe.
//
// Errors that mean the database's files are missing or damaged match
// broker.ErrCorrupt (see damagedOpen); a Pebble fatal error (a failed
// fsync) and the operating system refusing an operation do not.
func openPebble(dir string, o *pebble.Options) (db *pebble.DB, err error) {
	defer enterRecoverable()()
	defer func() {
		switch r := recover().(type) {
		case nil:
		case pebblelog.Fatal:
			err = fmt.Errorf("embedded: storage failed: %w", r.Error())
		case error:
			err = fmt.Errorf("embedded: storage failed: %w", r)
			if damagedOpen(r) {
				err = fmt.Errorf("%w: %w", broker.ErrCorrupt, err)
			}
		default:
			// Pebble panics on some malformed records it replays.
			err = fmt.Errorf("%w: embedded: storage failed: %v", broker.ErrCorrupt, r)
		}
	}()
	db, err = pebble.Open(dir, o)
	if err != nil && damagedOpen(err) && !errors.Is(err, broker.ErrCorrupt) {
		err = fmt.Errorf("%w: %w", broker.ErrCorrupt, err)
	}
	return db, err
}

// damagedOpen reports whether err, from opening a Pebble database, means
// that its files are missing or damaged. Pebble marks only some such errors
// as corruption: a truncated sstable gives "object size mismatch", a
// deleted marker file an unrelated-looking error, a damaged OPTIONS file a
// parse error. So every error is damage except the operating system
// refusing an operation (permissions, a full disk, too many open files, an
// I/O error), which says nothing about the files' contents; a missing file
// (ENOENT) is damage.
func damagedOpen(err error) bool {
	if errors.Is(err, os.ErrNotExist) {
		return true
	}
	var errno syscall.Errno
	return !errors.As(err, &errno)
}

// loadRecovering loads the metadata and checks that no acknowledged write
// is missing (see acked.go). Acknowledged writes found missing are
// reported first: they explain the inconsistencies load may find.
func (b *Broker) loadRecovering(fileID []byte, logs []string) (err error) {
	defer enterRecoverable()()
	defer recoverFatal(&err)
	if err := b.checkIdentity(fileID); err != nil {
		return err
	}
	acks, err := b.readAckState()
	if err != nil {
		return err
	}
	loadErr := b.load()
	if err := b.checkAcked(acks, logs, loadErr == nil); err != nil {
		if loadErr != nil {
			return errors.Join(err, loadErr)
		}
		return err
	}
	if loadErr != nil {
		return loadErr
	}
	return b.startAcked(acks)
}

// load reads the metadata into memory and checks that it agrees with the
// stored records.
func (b *Broker) load() error {
	nextID, err := b.getUint64(keyNextTopicID)
	if err != nil {
		return err
	}
	b.w.nextTopicID = max(nextID, 1)

	it, err := b.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixTopic}, UpperBound: []byte{prefixTopic + 1}})
	if err != nil {
		return wrapRead("list topics", err)
	}
	defer it.Close()
	for valid := it.First(); valid; valid = it.Next() {
		name := string(it.Key()[1:])
		raw, err := it.ValueAndErr()
		if err != nil {
			return wrapRead("read topic "+name, err)
		}
		tv, err := decodeTopicValue(raw)
		if err != nil {
			return &broker.TopicError{Topic: name, Partition: -1, Err: err}
		}
		if tv.id >= b.w.nextTopicID {
			return &broker.TopicError{Topic: name, Partition: -1, Err: fmt.Errorf("%w: topic id %d not below next id %d", broker.ErrCorrupt, tv.id, b.w.nextTopicID)}
		}
		t := newTopic(name, tv.id, tv.cfg)
		for _, p := range t.parts {
			if err := b.loadPartition(p); err != nil {
				return &broker.TopicError{Topic: name, Partition: p.num, Err: err}
			}
		}
		b.mu.topics[name] = t
	}
	if err := it.Error(); err != nil {
		return wrapRead("list topics", err)
	}
	return nil
}

// loadPartition reads a partition's state and checks that no batch lies at
// or beyond its next offset and that its last batch is intact.
func (b *Broker) loadPartition(p *partition) error {
	raw, closer, err := b.db.Get(partitionKey(p.t.id, p.num))
	if err != nil {
		if errors.Is(err, pebble.ErrNotFound) {
			return fmt.Errorf("%w: partition metadata missing", broker.ErrCorrupt)
		}
		return wrapRead("read partition metadata", err)
	}
	st, err := decodePartitionValue(raw)
	_ = closer.Close()
	if err != nil {
		return err
	}
	p.state, p.wstate = st, st
	p.compactedNext = -1
	it, err := b.db.NewIter(&pebble.IterOptions{
		LowerBound: recordKey(nil, p.t.id, p.num, 0),
		UpperBound: partKey(nil, prefixRecords, p.t.id, p.num+1),
	})
	if err != nil {
		return wrapRead("check records", err)
	}
	defer it.Close()
	if it.SeekGE(recordKey(nil, p.t.id, p.num, st.next)) {
		off, _ := recordKeyOffset(it.Key())
		return fmt.Errorf("%w: batch at offset %d at or beyond the next offset %d", broker.ErrCorrupt, off, st.next)
	}
	if err := it.Error(); err != nil {
		return wrapRead("check records", err)
	}
	if err := b.findOrphans(p, st.next); err != nil {
		return err
	}
	if it.Last() {
		v, err := it.ValueAndErr()
		if err != nil {
			return wrapRead("check records", err)
		}
		off, _ := recordKeyOffset(it.Key())
		// Its CRC, reading a chunked batch chunk by chunk.
		chunks := chunkReader{src: it}
		defer chunks.close()
		h, err := chunks.checkBatch(p, off, v)
		if err != nil {
			return fmt.Errorf("batch at offset %d: %w", off, err)
		}
		if h.BaseOffset != off || h.LastOffset() >= st.next {
			return fmt.Errorf("%w: batch at key offset %d covers [%d, %d], next offset %d", broker.ErrCorrupt, off, h.BaseOffset, h.LastOffset(), st.next)
		}
	}
	if err := it.Error(); err != nil {
		return wrapRead("check records", err)
	}
	return b.loadGroupOffsets(p)
}

// loadGroupOffsets reads the group offsets stored for p.
func (b *Broker) loadGroupOffsets(p *partition) error {
	prefix := partKey(nil, prefixOffsets, p.t.id, p.num)
	upper := partKey(nil, prefixOffsets, p.t.id, p.num+1) // p.num < MaxPartitions
	it, err := b.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upper})
	if err != nil {
		return wrapRead("read group offsets", err)
	}
	defer it.Close()
	for valid := it.First(); valid; valid = it.Next() {
		group := string(it.Key()[len(prefix):])
		v, err := it.ValueAndErr()
		if err != nil {
			return wrapRead("read group offsets", err)
		}
		if len(v) != 8 || int64(beUint64(v)) < 0 {
			return fmt.Errorf("%w: group %q offset value", broker.ErrCorrupt, group)
		}
		p.groups[group] = int64(beUint64(v))
	}
	return wrapRead("read group offsets", it.Error())
}

func (b *Broker) getUint64(key []byte) (uint64, error) {
	v, closer, err := b.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, wrapRead("read "+string(key[1:]), err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: %s has %d bytes", broker.ErrCorrupt, key[1:], len(v))
	}
	return beUint64(v), nil
}

// wrapRead adds context to a Pebble read error; corruption found by Pebble
// also matches broker.ErrCorrupt. A nil err gives nil.
func wrapRead(what string, err error) error {
	if err == nil {
		return nil
	}
	if pebble.IsCorruptionError(err) {
		return fmt.Errorf("%s: %w: %w", what, broker.ErrCorrupt, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func newTopic(name string, id uint64, cfg broker.TopicConfig) *topic {
	t := &topic{name: name, id: id, cfg: cfg, parts: make([]*partition, cfg.Partitions)}
	for i := range t.parts {
		t.parts[i] = &partition{t: t, num: int32(i), wake: make(chan struct{}), compactedNext: -1, groups: make(map[string]int64)}
	}
	return t
}

// enter registers a call that uses the database; it fails with
// broker.ErrClosed after Close. Every successful enter is paired with leave.
func (b *Broker) enter() error {
	b.closeMu.RLock()
	if b.closed {
		b.closeMu.RUnlock()
		return broker.ErrClosed
	}
	return nil
}

func (b *Broker) leave() { b.closeMu.RUnlock() }

// lookup returns the open topic called name or an error matching
// broker.ErrUnknownTopic.
func (b *Broker) lookup(name string) (*topic, error) {
	b.mu.RLock()
	t := b.mu.topics[name]
	b.mu.RUnlock()
	if t == nil {
		return nil, unknownTopic(name)
	}
	return t, nil
}

// unknownTopic returns the error for a topic that does not exist: matching
// broker.ErrInvalidTopicName if the name is invalid, else
// broker.ErrUnknownTopic.
func unknownTopic(name string) error {
	if err := broker.ValidateTopicName(name); err != nil {
		return &broker.TopicError{Topic: name, Partition: -1, Err: err}
	}
	return &broker.TopicError{Topic: name, Partition: -1, Err: broker.ErrUnknownTopic}
}

// lookupPartition returns partition p of topic name.
func (b *Broker) lookupPartition(name string, p int32) (*partition, error) {
	t, err := b.lookup(name)
	if err != nil {
		return nil, err
	}
	if p < 0 || int(p) >= len(t.parts) {
		return nil, &broker.TopicError{Topic: name, Partition: p, Err: fmt.Errorf("%w: topic has %d partitions", broker.ErrUnknownPartition, len(t.parts))}
	}
	return t.parts[p], nil
}

// MaxPartitions is the largest partition count of a topic.
const MaxPartitions = 1 << 16

// CreateTopic creates a topic. Errors: broker.ErrInvalidTopicName,
// broker.ErrInvalidPartitions (below 1 or above MaxPartitions), broker.ErrInvalidConfig for a negative
// DeleteRetention or unknown cleanup policy, broker.ErrTopicExists,
// broker.ErrClosed.
func (b *Broker) CreateTopic(ctx context.Context, name string, cfg broker.TopicConfig) error {
	if err := broker.ValidateTopicName(name); err != nil {
		return err
	}
	var errs []error
	switch {
	case cfg.Partitions < 1:
		errs = append(errs, fmt.Errorf("%w: %d", broker.ErrInvalidPartitions, cfg.Partitions))
	case cfg.Partitions > MaxPartitions:
		errs = append(errs, fmt.Errorf("%w: %d, at most %d allowed", broker.ErrInvalidPartitions, cfg.Partitions, MaxPartitions))
	}
	if !cfg.Cleanup.Valid() {
		errs = append(errs, fmt.Errorf("%w: unknown cleanup policy %d", broker.ErrInvalidConfig, cfg.Cleanup))
	}
	if cfg.DeleteRetention < 0 {
		errs = append(errs, fmt.Errorf("%w: negative delete retention %v", broker.ErrInvalidConfig, cfg.DeleteRetention))
	}
	if len(errs) > 0 {
		return &broker.TopicError{Topic: name, Partition: -1, Err: errors.Join(errs...)}
	}
	if cfg.RetentionTime == 0 {
		cfg.RetentionTime = broker.DefaultRetentionTime
	}
	if cfg.DeleteRetention == 0 {
		cfg.DeleteRetention = broker.DefaultDeleteRetention
	}
	if cfg.RetentionBytes < 0 {
		cfg.RetentionBytes = 0
	}
	return b.submit(ctx, &writeOp{kind: opCreateTopic, topic: name, cfg: cfg})
}

// DeleteTopic deletes a topic with its records and the group offsets stored
// for it. Fetches waiting on it return an error matching
// broker.ErrUnknownTopic. A topic created later with the same name starts
// empty at offset 0.
func (b *Broker) DeleteTopic(ctx context.Context, name string) error {
	if err := broker.ValidateTopicName(name); err != nil {
		return err
	}
	return b.submit(ctx, &writeOp{kind: opDeleteTopic, topic: name})
}

// ListTopics lists the topics sorted by name.
func (b *Broker) ListTopics(ctx context.Context) ([]broker.TopicInfo, error) {
	if err := b.enter(); err != nil {
		return nil, err
	}
	defer b.leave()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.RLock()
	out := make([]broker.TopicInfo, 0, len(b.mu.topics))
	for _, t := range b.mu.topics {
		out = append(out, broker.TopicInfo{Name: t.name, Config: t.cfg})
	}
	b.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// DescribeTopic returns a topic's configuration with defaults applied.
func (b *Broker) DescribeTopic(ctx context.Context, name string) (broker.TopicInfo, error) {
	if err := b.enter(); err != nil {
		return broker.TopicInfo{}, err
	}
	defer b.leave()
	if err := ctx.Err(); err != nil {
		return broker.TopicInfo{}, err
	}
	t, err := b.lookup(name)
	if err != nil {
		return broker.TopicInfo{}, err
	}
	return broker.TopicInfo{Name: t.name, Config: t.cfg}, nil
}

// Produce appends records; see broker.Broker. All records of the call are
// checked first (topics, partitions, sizes): if any is refused, nothing is
// written. It returns once the records are durable under the sync policy
// (see WithSyncInterval). Once the call is handed to the writer, it waits
// for the outcome even if ctx ends, so that a nil error always means the
// records are stored.
func (b *Broker) Produce(ctx context.Context, records []broker.Record) error {
	if len(records) == 0 {
		if err := b.enter(); err != nil {
			return err
		}
		b.leave()
		return nil
	}
	return b.submit(ctx, &writeOp{kind: opAppend, records: records})
}

// Commit appends req.Records and stores req.Offsets for req.Group in one
// Pebble batch: all or nothing. With a non-zero Generation it fails with
// broker.ErrFenced unless the group is at that generation and MemberID is
// one of its members, checked atomically with the write.
func (b *Broker) Commit(ctx context.Context, req broker.CommitRequest) error {
	if len(req.Offsets) > 0 && req.Group == "" {
		return fmt.Errorf("%w: commit of offsets needs a group", broker.ErrInvalidConfig)
	}
	return b.submit(ctx, &writeOp{kind: opAppend, records: req.Records, group: req.Group,
		generation: req.Generation, member: req.MemberID, offsets: req.Offsets})
}

// CommitOffsets stores group offsets (the next offset to consume) durably.
// Offsets must be >= 0 and name existing partitions.
func (b *Broker) CommitOffsets(ctx context.Context, group string, offsets map[broker.TopicPartition]int64) error {
	if group == "" {
		return fmt.Errorf("%w: empty group", broker.ErrInvalidConfig)
	}
	return b.submit(ctx, &writeOp{kind: opAppend, group: group, offsets: offsets})
}

// FetchOffsets returns group's stored offsets for partitions; partitions
// without one are absent. Unknown topics or partitions give an error.
func (b *Broker) FetchOffsets(ctx context.Context, group string, partitions []broker.TopicPartition) (map[broker.TopicPartition]int64, error) {
	if err := b.enter(); err != nil {
		return nil, err
	}
	defer b.leave()
	// A barrier through the writer: every commit accepted before this call
	// (in particular one that passed its generation check just before a
	// rebalance) is published before the offsets are read, so a new owner
	// never resumes from offsets older than an accepted commit. Kafka's
	// OffsetFetch with RequireStable behaves the same way.
	if err := b.submitEntered(ctx, &writeOp{kind: opBarrier}); err != nil {
		return nil, err
	}
	out := make(map[broker.TopicPartition]int64, len(partitions))
	for _, tp := range partitions {
		p, err := b.lookupPartition(tp.Topic, tp.Partition)
		if err != nil {
			return nil, err
		}
		p.mu.Lock()
		off, ok := p.groups[group]
		p.mu.Unlock()
		if ok {
			out[tp] = off
		}
	}
	return out, nil
}

// ListOffsets returns the earliest and latest offsets of a partition.
// Earliest is the log start: the first offset that may still hold a record
// (retention, compaction and DeleteRecords advance it).
func (b *Broker) ListOffsets(ctx context.Context, topic string, partition int32) (broker.Offsets, error) {
	if err := b.enter(); err != nil {
		return broker.Offsets{}, err
	}
	defer b.leave()
	if err := ctx.Err(); err != nil {
		return broker.Offsets{}, err
	}
	p, err := b.lookupPartition(topic, partition)
	if err != nil {
		return broker.Offsets{}, err
	}
	st, _, _ := p.snapshot()
	return broker.Offsets{Earliest: st.logStart, Latest: st.next}, nil
}

// MaxRecordBytes is the record size limit set by [WithMaxRecordBytes]; it
// implements broker.RecordLimiter.
func (b *Broker) MaxRecordBytes() int { return b.cfg.maxRecordBytes }

// Close stops the broker: blocked Fetch calls return broker.ErrClosed, calls
// in flight finish, group memberships end (their Assignments channels close),
// the writer and background goroutines exit, the memtables are flushed to
// sstables (so that a cleanly closed directory holds nothing that exists
// only in a write-ahead log), and the database is closed and unlocked.
// After a failed write (see WithSyncInterval) nothing is flushed. Later
// calls return broker.ErrClosed; Close is idempotent.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		close(b.closing)
		b.closeMu.Lock()
		b.closed = true
		b.closeMu.Unlock()
		close(b.stopWriter)
		<-b.writerDone
		<-b.syncerDone
		b.bg.Wait()
		b.groups.closeAll()
		var errs []error
		// The flush needs room for its sstables: on a disk the guard says
		// is full, Pebble would retry a failed flush forever, so the
		// directory is left depending on its (synced) write-ahead log,
		// as before flushes on Close.
		if b.failed.Load() == nil && b.space.Failed() == nil && b.space.AdmitSmall() == nil {
			if err := b.flushDB(); err != nil {
				errs = append(errs, fmt.Errorf("embedded: flush on close: %w", err))
			} else if err := b.acks.write(); err != nil {
				errs = append(errs, err)
			}
		}
		if err := b.acks.close(); err != nil {
			errs = append(errs, fmt.Errorf("embedded: close acknowledgement record: %w", err))
		}
		if err := b.db.Close(); err != nil {
			// On a nearly full disk the flush above can leave Pebble a new
			// write-ahead log it then fails to finish: a disk-full error,
			// after which every acknowledged write is on disk still (in
			// the sstables the flush wrote, or the synced older logs).
			errs = append(errs, fmt.Errorf("embedded: close database: %w", diskFull(err)))
		}
		if err := b.lock.Close(); err != nil {
			errs = append(errs, fmt.Errorf("embedded: unlock %q: %w", b.dir, err))
		}
		b.closeErr = errors.Join(errs...)
	})
	return b.closeErr
}

// syncLoop syncs the write-ahead log every sync interval.
func (b *Broker) syncLoop() {
	defer b.bg.Done()
	defer enterRecoverable()()
	tick := time.NewTicker(b.cfg.syncInterval)
	defer tick.Stop()
	for {
		select {
		case <-b.closing:
			return
		case <-tick.C:
		}
		// The writer syncs, so that it learns of a failed sync before it
		// writes again: after a failed WAL write or sync Pebble panics on
		// the next commit. The writer refuses every later write.
		if err := b.submit(context.Background(), &writeOp{kind: opSync}); err != nil {
			return // closed, or failed: no write will be accepted again
		}
	}
}

// flushDB writes the memtables to sstables and waits for it.
func (b *Broker) flushDB() (err error) {
	defer enterRecoverable()()
	defer recoverFatal(&err)
	return b.db.Flush()
}

// syncWAL makes every write acknowledged so far durable.
func (b *Broker) syncWAL() (err error) {
	defer recoverFatal(&err)
	return b.db.LogData(nil, pebble.Sync)
}

func beUint64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}
