package kafka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/duality-streams/duality/broker"
)

// NewCommitter returns the Committer with transactional id id: one
// transactional producer (franz-go client) that commits records and group
// offsets in one Kafka transaction (KIP-98), the offsets fenced by the
// group generation and member id (KIP-447). Opening it initializes the
// producer id of id at once, which fences any older Committer with the
// same id (in this process or another): its next Commit fails with
// broker.ErrFenced, and its open transaction is aborted.
//
// The transactions use the classic protocol (transaction.version 1: the
// partitions and the group are added to a transaction explicitly), which
// every Kafka version since 2.5 supports, so that a commit of offsets
// alone is possible with franz-go's producer.
//
// Errors: an empty id matches broker.ErrInvalidConfig; ErrClosed after
// Close; errors of the cluster (unreachable, not authorized) as they are.
func (b *Broker) NewCommitter(ctx context.Context, id string) (broker.Committer, error) {
	if err := b.enter(); err != nil {
		return nil, err
	}
	if id == "" {
		return nil, fmt.Errorf("%w: empty committer id", broker.ErrInvalidConfig)
	}
	c := &committer{b: b, id: id}
	if err := c.init(ctx); err != nil {
		return nil, err
	}
	if err := b.track(c); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// checkCommitRequest refuses, before anything is sent, offsets without a
// group and offsets of invalid topic names.
func checkCommitRequest(req broker.CommitRequest) error {
	if len(req.Offsets) > 0 && req.Group == "" {
		return fmt.Errorf("%w: offsets without a group", broker.ErrInvalidConfig)
	}
	for tp := range req.Offsets {
		if err := checkTopic(tp.Topic); err != nil {
			return err
		}
	}
	return nil
}

// partitionOffset is one partition's offset to commit.
type partitionOffset struct {
	partition int32
	offset    int64
}

// offsetsByTopic yields the offsets grouped by topic, topics in name
// order and partitions in number order, as the offset commit requests
// (OffsetCommit and TxnOffsetCommit) list them.
func offsetsByTopic(offsets map[broker.TopicPartition]int64) iter.Seq2[string, []partitionOffset] {
	byTopic := make(map[string][]partitionOffset)
	for tp, off := range offsets {
		byTopic[tp.Topic] = append(byTopic[tp.Topic], partitionOffset{tp.Partition, off})
	}
	return func(yield func(string, []partitionOffset) bool) {
		for _, topic := range slices.Sorted(maps.Keys(byTopic)) {
			parts := byTopic[topic]
			slices.SortFunc(parts, func(a, b partitionOffset) int { return cmp.Compare(a.partition, b.partition) })
			if !yield(topic, parts) {
				return
			}
		}
	}
}

// committer is a broker.Committer.
type committer struct {
	b  *Broker
	id string
	// cl is the transactional producer; nil after a failure that needs
	// a fresh producer id (the next Commit initializes one). It is
	// replaced only by Commit; the broker's Close may close it
	// concurrently, through clp.
	cl  *kgo.Client
	clp atomic.Pointer[kgo.Client]
	// fenced is set once a newer committer with the same id exists.
	fenced error
	closed atomic.Bool
}

// txnVersions caps the protocol versions of a committer's client to the
// classic transaction protocol (no KIP-890 part 2): AddOffsetsToTxn and
// EndTxn are then sent explicitly and franz-go's producer epoch stays
// valid across a raw EndTxn.
func txnVersions() *kversion.Versions {
	v := kversion.Stable()
	v.SetMaxKeyVersion(int16(kmsg.Produce), 11)
	v.SetMaxKeyVersion(int16(kmsg.EndTxn), 4)
	v.SetMaxKeyVersion(int16(kmsg.TxnOffsetCommit), 4)
	v.SetMaxKeyVersion(int16(kmsg.AddPartitionsToTxn), 3)
	return v
}

// init creates the transactional client and its producer id.
func (c *committer) init(ctx context.Context) error {
	cl, err := c.b.newClient(
		kgo.TransactionalID(c.id),
		kgo.TransactionTimeout(c.b.cfg.txnTimeout),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0), // a Commit waits for its records: lingering only delays it
		kgo.MaxVersions(txnVersions()),
	)
	if err != nil {
		return fmt.Errorf("kafka: committer %q: %w", c.id, err)
	}
	c.clp.Store(cl)
	if c.closed.Load() {
		cl.Close()
		return broker.ErrClosed
	}
	if _, _, err := cl.ProducerID(ctx); err != nil {
		cl.Close()
		c.clp.Store(nil)
		return c.mapErr(err)
	}
	c.cl = cl
	return nil
}

// fencedBy reports whether err says that the producer was fenced (a newer
// one with the same id exists) or that the group fenced the commit.
//
// INVALID_PRODUCER_EPOCH is not producer fencing: a partition leader
// answers it to a produce whose transaction the coordinator aborted at
// its timeout (KIP-588, recovered by the abort); a zombie is told
// PRODUCER_FENCED by the coordinator, which every commit asks first
// (AddOffsetsToTxn, AddPartitionsToTxn) and every abort asks last.
func fencedBy(err error) (producer, group bool) {
	switch {
	case errors.Is(err, kerr.ProducerFenced):
		return true, false
	case errors.Is(err, kerr.IllegalGeneration), errors.Is(err, kerr.UnknownMemberID),
		errors.Is(err, kerr.FencedInstanceID), errors.Is(err, kerr.RebalanceInProgress):
		return false, true
	}
	return false, false
}

func (c *committer) mapErr(err error) error {
	if err == nil {
		return nil
	}
	if c.b.closed() || errors.Is(err, kgo.ErrClientClosed) {
		return broker.ErrClosed
	}
	if p, g := fencedBy(err); p || g {
		return fmt.Errorf("%w: committer %q: %w", broker.ErrFenced, c.id, err)
	}
	return c.b.mapErr(err, "", -1)
}

// Commit appends req.Records and stores req.Offsets for req.Group in one
// transaction; see broker.Committer. It returns once the transaction is
// committed and its records are readable (the partitions' last stable
// offsets passed them).
//
// Errors: an unknown topic or partition, an invalid name or an empty group
// with offsets are refused before anything is sent; broker.ErrFenced when
// the group fenced the offsets (stale generation, unknown member) or when
// a newer Committer with the same id was opened (then every later Commit
// fails with it too: close this one). Any failure aborts the transaction.
func (c *committer) Commit(ctx context.Context, req broker.CommitRequest) error {
	if c.closed.Load() || c.b.closed() {
		return broker.ErrClosed
	}
	if c.fenced != nil {
		return c.fenced
	}
	if err := checkCommitRequest(req); err != nil {
		return err
	}
	if len(req.Records) == 0 && len(req.Offsets) == 0 {
		return nil
	}
	krs, err := c.b.resolve(ctx, req.Records)
	if err != nil {
		return err
	}
	if c.cl == nil {
		if err := c.init(ctx); err != nil {
			return err
		}
	}
	if err := c.commit(ctx, req, krs); err != nil {
		return err
	}
	for i, kr := range krs {
		req.Records[i].Partition = kr.Partition
		req.Records[i].Offset = kr.Offset
	}
	return c.waitVisible(ctx, krs)
}

// commit runs one transaction, aborting it on failure. The offsets go
// first: a commit the group fences (or a zombie's, fenced by its producer
// epoch) then fails before any record is appended, so it leaves the
// output partitions as they were, offsets included.
func (c *committer) commit(ctx context.Context, req broker.CommitRequest, krs []*kgo.Record) error {
	cl := c.cl
	if err := cl.BeginTransaction(); err != nil {
		return c.fail(ctx, false, err)
	}
	offsetsAdded := false
	if len(req.Offsets) > 0 {
		id, epoch, err := cl.ProducerID(ctx)
		if err != nil {
			return c.fail(ctx, offsetsAdded, err)
		}
		if err := c.addOffsets(ctx, id, epoch, req.Group); err != nil {
			return c.fail(ctx, offsetsAdded, err)
		}
		offsetsAdded = true
		if err := c.commitOffsets(ctx, id, epoch, req); err != nil {
			return c.fail(ctx, offsetsAdded, err)
		}
		if len(krs) == 0 {
			// No partition was added to the transaction through
			// franz-go, so its EndTransaction would send nothing:
			// end it here, then let franz-go reset its state.
			if err := c.endTxn(ctx, id, epoch, true); err != nil {
				return c.fail(ctx, offsetsAdded, err)
			}
			if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
				return c.fail(ctx, false, err)
			}
			return nil
		}
	}
	if err := c.b.produce(ctx, cl, krs, nil); err != nil {
		return c.fail(ctx, offsetsAdded, err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return c.fail(ctx, offsetsAdded, err)
	}
	// franz-go sends EndTxn only if it saw a partition added to the
	// transaction, and under load it was seen to send none after
	// AddPartitionsToTxn and every produce had succeeded (it logged "no
	// records were produced during the commit"): the transaction then
	// stayed open until the coordinator aborted it at its timeout, and
	// the commit, reported a success, was lost. So the commit is
	// confirmed here: an EndTxn(commit) of a transaction that already
	// committed is a retry the coordinator answers with success (after
	// CONCURRENT_TRANSACTIONS while its markers are written); one that
	// franz-go did not end is committed now; one the coordinator aborted
	// fails (PRODUCER_FENCED, its epoch was bumped).
	id, epoch, err := cl.ProducerID(ctx)
	if err == nil {
		err = c.endTxn(ctx, id, epoch, true)
	}
	if err != nil {
		return c.fail(ctx, true, err)
	}
	return nil
}

// fail aborts the open transaction after err and returns err as the
// broker package's error. A fenced producer is never used again; a
// producer whose abort failed is replaced by a fresh one on the next
// Commit, which aborts what is left open.
func (c *committer) fail(ctx context.Context, offsetsAdded bool, err error) error {
	out := c.mapErr(err)
	if producer, _ := fencedBy(err); producer {
		c.fenced = out
		c.dropClient()
		return out
	}
	if errors.Is(out, broker.ErrClosed) {
		return out
	}
	// Abort with a context of its own: the caller's may be what ended.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.b.cfg.txnTimeout)
	defer cancel()
	abortErr := c.cl.AbortBufferedRecords(actx)
	if abortErr == nil {
		abortErr = c.cl.EndTransaction(actx, kgo.TryAbort)
	}
	if abortErr == nil && offsetsAdded {
		var id int64
		var epoch int16
		if id, epoch, abortErr = c.cl.ProducerID(actx); abortErr == nil {
			abortErr = c.endTxn(actx, id, epoch, false)
		}
	}
	if abortErr != nil {
		if producer, _ := fencedBy(abortErr); producer {
			c.fenced = fmt.Errorf("%w: committer %q: %w", broker.ErrFenced, c.id, abortErr)
		}
		c.b.log.Debug("kafka: abort failed; the committer's producer is reinitialized", "committer", c.id, "err", abortErr)
		c.dropClient()
	}
	return out
}

// addOffsets adds group's offsets to the transaction (AddOffsetsToTxn).
func (c *committer) addOffsets(ctx context.Context, id int64, epoch int16, group string) error {
	req := kmsg.NewPtrAddOffsetsToTxnRequest()
	req.TransactionalID = c.id
	req.ProducerID = id
	req.ProducerEpoch = epoch
	req.Group = group
	return c.retryConcurrent(ctx, func() error {
		resp, err := req.RequestWith(ctx, c.cl)
		if err != nil {
			return err
		}
		return kerr.ErrorForCode(resp.ErrorCode)
	})
}

// commitOffsets sends the offsets to the group coordinator
// (TxnOffsetCommit), with the generation and member id that fence them.
func (c *committer) commitOffsets(ctx context.Context, id int64, epoch int16, cr broker.CommitRequest) error {
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.TransactionalID = c.id
	req.Group = cr.Group
	req.ProducerID = id
	req.ProducerEpoch = epoch
	req.Generation = -1
	if cr.Generation != 0 {
		req.Generation = int32(cr.Generation)
		req.MemberID = cr.MemberID
	}
	for topic, parts := range offsetsByTopic(cr.Offsets) {
		rt := kmsg.NewTxnOffsetCommitRequestTopic()
		rt.Topic = topic
		for _, po := range parts {
			rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
			rp.Partition, rp.Offset, rp.LeaderEpoch = po.partition, po.offset, -1
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	return c.retryConcurrent(ctx, func() error {
		resp, err := req.RequestWith(ctx, c.cl)
		if err != nil {
			return err
		}
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
					return fmt.Errorf("topic %q partition %d: %w", rt.Topic, rp.Partition, err)
				}
			}
		}
		return nil
	})
}

// endTxn ends the transaction (EndTxn) with the classic protocol, which
// does not change the producer epoch. An abort of a transaction that
// already ended is not an error.
func (c *committer) endTxn(ctx context.Context, id int64, epoch int16, commit bool) error {
	req := kmsg.NewPtrEndTxnRequest()
	req.TransactionalID = c.id
	req.ProducerID = id
	req.ProducerEpoch = epoch
	req.Commit = commit
	return c.retryConcurrent(ctx, func() error {
		resp, err := req.RequestWith(ctx, c.cl)
		if err != nil {
			return err
		}
		err = kerr.ErrorForCode(resp.ErrorCode)
		if !commit && errors.Is(err, kerr.InvalidTxnState) {
			return nil
		}
		return err
	})
}

// retryConcurrent runs fn again while the coordinator answers
// CONCURRENT_TRANSACTIONS (the previous transaction's markers are being
// written).
func (c *committer) retryConcurrent(ctx context.Context, fn func() error) error {
	for {
		err := fn()
		if !errors.Is(err, kerr.ConcurrentTransactions) {
			return err
		}
		if err := sleep(ctx, c.b.closedCh, 20*time.Millisecond); err != nil {
			return err
		}
	}
}

// waitVisible waits until the partitions' last stable offsets passed the
// records just committed: Kafka writes the transaction markers after
// EndTxn returns. It asks for all partitions in one request (franz-go
// sends it to their leaders).
func (c *committer) waitVisible(ctx context.Context, krs []*kgo.Record) error {
	last := make(map[broker.TopicPartition]int64)
	for _, kr := range krs {
		tp := broker.TopicPartition{Topic: kr.Topic, Partition: kr.Partition}
		last[tp] = max(last[tp], kr.Offset)
	}
	for len(last) > 0 {
		req := kmsg.NewPtrListOffsetsRequest()
		req.ReplicaID = -1
		req.IsolationLevel = 1
		byTopic := make(map[string]int)
		for tp := range last {
			i, ok := byTopic[tp.Topic]
			if !ok {
				rt := kmsg.NewListOffsetsRequestTopic()
				rt.Topic = tp.Topic
				req.Topics = append(req.Topics, rt)
				i = len(req.Topics) - 1
				byTopic[tp.Topic] = i
			}
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition = tp.Partition
			rp.CurrentLeaderEpoch = -1
			rp.Timestamp = listLatest
			req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
		}
		resp, err := req.RequestWith(ctx, c.b.cl)
		if err != nil {
			return c.b.mapErr(err, "", -1)
		}
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				tp := broker.TopicPartition{Topic: rt.Topic, Partition: rp.Partition}
				if err := kerr.ErrorForCode(rp.ErrorCode); err != nil && !kerr.IsRetriable(err) {
					return c.b.mapErr(err, tp.Topic, tp.Partition)
				}
				if off, ok := last[tp]; ok && rp.ErrorCode == 0 && rp.Offset > off {
					delete(last, tp)
				}
			}
		}
		if len(last) == 0 {
			return nil
		}
		if err := sleep(ctx, c.b.closedCh, 5*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// Close closes the committer's producer; an open transaction is aborted
// by the cluster (at its timeout, or when a Committer with the same id is
// opened).
func (c *committer) Close() error {
	c.b.untrack(c)
	c.close()
	return nil
}

func (c *committer) close() {
	if c.closed.Swap(true) {
		return
	}
	if cl := c.clp.Load(); cl != nil {
		cl.Close()
	}
}

// dropClient closes the producer; the next Commit makes a new one.
func (c *committer) dropClient() {
	c.cl.Close()
	c.cl = nil
	c.clp.Store(nil)
}
