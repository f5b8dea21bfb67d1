package kafka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/duality-streams/duality/broker"
)

// Defaults of broker.ConsumerOptions on Kafka.
const (
	// DefaultMaxPollRecords bounds one Poll when ConsumerOptions.MaxRecords is 0.
	DefaultMaxPollRecords = 10000
	// DefaultMaxPollBytes bounds one Poll, and one fetch request, when
	// ConsumerOptions.MaxBytes is 0.
	DefaultMaxPollBytes = 16 << 20
	// maxFetchWait bounds one fetch request's long poll (Kafka's default
	// fetch.max.wait.ms): a longer Poll sends several, so that a seek is
	// never stuck behind a request at the old position for longer.
	maxFetchWait = 500 * time.Millisecond
	// partitionFetchBytes bounds one partition's share of a fetch
	// request, as Kafka's max.partition.fetch.bytes does by default; a
	// larger first batch still comes whole (KIP-74). Shares of 4 or 16
	// MiB made restores and stateless apps on kfake use 1.5x the CPU of
	// 256 KiB or 1 MiB ones (benchmarks/goka W1 and W3).
	partitionFetchBytes = 1 << 20
	// retryBackoff paces fetches of partitions whose leader moved.
	retryBackoff = 50 * time.Millisecond
)

// NewConsumer returns a Consumer with no partitions assigned; see
// broker.Consumer. It has its own franz-go client and fetches with
// Kafka's Fetch requests itself, read_committed, from the partitions'
// leaders: exactly the positions Assign gives, no automatic offset reset
// (an offset outside the log is an *broker.OffsetOutOfRangeError from
// Poll), and Polled.Ends from each fetch's last stable offset.
//
// Errors: options out of range match broker.ErrInvalidConfig; ErrClosed
// after Close.
func (b *Broker) NewConsumer(opts broker.ConsumerOptions) (broker.Consumer, error) {
	if err := b.enter(); err != nil {
		return nil, err
	}
	if opts.MaxRecords < 0 || opts.MaxBytes < 0 {
		return nil, fmt.Errorf("%w: negative consumer limits %+v", broker.ErrInvalidConfig, opts)
	}
	if opts.MaxRecords == 0 {
		opts.MaxRecords = DefaultMaxPollRecords
	}
	if opts.MaxBytes == 0 {
		opts.MaxBytes = DefaultMaxPollBytes
	}
	opts.MaxBytes = min(opts.MaxBytes, 1<<30)
	cl, err := b.newClient()
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &consumer{
		b:           b,
		cl:          cl,
		opts:        opts,
		ctx:         ctx,
		cancel:      cancel,
		parts:       make(map[broker.TopicPartition]*partState),
		leaders:     make(map[string]*consumerTopic),
		inflight:    make(map[int32]bool),
		inflightSeq: make(map[int32]uint64),
		results:     make(chan fetchResult, 16),
	}
	if err := b.track(c); err != nil {
		cl.Close()
		cancel()
		return nil, err
	}
	return c, nil
}

// consumer is a broker.Consumer.
type consumer struct {
	b      *Broker
	cl     *kgo.Client
	opts   broker.ConsumerOptions
	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // fetch requests in flight

	closeOnce sync.Once
	closed    atomic.Bool

	parts       map[broker.TopicPartition]*partState
	leaders     map[string]*consumerTopic // by topic
	inflight    map[int32]bool            // brokers with a fetch in flight
	inflightSeq map[int32]uint64          // the Poll that sent it
	results     chan fetchResult
	pollSeq     uint64
	backoff     time.Time // no fetch of a partition marked stale before
}

// partState is an assigned partition.
type partState struct {
	pos    int64 // next offset to return
	paused bool
	// seq changes at every seek; a fetch result for an older seq is stale.
	seq uint64
	// buf holds fetched records from pos on, not yet returned; next is
	// the offset after them (past any transaction markers or aborted
	// records), lso the fetch's last stable offset. fetched tells
	// whether buf, next and lso are valid.
	buf     []broker.Record
	next    int64
	lso     int64
	fetched bool
	// atEnd: every record before lso was returned; Polls report lso
	// in Polled.Ends until the position moves.
	atEnd bool
	// err is returned by Poll until the partition is reassigned.
	err error
	// oor asks Poll to report an *OffsetOutOfRangeError (it lists the
	// partition's offsets first).
	oor bool
	// stale: the leader is unknown or moved; refresh metadata first.
	stale bool
}

type consumerTopic struct {
	id      [16]byte
	leaders []int32 // by partition
	err     error   // the topic is unknown
}

type fetchResult struct {
	broker int32
	seq    uint64 // pollSeq of the Poll that sent it
	req    map[broker.TopicPartition]fetchReq
	resp   *kmsg.FetchResponse
	err    error
}

type fetchReq struct {
	ps     *partState
	seq    uint64
	offset int64
}

func (c *consumer) check() error {
	if c.closed.Load() || c.b.closed() {
		return broker.ErrClosed
	}
	return nil
}

// Assign adds partitions or seeks assigned ones; see broker.Consumer.
func (c *consumer) Assign(positions map[broker.TopicPartition]int64) {
	for tp, off := range positions {
		ps := c.parts[tp]
		if ps == nil {
			ps = &partState{}
			c.parts[tp] = ps
		}
		ps.seq++
		ps.pos = off
		ps.buf, ps.fetched, ps.atEnd, ps.err, ps.oor = nil, false, false, nil, false
		if err := checkTopic(tp.Topic); err != nil {
			ps.err = err
		} else if tp.Partition < 0 {
			ps.err = &broker.TopicError{Topic: tp.Topic, Partition: tp.Partition, Err: broker.ErrUnknownPartition}
		}
	}
}

// Unassign stops reading tps; see broker.Consumer.
func (c *consumer) Unassign(tps ...broker.TopicPartition) {
	for _, tp := range tps {
		delete(c.parts, tp)
	}
}

// Pause stops fetching tps; see broker.Consumer.
func (c *consumer) Pause(tps ...broker.TopicPartition) {
	for _, tp := range tps {
		if ps := c.parts[tp]; ps != nil {
			ps.paused = true
		}
	}
}

// Resume starts fetching paused partitions again; see broker.Consumer.
func (c *consumer) Resume(tps ...broker.TopicPartition) {
	for _, tp := range tps {
		if ps := c.parts[tp]; ps != nil {
			ps.paused = false
		}
	}
}

// Poll returns the next records of the assigned, unpaused partitions; see
// broker.Consumer. It returns at once when records are buffered or a
// partition newly reached its end. Otherwise it first asks every leader
// for what is readable now (requests that do not wait) and returns all
// of it; when there is nothing and maxWait is positive it long-polls the
// leaders, each request waiting at most 500ms at the broker, until
// records arrive or maxWait passes.
func (c *consumer) Poll(ctx context.Context, maxWait time.Duration) (broker.Polled, error) {
	if err := c.check(); err != nil {
		return broker.Polled{}, err
	}
	if err := ctx.Err(); err != nil {
		return broker.Polled{}, err
	}
	deadline := time.Now().Add(max(maxWait, 0))
	// Phase one: what is readable now, from every leader.
	c.pollSeq++
	seq := c.pollSeq
	if out, ok, err := c.ready(ctx); ok || err != nil {
		return out, err
	}
	c.send(seq, 0)
	for c.pending(seq) {
		if err := c.wait(ctx, nil); err != nil {
			return broker.Polled{}, err
		}
	}
	if out, ok, err := c.ready(ctx); ok || err != nil || maxWait <= 0 {
		return out, err
	}
	// Phase two: long polls until records arrive or maxWait passes.
	for {
		now := time.Now()
		remaining := deadline.Sub(now)
		if remaining <= 0 {
			out, _ := c.take()
			return out, nil
		}
		c.pollSeq++
		c.send(c.pollSeq, min(remaining, maxFetchWait))
		timer := time.NewTimer(min(remaining, c.untilBackoff(now)))
		err := c.wait(ctx, timer.C)
		timer.Stop()
		if err != nil {
			return broker.Polled{}, err
		}
		if out, ok, err := c.ready(ctx); ok || err != nil {
			return out, err
		}
	}
}

// ready applies the results that arrived, refreshes the leaders of
// partitions that need them, and returns the partitions' first error or
// what take returns.
func (c *consumer) ready(ctx context.Context) (broker.Polled, bool, error) {
	c.drainResults()
	if err := c.partErr(ctx); err != nil {
		return broker.Polled{}, false, err
	}
	out, ok := c.take()
	if ok {
		return out, true, nil
	}
	if err := c.refreshMeta(ctx); err != nil {
		return broker.Polled{}, false, err
	}
	if err := c.partErr(ctx); err != nil {
		return broker.Polled{}, false, err
	}
	return out, false, nil
}

// wait applies one fetch result, or returns when timer fires, or with
// ctx's error, or ErrClosed.
func (c *consumer) wait(ctx context.Context, timer <-chan time.Time) error {
	select {
	case r := <-c.results:
		c.apply(r)
		return nil
	case <-timer:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.ctx.Done():
		return broker.ErrClosed
	case <-c.b.closedCh:
		return broker.ErrClosed
	}
}

// untilBackoff is how long until stale partitions may be fetched again.
func (c *consumer) untilBackoff(now time.Time) time.Duration {
	if d := c.backoff.Sub(now); d > 0 {
		return d
	}
	return maxFetchWait
}

// pending reports whether a request sent by Poll seq is in flight.
func (c *consumer) pending(seq uint64) bool {
	for id, on := range c.inflight {
		if on && c.inflightSeq[id] == seq {
			return true
		}
	}
	return false
}

func (c *consumer) drainResults() {
	for {
		select {
		case r := <-c.results:
			c.apply(r)
		default:
			return
		}
	}
}

// partErr returns the error of an assigned partition, if any: an
// out-of-range position becomes an *broker.OffsetOutOfRangeError with the
// partition's offsets.
func (c *consumer) partErr(ctx context.Context) error {
	for _, tp := range c.sorted() {
		ps := c.parts[tp]
		if ps.oor {
			offs, err := c.b.ListOffsets(ctx, tp.Topic, tp.Partition)
			if err != nil {
				return err
			}
			if ps.pos >= offs.Earliest && ps.pos <= offs.Latest {
				// The log moved back into range (e.g. a commit
				// raised the last stable offset): fetch again.
				ps.oor = false
				continue
			}
			return &broker.OffsetOutOfRangeError{Topic: tp.Topic, Partition: tp.Partition, Offset: ps.pos, Offsets: offs}
		}
		if ps.err != nil {
			return ps.err
		}
	}
	return nil
}

// sorted returns the assigned partitions by topic, then partition.
func (c *consumer) sorted() []broker.TopicPartition {
	tps := make([]broker.TopicPartition, 0, len(c.parts))
	for tp := range c.parts {
		tps = append(tps, tp)
	}
	slices.SortFunc(tps, func(x, y broker.TopicPartition) int {
		return cmp.Or(cmp.Compare(x.Topic, y.Topic), cmp.Compare(x.Partition, y.Partition))
	})
	return tps
}

// take returns buffered records of unpaused partitions within the
// limits, and the partitions at their end; ok tells whether there are
// records.
func (c *consumer) take() (broker.Polled, bool) {
	var out broker.Polled
	bytes := 0
	for _, tp := range c.sorted() {
		ps := c.parts[tp]
		if ps.paused {
			continue
		}
		if ps.fetched {
			n := 0
			for n < len(ps.buf) && len(out.Records)+n < c.opts.MaxRecords {
				r := &ps.buf[n]
				size := len(r.Key) + len(r.Value)
				if len(out.Records)+n > 0 && bytes+size > c.opts.MaxBytes {
					break
				}
				bytes += size
				n++
			}
			if n > 0 {
				// The first partition's records are handed over without
				// a copy (capped, so that appending the next partition's
				// cannot write over this one's rest).
				if out.Records == nil {
					out.Records = ps.buf[:n:n]
				} else {
					out.Records = append(out.Records, ps.buf[:n]...)
				}
				ps.pos = ps.buf[n-1].Offset + 1
				ps.buf = ps.buf[n:]
				ps.atEnd = false
			}
			if len(ps.buf) == 0 {
				ps.buf = nil
				ps.pos = max(ps.pos, ps.next)
				ps.atEnd = ps.pos >= ps.lso
				ps.fetched = false
			}
		}
		if ps.atEnd {
			if out.Ends == nil {
				out.Ends = make(map[broker.TopicPartition]int64)
			}
			out.Ends[tp] = ps.lso
		}
	}
	return out, len(out.Records) > 0
}

// refreshMeta loads the leaders of the topics of partitions to fetch
// whose leader is unknown or stale.
func (c *consumer) refreshMeta(ctx context.Context) error {
	var topics []string
	for tp, ps := range c.parts {
		if ps.paused || ps.err != nil || ps.fetched {
			continue
		}
		t := c.leaders[tp.Topic]
		if t == nil || ps.stale || (t.err == nil && int(tp.Partition) >= len(t.leaders)) {
			if time.Now().Before(c.backoff) && t != nil {
				continue
			}
			if !slices.Contains(topics, tp.Topic) {
				topics = append(topics, tp.Topic)
			}
		}
	}
	if len(topics) == 0 {
		return nil
	}
	req := kmsg.NewPtrMetadataRequest()
	req.AllowAutoTopicCreation = false
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, c.cl)
	if err != nil {
		return c.b.mapErr(err, "", -1)
	}
	for _, rt := range resp.Topics {
		if rt.Topic == nil {
			continue
		}
		name := *rt.Topic
		t := &consumerTopic{id: rt.TopicID}
		if err := kerr.ErrorForCode(rt.ErrorCode); err != nil {
			if !errors.Is(err, kerr.UnknownTopicOrPartition) && kerr.IsRetriable(err) {
				continue
			}
			t.err = c.b.mapErr(err, name, -1)
		}
		t.leaders = make([]int32, len(rt.Partitions))
		for _, p := range rt.Partitions {
			if int(p.Partition) < len(t.leaders) {
				t.leaders[p.Partition] = p.Leader
				if p.ErrorCode != 0 {
					t.leaders[p.Partition] = -1
				}
			}
		}
		c.leaders[name] = t
	}
	for tp, ps := range c.parts {
		t := c.leaders[tp.Topic]
		if t == nil || !slices.Contains(topics, tp.Topic) {
			continue
		}
		ps.stale = false
		switch {
		case t.err != nil:
			ps.err = t.err
		case int(tp.Partition) >= len(t.leaders):
			ps.err = &broker.TopicError{Topic: tp.Topic, Partition: tp.Partition,
				Err: fmt.Errorf("%w: topic has %d partitions", broker.ErrUnknownPartition, len(t.leaders))}
		}
	}
	return nil
}

// send sends a fetch to every leader of partitions to fetch that has none
// in flight.
func (c *consumer) send(seq uint64, wait time.Duration) {
	byBroker := make(map[int32]map[broker.TopicPartition]fetchReq)
	now := time.Now()
	for tp, ps := range c.parts {
		if ps.paused || ps.err != nil || ps.oor || ps.fetched {
			continue
		}
		if ps.stale && now.Before(c.backoff) {
			continue
		}
		t := c.leaders[tp.Topic]
		if t == nil || t.err != nil || int(tp.Partition) >= len(t.leaders) {
			continue
		}
		leader := t.leaders[tp.Partition]
		if leader < 0 { // no leader now (an election): ask again soon
			ps.stale = true
			c.backoff = now.Add(retryBackoff)
			continue
		}
		if c.inflight[leader] {
			continue
		}
		if byBroker[leader] == nil {
			byBroker[leader] = make(map[broker.TopicPartition]fetchReq)
		}
		byBroker[leader][tp] = fetchReq{ps: ps, seq: ps.seq, offset: ps.pos}
	}
	for id, parts := range byBroker {
		req := kmsg.NewPtrFetchRequest()
		req.ReplicaID = -1
		req.MaxWaitMillis = int32(wait.Milliseconds())
		req.MinBytes = 1
		req.MaxBytes = int32(c.opts.MaxBytes)
		req.IsolationLevel = 1
		req.SessionID = 0
		req.SessionEpoch = -1
		byTopic := make(map[string]int)
		for tp, fr := range parts {
			i, ok := byTopic[tp.Topic]
			if !ok {
				rt := kmsg.NewFetchRequestTopic()
				rt.Topic = tp.Topic
				rt.TopicID = c.leaders[tp.Topic].id
				req.Topics = append(req.Topics, rt)
				i = len(req.Topics) - 1
				byTopic[tp.Topic] = i
			}
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition = tp.Partition
			rp.FetchOffset = fr.offset
			rp.CurrentLeaderEpoch = -1
			rp.LogStartOffset = -1
			rp.PartitionMaxBytes = int32(min(c.opts.MaxBytes, partitionFetchBytes))
			req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
		}
		c.inflight[id] = true
		c.inflightSeq[id] = seq
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			resp, err := c.cl.Broker(int(id)).Request(c.ctx, req)
			r := fetchResult{broker: id, seq: seq, req: parts, err: err}
			if err == nil {
				r.resp = resp.(*kmsg.FetchResponse)
			}
			select {
			case c.results <- r:
			case <-c.ctx.Done():
			}
		}()
	}
}

// apply takes in a fetch result: records into the partitions' buffers
// unless the partition moved since the request was sent.
func (c *consumer) apply(r fetchResult) {
	c.inflight[r.broker] = false
	if r.err != nil {
		if c.check() != nil {
			return
		}
		c.b.log.Debug("kafka: fetch failed", "broker", r.broker, "err", r.err)
		for _, fr := range r.req {
			fr.ps.stale = true
		}
		c.backoff = time.Now().Add(retryBackoff)
		return
	}
	names := make(map[[16]byte]string)
	for tp := range r.req {
		names[c.leaders[tp.Topic].id] = tp.Topic
	}
	for i := range r.resp.Topics {
		rt := &r.resp.Topics[i]
		topic := rt.Topic
		if topic == "" {
			topic = names[rt.TopicID]
		}
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			tp := broker.TopicPartition{Topic: topic, Partition: rp.Partition}
			fr, ok := r.req[tp]
			if !ok || c.parts[tp] != fr.ps || fr.ps.seq != fr.seq || fr.ps.pos != fr.offset || fr.ps.fetched {
				continue // stale: unassigned, seeked or already filled
			}
			c.applyPartition(tp, fr, rp)
		}
	}
}

func (c *consumer) applyPartition(tp broker.TopicPartition, fr fetchReq, rp *kmsg.FetchResponseTopicPartition) {
	ps := fr.ps
	err := kerr.ErrorForCode(rp.ErrorCode)
	switch {
	case err == nil:
	case errors.Is(err, kerr.OffsetOutOfRange):
		ps.oor = true
		return
	case errors.Is(err, kerr.UnknownTopicOrPartition), errors.Is(err, kerr.UnknownTopicID),
		errors.Is(err, kerr.InconsistentTopicID), kerr.IsRetriable(err):
		// The leader moved, the topic is new or was recreated:
		// refresh metadata (which reports a deleted topic) and retry.
		ps.stale = true
		c.backoff = time.Now().Add(retryBackoff)
		return
	default:
		ps.err = c.b.mapErr(err, tp.Topic, tp.Partition)
		return
	}
	fp, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
		Offset:         fr.offset,
		IsolationLevel: kgo.ReadCommitted(),
		Topic:          tp.Topic,
		Partition:      tp.Partition,
	}, rp, kgo.DefaultDecompressor(), nil)
	if fp.Err != nil {
		ps.err = &broker.TopicError{Topic: tp.Topic, Partition: tp.Partition,
			Err: fmt.Errorf("%w: %w", broker.ErrCorrupt, fp.Err)}
		return
	}
	if fr.offset > rp.LastStableOffset && len(fp.Records) == 0 {
		// Kafka answers a position between the last stable offset and
		// the high watermark with nothing; the broker package calls
		// any position above the latest offset out of range.
		ps.oor = true
		return
	}
	recs := make([]broker.Record, 0, len(fp.Records))
	for _, kr := range fp.Records {
		if kr.Offset < fr.offset {
			continue
		}
		r := broker.Record{
			Key:       kr.Key,
			Value:     kr.Value,
			Timestamp: kr.Timestamp,
			Topic:     tp.Topic,
			Partition: tp.Partition,
			Offset:    kr.Offset,
		}
		if len(kr.Headers) > 0 {
			r.Headers = make([]broker.Header, len(kr.Headers))
			for k, h := range kr.Headers {
				r.Headers[k] = broker.Header{Key: h.Key, Value: h.Value}
			}
		}
		recs = append(recs, r)
	}
	ps.buf = recs
	ps.next = max(next, fr.offset)
	ps.lso = rp.LastStableOffset
	ps.fetched = true
	// The partition is at its new end only once these records are
	// returned (take): a Poll whose MaxRecords other partitions fill
	// must not report it at its end with records of it unreturned.
	ps.atEnd = false
}

// Close releases the consumer; see broker.Consumer.
func (c *consumer) Close() error {
	c.b.untrack(c)
	c.close()
	return nil
}

func (c *consumer) close() {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.cancel()
		c.cl.Close()
		c.wg.Wait()
	})
}
