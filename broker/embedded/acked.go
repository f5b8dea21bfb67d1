package embedded

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/duality-streams/duality/broker"
)

// Pebble recovers the valid prefix of its newest write-ahead log and cannot
// tell damage there from a write torn by a crash unless a later block of
// the same log says that more was synced; it does not notice an older log
// that is missing or empty at all. Either way acknowledged writes would
// vanish without an error. Two checks at Open close that gap:
//
// The write chain. Every Pebble batch the writer commits (a group of
// appends and offset commits, a topic creation or deletion) has a sequence
// number n and sets the key mw<n>. After Pebble's replay the chain must be
// contiguous: a hole means that the batches of a missing or damaged log
// are gone while later ones were replayed. Keys whose batches are in
// sstables are trimmed (see writer.trimChain), keeping the last one as the
// anchor for the next.
//
// The acknowledgement record. Once a batch is durable and before it is
// acknowledged (in sync mode; at each interval sync in interval mode), the
// broker writes its sequence number and the next offset of every partition
// into one of two small checksummed files (duality.acked.0 and .1, in turn,
// so that a write torn by a crash leaves the other one whole) and fsyncs
// it. After replay the chain must reach that sequence number and every
// partition that offset: anything less lost acknowledged writes, and Open
// fails with a *LostWritesError naming the partitions and offset ranges.

const ackFilePrefix = "duality.acked."

var ackMagic = [8]byte{'d', 'u', 'a', 'l', 'a', 'c', 'k', 1}

const ackEntryLen = 8 + 4 + 8

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// partID names a partition by topic id, which, unlike the name, is never
// reused.
type partID struct {
	topic uint64
	part  int32
}

// ackRecord is the content of an acknowledgement file.
type ackRecord struct {
	seq  uint64
	next map[partID]int64
}

func ackFileName(slot int) string { return fmt.Sprintf("%s%d", ackFilePrefix, slot) }

func encodeAck(dst []byte, seq uint64, next map[partID]int64) []byte {
	dst = append(dst[:0], ackMagic[:]...)
	dst = binary.BigEndian.AppendUint64(dst, seq)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(next)))
	for id, n := range next {
		dst = binary.BigEndian.AppendUint64(dst, id.topic)
		dst = binary.BigEndian.AppendUint32(dst, uint32(id.part))
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst, crcTable))
}

// decodeAck decodes an acknowledgement file; trailing bytes after the
// checksum (left by a longer earlier record) are ignored.
func decodeAck(b []byte) (ackRecord, error) {
	const head = 8 + 8 + 4
	if len(b) < head+4 || [8]byte(b[:8]) != ackMagic {
		return ackRecord{}, errors.New("not an acknowledgement record")
	}
	n := int(binary.BigEndian.Uint32(b[16:]))
	end := head + n*ackEntryLen
	if n < 0 || n > (len(b)-head-4)/ackEntryLen {
		return ackRecord{}, fmt.Errorf("record of %d partitions in %d bytes", n, len(b))
	}
	if crc32.Checksum(b[:end], crcTable) != binary.BigEndian.Uint32(b[end:]) {
		return ackRecord{}, errors.New("checksum mismatch")
	}
	r := ackRecord{seq: binary.BigEndian.Uint64(b[8:]), next: make(map[partID]int64, n)}
	for i := range n {
		e := b[head+i*ackEntryLen:]
		r.next[partID{binary.BigEndian.Uint64(e), int32(binary.BigEndian.Uint32(e[8:]))}] = int64(binary.BigEndian.Uint64(e[12:]))
	}
	return r, nil
}

// readAcks reads the acknowledgement files of dir and returns the newest
// valid record and the slot it is in, or -1 and what is wrong with the
// files (missing, empty or damaged) if neither is valid. Whether that is
// damage depends on the write chain (see checkAcked).
func readAcks(fs vfs.FS, dir string) (rec ackRecord, slot int, problem string, err error) {
	slot = -1
	var bad []string
	for s := range 2 {
		name := ackFileName(s)
		data, err := readSmallFile(fs, fs.PathJoin(dir, name))
		switch {
		case errors.Is(err, os.ErrNotExist):
			bad = append(bad, name+" missing")
			continue
		case err != nil:
			return ackRecord{}, -1, "", fmt.Errorf("read %s: %w", name, err)
		case len(data) == 0:
			bad = append(bad, name+" empty")
			continue
		}
		r, err := decodeAck(data)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", name, err))
			continue
		}
		if slot < 0 || r.seq > rec.seq {
			rec, slot = r, s
		}
	}
	return rec, slot, strings.Join(bad, ", "), nil
}

func readSmallFile(fs vfs.FS, name string) ([]byte, error) {
	f, err := fs.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// ackRecorder keeps the acknowledgement record of an open broker. It is
// safe for concurrent use: the writer, the syncer and the recording
// goroutine use it.
type ackRecorder struct {
	fs  vfs.FS
	dir string

	// mu guards the state to record; it is never held during I/O, so
	// noting never waits for a write.
	mu      sync.Mutex
	seq     uint64
	next    map[partID]int64
	deleted map[uint64]bool // topic ids deleted since Open
	dirty   bool            // noted since the last write started

	// wmu serializes the writes.
	wmu   sync.Mutex
	files [2]vfs.File
	slot  int // slot of the next write
	buf   []byte

	kick chan struct{} // wakes the recording goroutine (see run)
}

// openAckRecorder opens (creating) the acknowledgement files; the next
// write goes to the slot other than newest.
func openAckRecorder(fs vfs.FS, dir string, newest int, seq uint64, next map[partID]int64) (*ackRecorder, error) {
	r := &ackRecorder{fs: fs, dir: dir, seq: seq, next: next, deleted: map[uint64]bool{}, kick: make(chan struct{}, 1)}
	if newest == 0 {
		r.slot = 1
	}
	for s := range 2 {
		f, err := fs.OpenReadWrite(fs.PathJoin(dir, ackFileName(s)), vfs.WriteCategoryUnspecified)
		if err != nil {
			_ = r.close()
			return nil, fmt.Errorf("open %s: %w", ackFileName(s), err)
		}
		r.files[s] = f
	}
	if newest < 0 {
		// New files: make their names durable.
		d, err := fs.OpenDir(dir)
		if err == nil {
			err = errors.Join(d.Sync(), d.Close())
		}
		if err != nil {
			_ = r.close()
			return nil, fmt.Errorf("sync data directory: %w", err)
		}
	}
	return r, nil
}

// note records seq and the partition states of pend in memory; a later
// write makes them durable.
func (r *ackRecorder) note(seq uint64, pend []pendingPart) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq = max(r.seq, seq)
	for i := range pend {
		id := partID{pend[i].p.t.id, pend[i].p.num}
		if !r.deleted[id.topic] {
			r.next[id] = max(r.next[id], pend[i].st.next)
		}
	}
	r.dirty = true
}

// noteAsync notes seq and pend and wakes the recording goroutine, which
// writes them soon (see run).
func (r *ackRecorder) noteAsync(seq uint64, pend []pendingPart) {
	r.note(seq, pend)
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// createTopic records a created topic's partitions at offset 0.
func (r *ackRecorder) createTopic(seq uint64, t *topic) error {
	r.mu.Lock()
	r.seq = max(r.seq, seq)
	for _, p := range t.parts {
		r.next[partID{t.id, p.num}] = 0
	}
	r.dirty = true
	r.mu.Unlock()
	return r.write()
}

// deleteTopic forgets a deleted topic's partitions.
func (r *ackRecorder) deleteTopic(seq uint64, t *topic) error {
	r.mu.Lock()
	r.seq = max(r.seq, seq)
	r.deleted[t.id] = true
	for _, p := range t.parts {
		delete(r.next, partID{t.id, p.num})
	}
	r.dirty = true
	r.mu.Unlock()
	return r.write()
}

// write writes and syncs the state noted so far.
func (r *ackRecorder) write() error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	f := r.files[r.slot]
	if f == nil {
		return errors.New("embedded: acknowledgement record closed")
	}
	r.mu.Lock()
	r.buf = encodeAck(r.buf, r.seq, r.next)
	r.dirty = false
	r.mu.Unlock()
	if _, err := f.WriteAt(r.buf, 0); err != nil {
		return fmt.Errorf("embedded: write %s: %w", ackFileName(r.slot), err)
	}
	if err := f.SyncData(); err != nil {
		return fmt.Errorf("embedded: sync %s: %w", ackFileName(r.slot), err)
	}
	r.slot ^= 1
	return nil
}

// ackRecordEvery is the least time between two background writes of the
// acknowledgement record. Its fsync competes with the write-ahead log's for
// the device: written after every sync, it halved the throughput of one
// producer appending batches of 100 (BenchmarkAppend); every 50 ms it
// costs one fsync in about 25.
const ackRecordEvery = 50 * time.Millisecond

// run is the recording goroutine of sync mode: it writes the noted state
// when noteAsync wakes it, at most once per ackRecordEvery, until stop is
// closed. A failed write fails the broker through fail.
func (r *ackRecorder) run(stop <-chan struct{}, fail func(error)) {
	pace := time.NewTimer(0)
	defer pace.Stop()
	for {
		select {
		case <-stop:
			return
		case <-pace.C:
		}
		select {
		case <-stop:
			return
		case <-r.kick:
		}
		pace.Reset(ackRecordEvery)
		r.mu.Lock()
		dirty := r.dirty
		r.mu.Unlock()
		if !dirty {
			continue
		}
		if err := r.write(); err != nil {
			fail(err)
			return
		}
	}
}

func (r *ackRecorder) close() error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	var errs []error
	for s, f := range r.files {
		if f != nil {
			errs = append(errs, f.Close())
			r.files[s] = nil
		}
	}
	return errors.Join(errs...)
}

// LostRange is a range of offsets [From, To) of a partition that was
// acknowledged and is missing.
type LostRange struct {
	Topic     string // the topic's name, or "topic id N" if its metadata is lost too
	Partition int32
	From, To  int64
}

// LostWritesError is returned by Open when writes that were acknowledged
// (or, in interval mode, covered by a completed sync) are missing after
// Pebble's recovery: a write-ahead log was damaged, truncated or deleted.
// It matches broker.ErrCorrupt. Nothing is repaired: the directory is left
// as it is for inspection or restoring from a copy.
type LostWritesError struct {
	// Dir is the data directory.
	Dir string
	// Logs are the write-ahead log files present when Open started: the
	// damage is in one of them or in one that is missing.
	Logs []string
	// Writes describes the missing batches by their sequence numbers,
	// for example "batches 1201-1305 of 1305".
	Writes string
	// Partitions are the offset ranges known to be lost, by topic and
	// partition. Empty when only the sequence numbers show the loss (a hole
	// in the middle of a log's writes moves no partition's end).
	Partitions []LostRange
}

// Error describes the loss: the directory, the missing batches, the logs
// present and up to eight lost offset ranges.
func (e *LostWritesError) Error() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%v: acknowledged writes lost in the write-ahead log of %s: %s", broker.ErrCorrupt, e.Dir, e.Writes)
	if len(e.Logs) > 0 {
		fmt.Fprintf(&sb, " (logs present: %s)", strings.Join(e.Logs, ", "))
	} else {
		sb.WriteString(" (no write-ahead log present)")
	}
	for i, r := range e.Partitions {
		if i == 0 {
			sb.WriteString("; lost offsets:")
		}
		if i == 8 {
			fmt.Fprintf(&sb, " and %d more", len(e.Partitions)-i)
			break
		}
		fmt.Fprintf(&sb, " %s/%d [%d, %d)", r.Topic, r.Partition, r.From, r.To)
	}
	return sb.String()
}

// Unwrap returns broker.ErrCorrupt.
func (e *LostWritesError) Unwrap() error { return broker.ErrCorrupt }

// listLogs returns the names of the write-ahead logs in dir, sorted.
func listLogs(fs vfs.FS, dir string) []string {
	names, err := fs.List(dir)
	if err != nil {
		return nil
	}
	var logs []string
	for _, n := range names {
		if strings.HasSuffix(n, ".log") {
			logs = append(logs, n)
		}
	}
	sort.Strings(logs)
	return logs
}

// ackState is what Open read of the chain and the record.
type ackState struct {
	rec         ackRecord
	slot        int    // of rec; -1 if none
	problem     string // without rec: what is wrong with the files
	first, last uint64
	holes       [][2]uint64
	chained     bool
}

// readAckState reads the record and the chain.
func (b *Broker) readAckState() (*ackState, error) {
	var s ackState
	var err error
	s.rec, s.slot, s.problem, err = readAcks(b.cfg.fs, b.dir)
	if err != nil {
		return nil, err
	}
	s.first, s.last, s.holes, s.chained, err = b.readChain()
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// checkAcked runs the checks described at the top of this file, those of
// the partitions only if the topics were loaded. It returns a
// *LostWritesError if acknowledged writes are missing.
func (b *Broker) checkAcked(s *ackState, logs []string, loaded bool) error {
	rec, exists, last, holes, chained := s.rec, s.slot >= 0, s.last, s.holes, s.chained
	if !exists && chained {
		// The record is written before the first key of the chain, so
		// a directory with a chain had a valid record.
		return fmt.Errorf("%w: no valid acknowledgement record, so acknowledged writes cannot be checked: %s", broker.ErrCorrupt, s.problem)
	}
	var lost []string
	for _, h := range holes {
		lost = append(lost, fmt.Sprintf("batches %d-%d missing between %d and %d", h[0], h[1], h[0]-1, h[1]+1))
	}
	switch {
	case exists && !chained && rec.seq > 0:
		// Batch 0 is the chain's start, written when the record was
		// created; an Open that stopped in between acknowledged nothing.
		lost = append(lost, fmt.Sprintf("batches 0-%d of %d (the last acknowledged) missing", rec.seq, rec.seq))
	case exists && chained && rec.seq > last:
		lost = append(lost, fmt.Sprintf("batches %d-%d of %d (the last acknowledged) missing", last+1, rec.seq, rec.seq))
	}
	byID := map[uint64]*topic{}
	for _, t := range b.mu.topics {
		byID[t.id] = t
	}
	var parts []LostRange
	for id, next := range rec.next {
		if !loaded {
			break
		}
		t := byID[id.topic]
		switch {
		case t == nil && next > 0 && (!chained || last <= rec.seq):
			// A topic deleted after the record was written is not lost:
			// its deletion is a later batch (last > rec.seq).
			parts = append(parts, LostRange{Topic: fmt.Sprintf("topic id %d", id.topic), Partition: id.part, From: 0, To: next})
		case t != nil && int(id.part) < len(t.parts) && t.parts[id.part].state.next < next:
			parts = append(parts, LostRange{Topic: t.name, Partition: id.part, From: t.parts[id.part].state.next, To: next})
		}
	}
	if len(parts) > 0 && len(lost) == 0 {
		lost = append(lost, "partitions end before their acknowledged offsets")
	}
	if len(lost) > 0 {
		slices.SortFunc(parts, func(a, b LostRange) int {
			return cmpOrdered(a.Topic, b.Topic)*2 + cmpOrdered(a.Partition, b.Partition)
		})
		return &LostWritesError{Dir: b.dir, Logs: logs, Writes: strings.Join(lost, "; "), Partitions: parts}
	}
	return nil
}

// startAcked trims the chain to its last key (every replayed batch is in
// sstables now), writes the record of the current state and starts the
// recorder.
func (b *Broker) startAcked(s *ackState) error {
	rec, slot, first, last, chained := s.rec, s.slot, s.first, s.last, s.chained
	if !chained {
		last = rec.seq
	}
	batch := b.db.NewBatch()
	defer batch.Close()
	if chained && first < last {
		_ = batch.DeleteRange(chainKey(first), chainKey(last), nil)
	}
	if !chained {
		_ = batch.Set(chainKey(last), nil, nil)
	}
	for _, span := range b.orphans {
		_ = batch.DeleteRange(span[0], span[1], nil)
	}
	b.orphans = nil
	next := map[partID]int64{}
	for _, t := range b.mu.topics {
		for _, p := range t.parts {
			next[partID{t.id, p.num}] = p.state.next
		}
	}
	var err error
	b.acks, err = openAckRecorder(b.cfg.fs, b.dir, slot, last, next)
	if err != nil {
		return err
	}
	// The record first: a chain without a record is damage.
	if err := b.acks.write(); err != nil {
		return err
	}
	if batch.Count() > 0 {
		if err := b.db.Apply(batch, pebble.Sync); err != nil {
			return fmt.Errorf("write chain: %w", err)
		}
	}
	b.w.seq, b.w.chainFirst = last, last
	return nil
}

func cmpOrdered[T int32 | string](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// readChain reads the write chain: its first and last sequence numbers,
// the holes in it (inclusive ranges) and whether it has any key.
func (b *Broker) readChain() (first, last uint64, holes [][2]uint64, chained bool, err error) {
	it, err := b.db.NewIter(&pebble.IterOptions{LowerBound: chainPrefix, UpperBound: chainEnd})
	if err != nil {
		return 0, 0, nil, false, wrapRead("read write chain", err)
	}
	defer it.Close()
	for valid := it.First(); valid; valid = it.Next() {
		k := it.Key()
		if len(k) != len(chainPrefix)+8 {
			return 0, 0, nil, false, fmt.Errorf("%w: write chain key %x", broker.ErrCorrupt, k)
		}
		seq := binary.BigEndian.Uint64(k[len(chainPrefix):])
		switch {
		case !chained:
			first, chained = seq, true
		case seq != last+1:
			holes = append(holes, [2]uint64{last + 1, seq - 1})
		}
		last = seq
	}
	return first, last, holes, chained, wrapRead("read write chain", it.Error())
}
