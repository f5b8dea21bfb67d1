package embedded

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/logfmt"
)

// Fetch defaults.
const (
	DefaultFetchMaxRecords = 10000
	DefaultFetchMaxBytes   = 16 << 20
)

// Fetch returns records of the requested partitions from their offsets on;
// see broker.Broker. Records of a partition come in offset order; offsets
// removed by compaction are skipped. When no requested partition has
// records at its offset and opts.MaxWait > 0, Fetch waits until one of them
// gets some, MaxWait passes (returning no records and no error), ctx ends
// (ctx.Err()) or the broker closes (broker.ErrClosed).
//
// The limits of opts are shared fairly: each requested partition first gets
// an equal share, and what is left goes to the partitions with more
// records, in request order; the records of each partition are contiguous
// and partitions come in request order.
//
// Each record's Key and Value are copies owned by the caller (the records
// of one stored batch share one allocation, with capacities clipped).
func (b *Broker) Fetch(ctx context.Context, reqs []broker.FetchRequest, opts broker.FetchOptions) ([]broker.Record, error) {
	return b.fetch(ctx, reqs, opts, nil, nil)
}

// fetch is Fetch. When ends is not nil (len(reqs) long), it sets ends[i]
// to the end of the partition of reqs[i] when the records returned read
// it up to its end (its next offset as of the read), and to -1
// otherwise; after a wait that found nothing, ends are those of the last
// read. A read that finds no records but an end past a requested offset
// returns at once. The records are appended to buf, an empty slice to
// fill again (see consumer.Recycle), when it has room for as many as the
// read may return; otherwise to a new slice.
func (b *Broker) fetch(ctx context.Context, reqs []broker.FetchRequest, opts broker.FetchOptions, ends []int64, buf []broker.Record) ([]broker.Record, error) {
	if opts.MaxRecords <= 0 {
		opts.MaxRecords = DefaultFetchMaxRecords
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultFetchMaxBytes
	}
	var (
		timer *time.Timer
		waits []chan struct{}
		cases []reflect.SelectCase
	)
	b.m.fetches.Add(1)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := b.enter(); err != nil {
			return nil, err
		}
		recs, w, err := b.fetchOnce(reqs, opts, waits[:0], ends, buf)
		b.leave()
		waits = w
		if err != nil || len(recs) > 0 || opts.MaxWait <= 0 || skipped(reqs, ends) {
			b.m.fetched.Add(uint64(len(recs)))
			return recs, err
		}
		b.m.fetchWaits.Add(1)
		if timer == nil {
			timer = time.NewTimer(opts.MaxWait)
			defer timer.Stop()
		}
		if len(waits) == 1 {
			select {
			case <-waits[0]:
				continue
			case <-timer.C:
				return nil, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-b.closing:
				return nil, broker.ErrClosed
			}
		}
		cases = append(cases[:0],
			reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(timer.C)},
			reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())},
			reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(b.closing)},
		)
		for _, c := range waits {
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(c)})
		}
		switch chosen, _, _ := reflect.Select(cases); chosen {
		case 0:
			return nil, nil
		case 1:
			return nil, ctx.Err()
		case 2:
			return nil, broker.ErrClosed
		}
	}
}

// skipped reports whether ends has a partition read to an end past its
// requested offset: offsets without records (compacted) were skipped,
// which the caller learns at once rather than after a wait.
func skipped(reqs []broker.FetchRequest, ends []int64) bool {
	for i, end := range ends {
		if end > reqs[i].Offset {
			return true
		}
	}
	return false
}

// fetchOnce reads what is available without waiting. When it finds no
// records it returns the channels that signal a change of the requested
// partitions, taken atomically with the states it read. It fills ends as
// fetch documents, when not nil, and fills buf as fetch does.
func (b *Broker) fetchOnce(reqs []broker.FetchRequest, opts broker.FetchOptions, waits []chan struct{}, ends []int64, buf []broker.Record) ([]broker.Record, []chan struct{}, error) {
	type span struct {
		p      *partition
		offset int64
		next   int64
		req    int // index in reqs
	}
	for i := range ends {
		ends[i] = -1
	}
	spans := make([]span, 0, len(reqs))
	for i, r := range reqs {
		p, err := b.lookupPartition(r.Topic, r.Partition)
		if err != nil {
			return nil, nil, err
		}
		st, wake, deleted := p.snapshot()
		if deleted {
			return nil, nil, &broker.TopicError{Topic: r.Topic, Partition: -1, Err: broker.ErrUnknownTopic}
		}
		if r.Offset < st.logStart || r.Offset > st.next {
			return nil, nil, &broker.OffsetOutOfRangeError{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset,
				Offsets: broker.Offsets{Earliest: st.logStart, Latest: st.next}}
		}
		waits = append(waits, wake)
		if r.Offset < st.next {
			spans = append(spans, span{p: p, offset: r.Offset, next: st.next, req: i})
		} else if ends != nil {
			ends[i] = st.next
		}
	}
	if len(spans) == 0 {
		return nil, waits, nil
	}
	it, err := b.db.NewIter(nil)
	if err != nil {
		return nil, nil, wrapRead("fetch", err)
	}
	defer it.Close()
	// At most next-offset records per partition: allocate the result once.
	var avail int64
	for _, s := range spans {
		avail += s.next - s.offset
	}
	f := fetcher{it: it, chunks: chunkReader{src: it}, maxRecords: opts.MaxRecords, maxBytes: opts.MaxBytes, out: buf[:0]}
	if want := int(min(avail, int64(opts.MaxRecords))); cap(f.out) < want {
		f.out = make([]broker.Record, 0, want)
	}
	defer f.chunks.close()

	// Fairness: a first pass gives every partition an equal share of the
	// limits, so that one partition with a backlog does not starve the
	// others; a second pass hands what is left to the partitions that had
	// more, in request order. The records of each partition stay
	// contiguous, in request order.
	n := len(spans)
	shareRecords, shareBytes := opts.MaxRecords, opts.MaxBytes
	if n > 1 {
		shareRecords, shareBytes = max(1, opts.MaxRecords/n), max(1, opts.MaxBytes/n)
	}
	type part struct {
		start, end           int // pass-1 records in f.out
		extraStart, extraEnd int // pass-2 records in f.out
		resume               int64
		more                 bool
	}
	parts := make([]part, n)
	for i, s := range spans {
		parts[i].start = len(f.out)
		resume, more, err := f.read(s.p, s.offset, s.next, shareRecords, shareBytes)
		if err != nil {
			return nil, nil, err
		}
		parts[i].end, parts[i].resume, parts[i].more = len(f.out), resume, more
		if f.full {
			break
		}
		if !more && ends != nil {
			ends[s.req] = s.next // read to its end
		}
	}
	pass1 := len(f.out)
	if n > 1 && !f.full {
		for i, s := range spans {
			if !parts[i].more {
				continue
			}
			parts[i].extraStart = len(f.out)
			_, _, err := f.read(s.p, parts[i].resume, s.next, math.MaxInt, math.MaxInt)
			if err != nil {
				return nil, nil, err
			}
			parts[i].extraEnd = len(f.out)
			if f.full {
				break
			}
			if ends != nil {
				ends[s.req] = s.next
			}
		}
	}
	if len(f.out) == 0 {
		// Everything in range was compacted away; wait like at the end.
		return nil, waits, nil
	}
	if len(f.out) == pass1 {
		return f.out, nil, nil
	}
	// Make each partition's records contiguous in place: its pass-2
	// records go right after its pass-1 ones. From the last partition
	// back, every pass-1 run moves right (by the pass-2 records of the
	// partitions before it), over space already moved out of.
	extra := slices.Clone(f.out[pass1:])
	end := len(f.out)
	for i := n - 1; i >= 0; i-- {
		pt := parts[i]
		if pt.extraEnd > pt.extraStart {
			end -= copy(f.out[end-(pt.extraEnd-pt.extraStart):end], extra[pt.extraStart-pass1:pt.extraEnd-pass1])
		}
		end -= copy(f.out[end-(pt.end-pt.start):end], f.out[pt.start:pt.end])
	}
	return f.out, nil, nil
}

// fetcher accumulates fetched records within the limits.
type fetcher struct {
	it         *pebble.Iterator
	chunks     chunkReader // of it
	r          logfmt.Reader
	out        []broker.Record
	bytes      int
	maxRecords int
	maxBytes   int
	full       bool // the overall limits are reached
	lower      []byte
	upper      []byte
	seek       []byte
}

// read appends the records of p in [offset, next) to f.out, at most
// capRecords records and capBytes bytes of them (at least one if f.out is
// empty) within the overall limits. It returns whether it stopped at its
// own caps with records left (more), and then the offset to resume at.
func (f *fetcher) read(p *partition, offset, next int64, capRecords, capBytes int) (resume int64, more bool, err error) {
	id := p.t.id
	f.lower = recordKey(f.lower[:0], id, p.num, 0)
	f.upper = recordKey(f.upper[:0], id, p.num, next)
	f.it.SetBounds(f.lower, f.upper)
	// A read usually starts where a batch does (the next batch after the
	// last read): SeekGE finds it going forward. Only a position inside a
	// batch needs SeekLT, which steps backward, and a backward step makes
	// Pebble copy the batch's value into the iterator, which keeps that
	// copy (as large as the batch) until it moves on.
	f.seek = recordKey(f.seek[:0], id, p.num, offset)
	valid := f.it.SeekGE(f.seek)
	if valid {
		start, _ := recordKeyOffset(f.it.Key())
		valid = start == offset
	}
	if !valid {
		f.seek = recordKey(f.seek[:0], id, p.num, offset+1)
		if valid = f.it.SeekLT(f.seek); !valid {
			valid = f.it.First()
		}
	}
	count, size := 0, 0
	for ; valid; valid = f.it.Next() {
		if len(f.out) >= f.maxRecords || f.bytes >= f.maxBytes {
			// Full: do not even read the next batch.
			f.full = true
			return 0, false, nil
		}
		if count >= capRecords || size >= capBytes {
			return offset, true, nil
		}
		v, err := f.it.ValueAndErr()
		if err != nil {
			return 0, false, &broker.TopicError{Topic: p.t.name, Partition: p.num, Err: wrapRead("read records", err)}
		}
		keyOff, _ := recordKeyOffset(f.it.Key())
		h, _, err := batchInfo(v)
		if err != nil {
			return 0, false, batchError(p, keyOff, err)
		}
		if h.LastOffset() < offset {
			continue
		}
		// One copy per batch (or its chunks reassembled): the records
		// slice it, so they own their bytes without a copy per record.
		own, err := f.chunks.batch(p, keyOff, v)
		if err != nil {
			return 0, false, batchError(p, keyOff, err)
		}
		if err := f.r.Reset(own); err != nil {
			return 0, false, batchError(p, keyOff, err)
		}
		if h.BaseOffset != keyOff {
			return 0, false, batchError(p, keyOff, fmt.Errorf("%w: batch says base offset %d", broker.ErrCorrupt, h.BaseOffset))
		}
		for {
			var rec broker.Record
			ok, err := f.r.Next(&rec)
			if err != nil {
				return 0, false, batchError(p, keyOff, err)
			}
			if !ok {
				break
			}
			if rec.Offset < offset {
				continue
			}
			n := len(rec.Key) + len(rec.Value)
			if len(f.out) >= f.maxRecords || (len(f.out) > 0 && f.bytes+n > f.maxBytes) {
				f.full = true
				return 0, false, nil
			}
			if count >= capRecords || (count > 0 && size+n > capBytes) {
				return rec.Offset, true, nil
			}
			count++
			size += n
			f.bytes += n
			rec.Topic = p.t.name
			rec.Partition = p.num
			f.out = append(f.out, rec)
			offset = rec.Offset + 1
		}
	}
	if err := f.it.Error(); err != nil {
		return 0, false, &broker.TopicError{Topic: p.t.name, Partition: p.num, Err: wrapRead("read records", err)}
	}
	return 0, false, nil
}

func batchError(p *partition, off int64, err error) error {
	return &broker.TopicError{Topic: p.t.name, Partition: p.num, Err: fmt.Errorf("batch at offset %d: %w", off, err)}
}

// OffsetForTime returns the first offset whose record timestamp is at or
// after ts, or the latest offset if there is none. Records below the log
// start offset (in a batch that DeleteRecords cut) do not count.
func (b *Broker) OffsetForTime(ctx context.Context, topic string, partition int32, ts time.Time) (int64, error) {
	if err := b.enter(); err != nil {
		return 0, err
	}
	defer b.leave()
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	p, err := b.lookupPartition(topic, partition)
	if err != nil {
		return 0, err
	}
	st, _, _ := p.snapshot()
	want := ts.UnixMilli()
	it, err := b.db.NewIter(&pebble.IterOptions{
		LowerBound: recordKey(nil, p.t.id, p.num, 0),
		UpperBound: recordKey(nil, p.t.id, p.num, st.next),
	})
	if err != nil {
		return 0, wrapRead("offset for time", err)
	}
	defer it.Close()
	chunks := chunkReader{src: it}
	defer chunks.close()
	var r logfmt.Reader
	var rec broker.Record
	for valid := it.First(); valid; valid = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return 0, &broker.TopicError{Topic: topic, Partition: partition, Err: wrapRead("read records", err)}
		}
		keyOff, _ := recordKeyOffset(it.Key())
		h, _, err := batchInfo(v)
		if err != nil {
			return 0, batchError(p, keyOff, err)
		}
		if h.MaxTimestamp < want {
			continue
		}
		if v, err = chunks.view(p, keyOff, v); err != nil {
			return 0, batchError(p, keyOff, err)
		}
		if err := r.Reset(v); err != nil {
			return 0, batchError(p, keyOff, err)
		}
		for {
			ok, err := r.Next(&rec)
			if err != nil {
				return 0, batchError(p, keyOff, err)
			}
			if !ok {
				break
			}
			if rec.Offset >= st.logStart && rec.Timestamp.UnixMilli() >= want {
				return rec.Offset, nil
			}
		}
	}
	if err := it.Error(); err != nil {
		return 0, &broker.TopicError{Topic: topic, Partition: partition, Err: wrapRead("read records", err)}
	}
	return st.next, nil
}
