package embedded

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/logfmt"
)

// Every change to the database goes through one writer goroutine. It takes
// all queued operations, stages them into one Pebble batch and commits it.
// In interval mode it then publishes the new partition states, wakes
// long-polling fetchers and acknowledges the operations. In sync mode it
// hands the group to the syncer goroutine, which does that once the
// write-ahead log sync covering the group is done, while the writer goes
// on with the next groups (Pebble shares one fsync among the groups in
// flight). Offsets are assigned by the writer alone, so they are
// contiguous; they are published only after the commit (and sync), so
// readers never see an unacknowledged record, and a failed commit fails
// every later write, so offsets never gap or get reused.

type opKind uint8

const (
	opAppend      opKind = iota // Produce, Commit, CommitOffsets
	opCreateTopic               // CreateTopic
	opDeleteTopic               // DeleteTopic
	opCleanup                   // a retention or compaction edit
	opSync                      // the interval-mode WAL sync
	opBarrier                   // acknowledged once every earlier write is published
)

// writeOp is one request to the writer.
type writeOp struct {
	kind opKind

	// opAppend.
	records    []broker.Record
	group      string
	generation int64
	member     string
	offsets    map[broker.TopicPartition]int64
	staged     []stagedOffset // offsets, resolved by the writer; published with the records

	// opCreateTopic, opDeleteTopic.
	topic string
	cfg   broker.TopicConfig

	// opCleanup.
	edit *cleanupEdit

	done chan error // buffered; receives the outcome once
}

// MaxCallBytes bounds the records of one Produce or Commit call (keys,
// values, headers and per-record overhead): a larger call fails with an
// error matching broker.ErrRecordTooLarge. Pebble cannot commit a batch of
// 4 GiB or more.
const MaxCallBytes = 1 << 30

var maxCallBytes = MaxCallBytes // lowered by tests

// Group limits: the writer stops draining the queue when a group reaches
// either, so that one commit stays bounded.
const (
	maxGroupOps   = 1024
	maxGroupBytes = 64 << 20
)

// submit hands op to the writer and waits for its outcome. Once handed over,
// it waits even if ctx ends: the writer always answers promptly, and the
// caller must learn whether the write happened.
func (b *Broker) submit(ctx context.Context, op *writeOp) error {
	if err := b.enter(); err != nil {
		return err
	}
	defer b.leave()
	return b.submitEntered(ctx, op)
}

// submitEntered is submit for a caller that already called enter.
func (b *Broker) submitEntered(ctx context.Context, op *writeOp) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	op.done = make(chan error, 1)
	select {
	case b.writeCh <- op:
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-op.done
}

// stagedOffset is a group offset staged by an op, published with it.
type stagedOffset struct {
	p     *partition
	group string
	off   int64
}

// pendingPart is the staged state of a partition touched by the group.
type pendingPart struct {
	p  *partition
	st partitionValue
}

// writer is the state of the writer goroutine.
type writer struct {
	b           *Broker
	nextTopicID uint64

	batch *pebble.Batch
	ops   []*writeOp // staged in batch, acknowledged by flush
	pend  []pendingPart
	index map[*partition]int // into pend

	lastLen int // size of the last group's batch, to size the next one

	// seq is the sequence number of the last batch committed; chainFirst
	// the first key of the write chain not trimmed; trimWait counts the
	// groups since trimChain last looked (see acked.go).
	seq, chainFirst uint64
	trimWait        int

	groupRecords, groupBytes uint64 // appended by the staged group

	// Scratch space reused across operations.
	parts []*partition
	order []*partition
	idx   []int // the indexes of an op's records, by partition (stageRecords)
	recs  []broker.Record
	key   []byte
	chunk []byte // a chunk being encoded for an sstable (ingest.go)

	// ingested are the batches whose chunks the staged group ingested.
	ingested []ingested
}

func (w *writer) init(b *Broker) {
	w.b = b
	w.index = make(map[*partition]int)
}

func (w *writer) run() {
	defer close(w.b.writerDone)
	defer close(w.b.syncCh)
	defer enterRecoverable()()
	for {
		var op *writeOp
		select {
		case op = <-w.b.writeCh:
		case <-w.b.stopWriter:
			// Close waited for every submitter, so the queue is empty;
			// answer anything left regardless.
			for {
				select {
				case op := <-w.b.writeCh:
					op.done <- broker.ErrClosed
				default:
					return
				}
			}
		}
		w.handle(op)
	drain:
		for len(w.ops) < maxGroupOps && (w.batch == nil || w.batch.Len() < maxGroupBytes) {
			select {
			case op = <-w.b.writeCh:
				w.handle(op)
			default:
				break drain
			}
		}
		w.flush()
	}
}

func (w *writer) handle(op *writeOp) {
	if f := w.b.failed.Load(); f != nil {
		if op.kind == opBarrier {
			op.done <- nil // nothing will be published any more; reads go on
			return
		}
		op.done <- *f
		return
	}
	var err error
	switch op.kind {
	case opAppend:
		if w.batch != nil && recordsSize(op.records, nil) >= ingestMin {
			// op may ingest chunks (ingest.go), which can fail (a full
			// disk) after part of op is staged: commit the ops staged
			// before it first, so that such a failure fails op's group
			// alone.
			w.flush()
		}
		err = w.stageAppend(op)
	case opCleanup:
		err = w.stageCleanup(op.edit)
	case opCreateTopic:
		w.flush()
		op.done <- w.createTopic(op.topic, op.cfg)
		return
	case opDeleteTopic:
		w.flush()
		op.done <- w.deleteTopic(op.topic)
		return
	case opBarrier:
		w.flush()
		if w.b.syncEvery {
			// Behind the groups waiting for their sync, with nothing to
			// write or sync itself.
			w.b.syncCh <- &commitGroup{ops: []*writeOp{op}}
		} else {
			op.done <- nil
		}
		return
	case opSync:
		w.flush()
		w.b.applying.Store(w.seq + 1)
		err := w.b.syncWAL()
		if err != nil {
			// Acknowledged writes may not be durable and Pebble's state
			// is unknown: refuse further writes.
			err = fmt.Errorf("embedded: sync write-ahead log: %w", err)
		} else {
			// Everything noted is durable now: record it.
			err = w.b.acks.write()
		}
		if err != nil {
			op.done <- w.fail(err)
			return
		}
		op.done <- nil
		return
	}
	if err != nil {
		op.done <- err
		return
	}
	w.ops = append(w.ops, op)
}

// pending returns the staged state of p, starting from its committed state.
func (w *writer) pending(p *partition) *partitionValue {
	i, ok := w.index[p]
	if !ok {
		i = len(w.pend)
		w.index[p] = i
		w.pend = append(w.pend, pendingPart{p: p, st: p.wstate})
	}
	return &w.pend[i].st
}

// ensureBatch starts the group's batch when it has none, with room for
// need bytes (the first op's records) or the last group's size.
func (w *writer) ensureBatch(need int) {
	if w.batch == nil {
		// Pebble pools batches; let it keep buffers of large groups too,
		// so that big appends do not regrow one every time. The initial
		// size is given twice: Pebble sizes a batch's first write by
		// doubling its initial size, ignoring the room the batch has, so
		// a 100 MiB record would otherwise take a 128 MiB buffer after
		// the 100 MiB one.
		n := max(w.lastLen, need, 1<<10)
		w.batch = w.b.db.NewBatchWithSize(n, pebble.WithInitialSizeBytes(n), pebble.WithMaxRetainedSizeBytes(16<<20))
	}
}

// recordsSize is the total broker.RecordSize of records[idx] (all of
// records when idx is nil).
func recordsSize(records []broker.Record, idx []int) int {
	n := 0
	if idx != nil {
		for _, i := range idx {
			n += broker.RecordSize(&records[i])
		}
		return n
	}
	for i := range records {
		n += broker.RecordSize(&records[i])
	}
	return n
}

// stagedSize bounds the bytes that staging records, whose partitions are
// w.parts, takes in a batch: the records, their log format's overhead, the
// keys of their batches and metadata, and those of the chunks of large
// batches; but not the records of a partition whose batch is ingested
// (ingest.go), which leave only a stub in the batch.
func (w *writer) stagedSize(records []broker.Record) int {
	n, total := 1<<10, 0
	for i := range records {
		size := broker.RecordSize(&records[i]) + 64 + 16*len(records[i].Headers)
		n += size
		total += size
	}
	if total >= ingestMin {
		per := make(map[*partition]int)
		for i := range records {
			per[w.parts[i]] += broker.RecordSize(&records[i])
		}
		for _, size := range per {
			if size >= ingestMin {
				n -= size
				total -= size
			}
		}
	}
	// A chunked batch of s bytes has at most s/chunkLen+1 chunks, and
	// is over chunkSize: at most total/chunkLen+total/chunkSize in all.
	return n + (total/w.b.cfg.chunkLen+total/chunkSize)*chunkOverhead
}

// stageAppend validates op completely, then stages its records and offsets.
// A refused op stages nothing.
func (w *writer) stageAppend(op *writeOp) error {
	topics := w.b.mu.topics // only this goroutine writes the map
	w.parts = w.parts[:0]
	total := 0
	var t *topic // of the record before: records come in runs of one topic
	for i := range op.records {
		r := &op.records[i]
		if t == nil || r.Topic != t.name {
			if t = topics[r.Topic]; t == nil {
				return unknownTopic(r.Topic)
			}
		}
		n := int32(len(t.parts))
		pn := r.Partition
		switch {
		case pn == broker.PartitionByKey && r.Key == nil:
			pn = int32(t.rr % uint32(n))
			t.rr++
		case pn == broker.PartitionByKey:
			pn = broker.KeyPartition(r.Key, n)
		case pn < 0 || pn >= n:
			return &broker.TopicError{Topic: r.Topic, Partition: pn, Err: fmt.Errorf("%w: topic has %d partitions", broker.ErrUnknownPartition, n)}
		}
		size := broker.RecordSize(r)
		if size > w.b.cfg.maxRecordBytes {
			return &broker.TopicError{Topic: r.Topic, Partition: pn, Err: &broker.RecordTooLargeError{Topic: r.Topic, Size: size, Max: w.b.cfg.maxRecordBytes}}
		}
		if total += size + 16*len(r.Headers) + 32; total > maxCallBytes {
			return fmt.Errorf("%w: the records of one call take more than %d bytes", broker.ErrRecordTooLarge, maxCallBytes)
		}
		w.parts = append(w.parts, t.parts[pn])
	}
	for tp, off := range op.offsets {
		t := topics[tp.Topic]
		if t == nil {
			return unknownTopic(tp.Topic)
		}
		if tp.Partition < 0 || int(tp.Partition) >= len(t.parts) {
			return &broker.TopicError{Topic: tp.Topic, Partition: tp.Partition, Err: fmt.Errorf("%w: topic has %d partitions", broker.ErrUnknownPartition, len(t.parts))}
		}
		if off < 0 {
			return &broker.TopicError{Topic: tp.Topic, Partition: tp.Partition, Err: fmt.Errorf("%w: negative offset %d for group %q", broker.ErrInvalidConfig, off, op.group)}
		}
	}
	if op.generation != 0 {
		if err := w.b.groups.checkMember(op.group, op.generation, op.member); err != nil {
			return err
		}
	}

	// Everything is valid: stage it.
	w.ensureBatch(w.stagedSize(op.records))
	if len(op.records) > 0 {
		if err := w.stageRecords(op.records); err != nil {
			// An internal limit (over 2^32 records) or the ingestion of
			// a huge batch's chunks (a full disk, a Pebble error) can
			// fail here, with part of op staged: the whole group must
			// fail. An op that may ingest starts a group of its own
			// (handle), so this fails no other producer's records.
			w.failGroup(err)
			return err
		}
	}
	for tp, off := range op.offsets {
		t := topics[tp.Topic]
		k := append(partKey(w.key[:0], prefixOffsets, t.id, tp.Partition), op.group...)
		w.key = k
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], uint64(off))
		if err := w.batch.Set(k, v[:], nil); err != nil {
			w.failGroup(err)
			return err
		}
		op.staged = append(op.staged, stagedOffset{p: t.parts[tp.Partition], group: op.group, off: off})
	}
	return nil
}

// stageRecords assigns offsets and stages each partition's records
// (stagePartition).
func (w *writer) stageRecords(records []broker.Record) error {
	now := w.b.cfg.clock()
	first := w.parts[0]
	single := true
	for _, p := range w.parts[1:] {
		if p != first {
			single = false
			break
		}
	}
	if single {
		return w.stagePartition(first, records, nil, now)
	}
	// Group the records' indexes by partition, in the order partitions
	// first appear: count, then place (a counting sort into one buffer).
	w.order = w.order[:0]
	for _, p := range w.parts {
		if p.staged == 0 {
			w.order = append(w.order, p)
		}
		p.staged++
	}
	start := 0
	for _, p := range w.order {
		p.stagedAt, start = start, start+p.staged
		p.staged = 0
	}
	w.idx = slices.Grow(w.idx[:0], len(w.parts))[:len(w.parts)]
	for i, p := range w.parts {
		w.idx[p.stagedAt+p.staged] = i
		p.staged++
	}
	var err error
	for _, p := range w.order {
		if err == nil {
			err = w.stagePartition(p, records, w.idx[p.stagedAt:p.stagedAt+p.staged], now)
		}
		p.staged = 0 // even after an error: the next op starts afresh
	}
	return err
}

// batchLen bounds the batches an append's records for one partition are
// split into (tests change it: config.batchLen); a record over it makes
// a batch alone. One batch per commit and partition was chunked (copied
// first, stageChunked) whenever a commit wrote over chunkSize to one
// partition, 25k records of W1's in a 100k-record commit; and Pebble's
// sstable writer (flushes, compactions) keeps the buffer of a block, a
// batch here, for reuse only up to 256 KiB, as for chunks (chunks.go).
// Records of ingestMin bytes or more for one partition stay one batch,
// which is ingested (ingest.go): split, they would go through the
// write-ahead log and a memtable, two or three times their size in
// memory.
const batchLen = chunkLen

// stagePartition stages records[idx] (all records when idx is nil) at
// the partition's next offsets, in batches of at most batchLen bytes (a
// record over it alone), or in one batch when they take ingestMin bytes
// or more (see batchLen). It sets their Partition and Offset, as Produce
// and Commit document, and encodes them straight into the Pebble batch:
// one copy of their bytes. A batch over chunkSize (one large record) is
// staged in chunks from a copy of the record (stageChunked).
func (w *writer) stagePartition(p *partition, records []broker.Record, idx []int, now time.Time) error {
	st := w.pending(p)
	base := st.next
	n := len(records)
	if idx != nil {
		n = len(idx)
	}
	for i := range n {
		r := &records[i]
		if idx != nil {
			r = &records[idx[i]]
		}
		r.Partition = p.num
		r.Offset = base + int64(i)
	}
	nowMs := now.UnixMilli()
	limit := w.b.cfg.batchLen
	if recordsSize(records, idx) >= ingestMin {
		limit = math.MaxInt
	}
	for done := 0; done < n; {
		recs, sub := records[done:], []int(nil)
		if idx != nil {
			recs, sub = records, idx[done:]
		}
		k, size := logfmt.RecordsFit(recs, sub, nowMs, limit)
		if sub != nil {
			sub = sub[:k]
		} else {
			recs = recs[:k]
		}
		if err := w.stageBatch(p, base+int64(done), recs, sub, now, size); err != nil {
			return &broker.TopicError{Topic: p.t.name, Partition: p.num, Err: err}
		}
		done += k
		st.next = base + int64(done)
		st.bytes += int64(size)
		w.groupRecords += uint64(k)
		w.groupBytes += uint64(size)
	}
	return nil
}

// stageBatch stages records[idx] (all records when idx is nil), whose
// encoding is size bytes, as the batch at offset base of partition p.
func (w *writer) stageBatch(p *partition, base int64, records []broker.Record, idx []int, now time.Time, size int) error {
	if size <= chunkSize {
		w.key = recordKey(w.key[:0], p.t.id, p.num, base)
		op := w.batch.SetDeferred(len(w.key), size)
		copy(op.Key, w.key)
		if _, err := logfmt.AppendRecords(op.Value[:0], base, records, idx, now.UnixMilli(), size); err != nil {
			return err
		}
		return op.Finish()
	}
	n := len(records)
	if idx != nil {
		n = len(idx)
	}
	w.recs = w.recs[:0]
	for i := range n {
		r := &records[i]
		if idx != nil {
			r = &records[idx[i]]
		}
		w.recs = append(w.recs, *r)
		if r.Timestamp.IsZero() {
			w.recs[i].Timestamp = now
		}
	}
	err := w.stageChunked(p, base, size)
	clear(w.recs) // drop references to the caller's slices
	return err
}

// failGroup fails every op staged so far and discards the batch.
func (w *writer) failGroup(err error) {
	w.dropIngested() // before the ops learn of the failure
	for _, op := range w.ops {
		op.done <- err
	}
	w.reset()
}

func (w *writer) reset() {
	w.groupRecords, w.groupBytes = 0, 0
	if cap(w.recs) > 1<<16 {
		w.recs = nil
	}
	if cap(w.idx) > 1<<16 {
		w.idx = nil
	}
	clear(w.ops)
	w.ops = w.ops[:0]
	clear(w.pend)
	w.pend = w.pend[:0]
	clear(w.index)
	clear(w.ingested)
	w.ingested = w.ingested[:0]
	if w.batch != nil {
		_ = w.batch.Close()
		w.batch = nil
	}
}

// apply commits batch, turning a Pebble fatal error into an error.
func (w *writer) apply(batch *pebble.Batch, wo *pebble.WriteOptions) (err error) {
	defer recoverFatal(&err)
	if err := w.b.db.Apply(batch, wo); err != nil {
		return fmt.Errorf("embedded: write: %w", err)
	}
	return nil
}

// applyNoSyncWait writes batch to the write-ahead log and the memtable and
// requests a sync without waiting for it (batch.SyncWait does).
func (w *writer) applyNoSyncWait(batch *pebble.Batch) (err error) {
	defer recoverFatal(&err)
	if err := w.b.db.ApplyNoSyncWait(batch, pebble.Sync); err != nil {
		return fmt.Errorf("embedded: write: %w", err)
	}
	return nil
}

// fail makes the writer refuse all later writes with err: Pebble's state
// after a failed write-ahead log write or sync is unknown, so the broker
// must be reopened. A failure for lack of space matches broker.ErrDiskFull
// (but is not retryable: the broker must be reopened).
func (w *writer) fail(err error) error {
	err = diskFull(err)
	if w.b.failed.CompareAndSwap(nil, &err) {
		w.b.log.Error("embedded: write failed; the broker refuses further writes", "error", err)
	}
	return err
}

// commitGroup is a committed group of operations waiting for its sync.
type commitGroup struct {
	batch          *pebble.Batch
	seq            uint64 // the batch's sequence number
	ops            []*writeOp
	pend           []pendingPart
	records, bytes uint64 // appended, for Metrics
}

// flush commits the staged group. In interval mode it then publishes the
// group and acknowledges its operations at once. In sync mode it hands the
// group to the syncer goroutine, which waits for the write-ahead log sync,
// then publishes and acknowledges; meanwhile the writer goes on staging and
// committing the next groups, whose syncs Pebble combines. Groups are
// published in commit order.
//
// If the commit fails, every op of the group fails, nothing is published,
// and every later write fails too (see fail).
func (w *writer) flush() {
	if w.batch == nil {
		return
	}
	var v [partitionValueLen]byte
	for i := range w.pend {
		pp := &w.pend[i]
		if err := w.batch.Set(partitionKey(pp.p.t.id, pp.p.num), pp.st.appendTo(v[:0]), nil); err != nil {
			w.failGroup(err)
			return
		}
	}
	seq := w.seq + 1
	if err := w.batch.Set(chainKey(seq), nil, nil); err != nil {
		w.failGroup(err)
		return
	}
	w.trimChain(w.batch)
	w.lastLen = min(w.batch.Len(), 16<<20)
	if err := w.admitGroup(); err != nil {
		// Refused before Pebble saw it: nothing written, the broker
		// stays usable.
		w.failGroup(err)
		return
	}
	w.b.applying.Store(seq)
	if !w.b.syncEvery {
		if err := w.apply(w.batch, w.b.wo); err != nil {
			w.failGroup(w.fail(err))
			return
		}
		w.seq = seq
		for i := range w.pend {
			w.pend[i].p.wstate = w.pend[i].st
		}
		// Recorded at the next sync (opSync), which makes it durable.
		w.b.acks.note(seq, w.pend)
		w.b.countGroup(w.ops, w.groupRecords, w.groupBytes)
		publish(w.pend, w.ops)
		w.reset()
		return
	}
	if err := w.applyNoSyncWait(w.batch); err != nil {
		err = w.fail(err)
		for _, op := range w.ops {
			op.done <- err
		}
		// Pebble forbids closing a batch whose sync was requested but not
		// awaited, and after a failed commit awaiting it might block:
		// leave this batch to the garbage collector.
		w.batch = nil
		w.reset()
		return
	}
	w.seq = seq
	for i := range w.pend {
		w.pend[i].p.wstate = w.pend[i].st
	}
	w.b.syncCh <- &commitGroup{batch: w.batch, seq: seq, ops: w.ops, pend: w.pend, records: w.groupRecords, bytes: w.groupBytes}
	w.batch, w.ops, w.pend = nil, nil, nil
	w.reset()
}

// countGroup counts a committed group in the metrics.
func (b *Broker) countGroup(ops []*writeOp, records, bytes uint64) {
	writes := uint64(0)
	for _, op := range ops {
		if op.kind == opAppend {
			writes++
		}
	}
	b.m.commits.Add(1)
	b.m.writes.Add(writes)
	b.m.records.Add(records)
	b.m.bytes.Add(bytes)
}

// publish makes the staged partition states visible, wakes long-polling
// fetchers and acknowledges the operations.
func publish(pend []pendingPart, ops []*writeOp) {
	for i := range pend {
		pp := &pend[i]
		p := pp.p
		p.mu.Lock()
		p.state = pp.st
		close(p.wake)
		p.wake = make(chan struct{})
		p.mu.Unlock()
	}
	for _, op := range ops {
		for _, so := range op.staged {
			so.p.mu.Lock()
			so.p.groups[so.group] = so.off
			so.p.mu.Unlock()
		}
	}
	for _, op := range ops {
		op.done <- nil
	}
}

// syncGroups waits for the sync of each group the writer committed, in
// order, then publishes and acknowledges it. It exits when the writer closes
// syncCh.
func (b *Broker) syncGroups() {
	defer close(b.syncerDone)
	for g := range b.syncCh {
		if g.batch == nil { // a barrier
			g.ops[0].done <- nil
			continue
		}
		err := g.batch.SyncWait()
		if err != nil {
			err = fmt.Errorf("embedded: sync write-ahead log: %w", err)
			b.w.fail(err)
		} else if b.failed.Load() == nil {
			// Durable: record it (see WithAckRecordSync).
			if b.cfg.ackRecordSync {
				b.acks.note(g.seq, g.pend)
				if err = b.acks.write(); err != nil {
					b.w.fail(err)
				}
			} else {
				b.acks.noteAsync(g.seq, g.pend)
			}
		}
		if f := b.failed.Load(); f != nil {
			// A group after a failed one fails too, even if its own sync
			// succeeded: publishing it would leave a gap.
			err = *f
		}
		if err != nil {
			for _, op := range g.ops {
				op.done <- err
			}
		} else {
			b.countGroup(g.ops, g.records, g.bytes)
			publish(g.pend, g.ops)
		}
		_ = g.batch.Close()
	}
}

func (w *writer) createTopic(name string, cfg broker.TopicConfig) error {
	if w.b.mu.topics[name] != nil {
		return &broker.TopicError{Topic: name, Partition: -1, Err: broker.ErrTopicExists}
	}
	if err := w.b.space.Admit(int64(64 + 16*cfg.Partitions)); err != nil {
		return &broker.TopicError{Topic: name, Partition: -1, Err: err}
	}
	id := w.nextTopicID
	batch := w.b.db.NewBatch()
	defer batch.Close()
	_ = batch.Set(topicKey(name), topicValue{id: id, cfg: cfg}.encode(), nil)
	var next [8]byte
	binary.BigEndian.PutUint64(next[:], id+1)
	_ = batch.Set(keyNextTopicID, next[:], nil)
	var v [partitionValueLen]byte
	for p := range cfg.Partitions {
		_ = batch.Set(partitionKey(id, p), partitionValue{}.appendTo(v[:0]), nil)
	}
	seq := w.seq + 1
	_ = batch.Set(chainKey(seq), nil, nil)
	w.b.applying.Store(seq)
	if err := w.apply(batch, pebble.Sync); err != nil {
		return w.fail(err)
	}
	w.seq = seq
	w.nextTopicID++
	t := newTopic(name, id, cfg)
	if err := w.b.acks.createTopic(seq, t); err != nil {
		w.fail(err)
		return err
	}
	w.b.mu.Lock()
	w.b.mu.topics[name] = t
	w.b.mu.Unlock()
	w.b.log.Info("embedded: created topic", "topic", name, "partitions", cfg.Partitions)
	return nil
}

func (w *writer) deleteTopic(name string) error {
	t := w.b.mu.topics[name]
	if t == nil {
		return unknownTopic(name)
	}
	if err := w.b.space.AdmitSmall(); err != nil {
		return &broker.TopicError{Topic: name, Partition: -1, Err: err}
	}
	batch := w.b.db.NewBatch()
	defer batch.Close()
	_ = batch.Delete(topicKey(name), nil)
	for _, prefix := range []byte{prefixPartition, prefixRecords, prefixChunks, prefixOffsets} {
		start, end := topicSpan(prefix, t.id)
		_ = batch.DeleteRange(start, end, nil)
	}
	seq := w.seq + 1
	_ = batch.Set(chainKey(seq), nil, nil)
	w.b.applying.Store(seq)
	if err := w.apply(batch, pebble.Sync); err != nil {
		return w.fail(err)
	}
	w.seq = seq
	if err := w.b.acks.deleteTopic(seq, t); err != nil {
		w.fail(err)
		return err
	}
	w.b.mu.Lock()
	delete(w.b.mu.topics, name)
	w.b.mu.Unlock()
	for _, p := range t.parts {
		p.mu.Lock()
		p.deleted = true
		close(p.wake)
		p.wake = make(chan struct{})
		p.mu.Unlock()
	}
	w.b.log.Info("embedded: deleted topic", "topic", name)
	return nil
}

// trimChain adds to batch the deletion of the write chain's keys whose
// batches are all in sstables (see acked.go), keeping the last of them as
// the anchor of the rest. Those are the batches before the last rotation
// of the write-ahead log once Pebble has flushed every memtable but the
// mutable one; the writer is the only goroutine that commits, so no
// rotation happens between the check and the commit of batch. It looks at
// most once per 64 groups after a rotation, as Metrics takes Pebble's lock.
func (w *writer) trimChain(batch *pebble.Batch) {
	r := w.b.rotatedAt.Load()
	if r < 2 || r-1 <= w.chainFirst {
		return
	}
	if w.trimWait++; w.trimWait < 64 {
		return
	}
	w.trimWait = 0
	if w.b.db.Metrics().MemTable.Count != 1 {
		return
	}
	_ = batch.DeleteRange(chainKey(w.chainFirst), chainKey(r-1), nil)
	w.chainFirst = r - 1
}
