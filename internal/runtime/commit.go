package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/duality-streams/duality/broker"
)

// maybeCommit commits, between two records or punctuations, when the
// uncommitted output or the record caches are over their bounds, or
// (unless w is untimed) once CommitInterval has passed since the last
// commit and that commit has finished: a slow step does not hold a commit
// back until the fetched batch is processed, and a slow broker does not
// hold processing back (the worker goes on until the commit in flight
// ends). It reads the clock about every clockEvery (see commitDue).
func (w *worker) maybeCommit(ctx context.Context) (fenced bool, err error) {
	full := w.cacheMax > 0 && w.cacheBytes > w.cacheMax
	due := false
	if !w.untimed {
		if w.clockSkip > 0 {
			w.clockSkip--
		} else {
			due = w.commitDue()
		}
	}
	if full || due || len(w.out)+w.pending > w.app.cfg.MaxUncommittedRecords {
		if full {
			w.app.m.cacheFlushes.Add(1)
		}
		return w.commit(ctx, w.genNum, nil, false)
	}
	return false, nil
}

// clockEvery is about the most time that passes between two readings of
// the clock by maybeCommit; maxClockSkip bounds the records it processes
// in between. Reading the clock costs tens of nanoseconds, more than a
// fast record's steps (it took 4% of a stateless map and filter's CPU
// when read for every record); a commit comes at most clockEvery late.
const (
	clockEvery   = time.Millisecond
	maxClockSkip = 63
)

// commitDue reads the clock and reports whether CommitInterval has passed
// since the last commit and the commit in flight, if any, has finished.
// It sets clockSkip, the number of calls of maybeCommit that do not read
// the clock before the next that does, from the time the calls since the
// last reading took each, so that readings are about clockEvery apart.
func (w *worker) commitDue() bool {
	now := time.Since(clockBase) // the monotonic clock alone
	if w.clockCalls > 0 {
		per := (now - w.clockAt) / time.Duration(w.clockCalls)
		w.clockSkip = maxClockSkip
		if per > 0 {
			w.clockSkip = max(int(min(clockEvery/per, maxClockSkip+1))-1, 0)
		}
	}
	w.clockAt, w.clockCalls = now, w.clockSkip+1
	return now-w.last.Sub(clockBase) >= w.app.cfg.CommitInterval &&
		(w.inflight == nil || len(w.inflight.done) > 0)
}

// clockBase is the origin of the monotonic readings of commitDue.
var clockBase = time.Now()

// collectBytes is the size of a record (key and value) from which the
// worker collects garbage before its next commit (see commit): a full
// collection costs little next to processing and storing that many bytes.
const collectBytes = 32 << 20

// commit flushes the tasks and commits their buffered output and input
// offsets in generation gen, in the background unless wait is set: the
// worker goes on processing into a second buffer while the broker writes.
// At most one commit is in flight; commit first waits for the previous one,
// so the worker's commits apply in order.
//
// When keep is not nil, only the work of tasks whose partitions are all in
// keep is committed; the rest is dropped (a rebalance moved it to another
// member, which redoes it from the committed offsets). A fenced commit
// drops all uncommitted work and returns fenced: work processed after it
// must not be committed, or the fenced records would be lost.
func (w *worker) commit(ctx context.Context, gen int64, keep map[broker.TopicPartition]bool, wait bool) (fenced bool, err error) {
	if w.refused != nil {
		return true, nil // nothing commits before the held commit (see onFenced)
	}
	for _, t := range w.tasks {
		if t.proc == nil {
			continue // not created: the generation stopped during a restore
		}
		err := t.proc.Flush(ctx)
		if pe := t.itemFailure(); pe != nil {
			return false, pe
		}
		if err != nil {
			return false, fmt.Errorf("task %s: flush: %w", t.id, err)
		}
	}
	if fenced, err = w.await(); err != nil || fenced {
		if errors.Is(err, ErrShutdownTimeout) && w.dirty() {
			err = fmt.Errorf("%w; dropped the uncommitted work after it: %s", err, w.uncommitted())
		}
		if w.refused == nil {
			w.drop()
		}
		return fenced, err
	}
	if !w.dirty() {
		w.last = time.Now()
		return false, nil
	}
	collectAfter := false
	if w.collect {
		// The large records processed since the last commit are
		// garbage now, and the Go collector would run only once the
		// heap doubled: at least one more copy of each in memory while
		// the broker copies the output. Collecting now lets the
		// commit's buffers reuse their memory. The fetches whose records
		// are all processed are handed back first: until then their
		// records hold the large values (see recycle).
		w.collect = false
		w.recycle()
		goruntime.GC()
		collectAfter = true
	}
	offsets := make(map[broker.TopicPartition]int64, len(w.parts))
	// The commit takes the buffers: out, and owner, where owner[i] is
	// the index of the task of out[i], changelog records included,
	// should the commit be held and committed again (recommit).
	out, owner := w.out, w.owner
	var kept []bool
	if keep != nil {
		kept = make([]bool, len(w.tasks))
		for i, t := range w.tasks {
			kept[i] = true
			for _, ps := range t.parts {
				kept[i] = kept[i] && keep[ps.tp]
			}
			if !kept[i] {
				t.log.Debug("task revoked by a rebalance: dropping its uncommitted work")
			}
		}
		n := 0
		for i := range out {
			if kept[owner[i]] {
				out[n], owner[n] = out[i], owner[i]
				n++
			}
		}
		clear(out[n:])
		out, owner = out[:n], owner[:n]
		for i, t := range w.tasks {
			if kept[i] {
				addOffsets(offsets, t)
			}
		}
	} else {
		for _, t := range w.tasks {
			addOffsets(offsets, t)
		}
	}
	outLen := len(out)
	var states []*taskStore
	changelog := 0
	for i, t := range w.tasks {
		for _, s := range t.stores {
			if keep != nil && !kept[i] {
				s.discard()
				continue
			}
			if s.dirty() {
				states = append(states, s)
				n := len(out)
				out = s.appendChangelog(out)
				changelog += len(out) - n
				for range len(out) - n {
					owner = append(owner, t.idx)
				}
			}
			s.handOff()
		}
	}
	// Hand the buffers to the commit and continue in the spare ones.
	w.out, w.owner, w.spare, w.spareOwner = w.spare[:0], w.spareOwner[:0], nil, nil
	w.advanced = false
	w.last = time.Now()
	if len(out) == 0 && len(offsets) == 0 {
		w.spare, w.spareOwner = out, owner
		// Only range deletions (no changelog records, no input position):
		// nothing to commit to the broker, so apply them now.
		for _, s := range states {
			if err := s.applySent(); err != nil {
				return false, err
			}
		}
		return false, nil
	}
	c := &inflight{records: out, owner: owner, outLen: outLen, offsets: offsets, gen: gen, states: states, changelog: changelog, collect: collectAfter}
	c.produced = w.producedBy(owner[:outLen])
	w.launch(ctx, c)
	if wait {
		return w.await()
	}
	return false, nil
}

// busyOut and jumpOut bound the growth of a worker's output buffer (see
// growOut): a buffer full at busyOut records or more takes the capacity
// of a whole commit, at most jumpOut records (16 MiB), at once.
const (
	busyOut = 4096
	jumpOut = 1 << 17
)

// growOut makes room for more records in the output buffer, which is
// full (and in owner, which has its length). Up to busyOut records
// append grows it; past that it takes the capacity of a whole commit at
// once: MaxUncommittedRecords records and one more (the record that
// makes the commit due), at most jumpOut, beyond which append grows it
// again. Growing step by step (by a quarter at that size) copies the
// records at each step and leaves the smaller arrays as garbage: about
// five times the buffer in fresh memory on the way to a commit of 100k
// records, whose pages, first touched, cost more than processing the
// records (13 us a page on our VM). The buffers stay with the worker
// across commits (spare), so a busy worker allocates its two, the one
// it fills and the one in flight, once; a commit touches only the pages
// its records take.
func (w *worker) growOut() {
	c, n := cap(w.out), min(w.app.cfg.MaxUncommittedRecords, jumpOut-1)+1 // no overflow at math.MaxInt
	if c < busyOut || c >= n {
		return
	}
	w.out = slices.Grow(w.out, n-len(w.out))
	w.owner = slices.Grow(w.owner, n-len(w.owner))
}

// launch starts the broker commit of c on a goroutine of its own.
func (w *worker) launch(ctx context.Context, c *inflight) {
	c.done = make(chan error, 1)
	c.settled = false
	c.applyErrs = nil
	if len(c.states) > 0 {
		c.applyErrs = make([]error, len(c.states))
	}
	w.inflight = c
	// Queries of the stores wait from before the broker makes the
	// offsets visible until the stores hold the writes (see
	// commitFence).
	for _, s := range c.states {
		s.fence.hold()
	}
	gen, offsets := c.gen, c.offsets
	go func() {
		start := time.Now()
		err := w.slot.com.Commit(ctx, broker.CommitRequest{
			Records:    c.records,
			Group:      w.app.appID,
			Generation: gen,
			MemberID:   w.memberID,
			Offsets:    offsets,
		})
		if err == nil {
			took := time.Since(start)
			w.app.m.commits.Add(1)
			w.app.m.produced.Add(uint64(len(c.records)))
			w.app.m.changelog.Add(uint64(c.changelog))
			w.app.m.lastCommit.Store(int64(took))
			w.app.obs.committed(c.produced, took, len(c.records))
		}
		c.settle(err == nil)
		c.done <- err
	}()
}

// inflight is a commit running in the background.
type inflight struct {
	records []broker.Record
	// owner[i] is the index of the task records[i] is of; the first
	// outLen records are output, the others changelog records.
	owner   []int32
	outLen  int
	offsets map[broker.TopicPartition]int64 // the input offsets it commits
	gen     int64
	states  []*taskStore // stores whose writes the commit logs
	// changelog is the number of changelog records among records.
	changelog int
	// collect says the commit holds a large record (see collectBytes):
	// await collects garbage once it is done.
	collect bool
	// produced are the output records of each task among records.
	produced []taskOutput
	done     chan error

	// mu orders settle, on the commit's goroutine, and abandon: once
	// abandoned, the goroutine leaves the stores alone (the worker
	// closes them).
	mu        sync.Mutex
	settled   bool
	applyErrs []error // applyErrs[i]: writing states[i] failed
}

// settle ends the commit's hold on its stores, once: when the broker
// commit succeeded (ok) it first writes each store's writes with the
// offset the broker gave its last changelog record, so that queries see
// them as soon as the offsets are visible; otherwise the stores stay as
// they were. It runs on the commit's goroutine, and from abandon.
func (c *inflight) settle(ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.settled {
		return
	}
	c.settled = true
	if ok && len(c.states) > 0 {
		for i := range c.records {
			r := &c.records[i]
			for _, s := range c.states {
				if s.changelog == r.Topic && s.t.id.Partition == r.Partition {
					s.sentOff = r.Offset
					break
				}
			}
		}
		for i, s := range c.states {
			c.applyErrs[i] = s.writeSent()
		}
	}
	for _, s := range c.states {
		s.fence.release()
	}
}

// await waits for the commit in flight, if any, and returns its outcome.
// It gives up at the shutdown's deadline (see shutdown): the commit is
// then abandoned, and the error (matching ErrShutdownTimeout) says what
// it held.
func (w *worker) await() (fenced bool, err error) {
	c := w.inflight
	if c == nil {
		return false, nil
	}
	w.inflight = nil
	select {
	case err = <-c.done:
	case <-w.app.shut.ctx.Done():
		select {
		case err = <-c.done:
		default:
			return false, w.abandon(c)
		}
	}
	if errors.Is(err, broker.ErrFenced) && w.exited != nil && w.app.end == nil {
		// Held for the rebalance that fenced it, if one comes (see
		// onFenced): its stores keep what it sent.
		w.slot.fenced = true // unless committed again
		w.refused = c
		w.app.log.Info("commit fenced by a newer generation: holding it for the rebalance",
			slog.Int64("generation", c.gen), slog.Int("records", len(c.records)))
		return true, nil
	}
	// The commit's goroutine has written the stores (settle) if it
	// succeeded: forget what was sent.
	for i, s := range c.states {
		if err == nil {
			if aerr := c.applyErrs[i]; aerr != nil {
				s.t.noteCorrupt(s.name, aerr)
				err = aerr
			}
		}
		if err == nil {
			s.retireSent()
		} else {
			s.dropSent()
		}
	}
	if err == nil && w.committed != nil {
		w.committed(c.records)
	}
	if err == nil {
		for tp, off := range c.offsets {
			if ps := w.byTP[tp]; ps != nil && ps.purge {
				ps.committed = max(ps.committed, off)
			}
			if ps := w.byTP[tp]; ps != nil && ps.m != nil {
				ps.m.committed.Store(off)
			}
		}
		if e := w.app.end; e != nil {
			e.poke() // the input may be processed now
		}
	}
	clear(c.records)
	if w.spare == nil {
		w.spare, w.spareOwner = c.records[:0], c.owner[:0]
	}
	if c.collect {
		// The commit's large records and the buffers that wrote them
		// (the broker's, the stores' batches) are garbage now. The heap
		// goal was set while they were live: without a collection the
		// heap would grow by their size again, with whatever garbage
		// comes next (Pebble's compactions of them), before the
		// collector runs.
		goruntime.GC()
	}
	if errors.Is(err, broker.ErrFenced) {
		w.slot.fenced = true // replaced before the slot's next worker starts
		w.app.log.Info("commit fenced by a newer generation: dropping uncommitted work",
			slog.Int64("generation", c.gen), slog.Int("records", len(c.records)))
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("commit: %w", err)
	}
	return false, nil
}

// abandon gives up the commit c, still running at the shutdown's
// deadline, and returns the error that says what it held. Its records
// stay with it (the broker may still read them); its stores' writes are
// dropped (restored from the changelog at the next start, whatever the
// commit's outcome).
func (w *worker) abandon(c *inflight) error {
	c.settle(false) // unless the goroutine did
	for _, s := range c.states {
		s.dropSent()
	}
	outcome := "the broker applies such a commit entirely or not at all"
	if w.app.cfg.Guarantee == AtLeastOnce {
		outcome = "at least once: its records may be stored without its offsets, never the offsets without its records"
	}
	return fmt.Errorf("%w: abandoned a commit of generation %d still running: %d records (%d of them changelog) and the input offsets %s of tasks %s; %s",
		w.app.shut.expired(), c.gen, len(c.records), c.changelog, formatOffsets(c.offsets), w.tasksOf(c.offsets), outcome)
}

// uncommitted describes the work of w not handed to a commit yet.
func (w *worker) uncommitted() string {
	offsets := map[broker.TopicPartition]int64{}
	for _, t := range w.tasks {
		addOffsets(offsets, t)
	}
	return fmt.Sprintf("%d output records, %d changelog records, and the input offsets %s of tasks %s",
		len(w.out), w.pending, formatOffsets(offsets), w.tasksOf(offsets))
}

// tasksOf returns the ids of the tasks of w that read the partitions of
// offsets, sorted.
func (w *worker) tasksOf(offsets map[broker.TopicPartition]int64) string {
	var ids []string
	for tp := range offsets {
		if ps := w.byTP[tp]; ps != nil && !slices.Contains(ids, ps.task.id.String()) {
			ids = append(ids, ps.task.id.String())
		}
	}
	slices.Sort(ids)
	return "[" + strings.Join(ids, " ") + "]"
}

// formatOffsets returns offsets as "[topic/partition@offset ...]", sorted.
func formatOffsets(offsets map[broker.TopicPartition]int64) string {
	s := make([]string, 0, len(offsets))
	for tp, off := range offsets {
		s = append(s, fmt.Sprintf("%s/%d@%d", tp.Topic, tp.Partition, off))
	}
	slices.Sort(s)
	return "[" + strings.Join(s, " ") + "]"
}

// poll returns the outcome of the commit in flight if it has finished.
func (w *worker) poll() (fenced bool, err error) {
	if c := w.inflight; c != nil && len(c.done) > 0 {
		return w.await()
	}
	return false, nil
}

// drop discards the uncommitted work.
func (w *worker) drop() {
	for _, t := range w.tasks {
		for _, s := range t.stores {
			s.discard()
		}
	}
	clear(w.out)
	w.out, w.owner = w.out[:0], w.owner[:0]
	w.advanced = false
}

func addOffsets(offsets map[broker.TopicPartition]int64, t *task) {
	for _, ps := range t.parts {
		if ps.known {
			offsets[ps.tp] = ps.next
		}
	}
}
