package store

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/cockroachdb/pebble/v2"

	"github.com/duality-streams/duality/internal/pebblelog"
)

// The write chain. Pebble recovers the valid prefix of its newest
// write-ahead log, which leaves a store consistent (its data and offset are
// written in one batch, and the changelog restores what is missing after
// the offset); but it does not notice an older log that is missing or
// empty, and then replays the newer logs over a state that lacks the older
// one's batches: data and offset disagree, silently. So every batch the
// DB commits (Apply, Drop, a new catalog entry) has a sequence number n and
// sets the key chainKey(n); after Pebble's replay the numbers must be
// contiguous, and OpenPebble fails with an error matching ErrCorrupt if
// they are not. Batches are committed one at a time (commitMu), so that
// the order of the numbers is the order of the log. Keys whose batches are
// in sstables are trimmed (see trimChain), keeping the last one as the
// anchor of the next.

// chainPrefix starts the chain's keys: tagMeta, then 0x00, which no
// catalog key has (a store name is never empty), then be64(n).
var (
	chainPrefix = []byte{tagMeta, 0x00}
	chainEnd    = []byte{tagMeta, 0x01}
)

func chainKey(seq uint64) []byte { return binary.BigEndian.AppendUint64([]byte{tagMeta, 0x00}, seq) }

// commit commits pb with wo as the next batch of the chain. Only the
// write to the log happens under d.chain: a sync waits outside it, so that
// concurrent commits still share fsyncs (Pebble's group commit).
func (d *PebbleDB) commit(pb *pebble.Batch, wo *pebble.WriteOptions) error {
	if err := d.commitOrdered(pb, wo); err != nil {
		return err
	}
	if wo.Sync {
		if err := pb.SyncWait(); err != nil {
			// What Pebble's Commit does on a failed sync (its commit
			// pipeline is broken): see package pebblelog.
			pebblelog.Logger{Log: d.cfg.logger, Name: "store"}.Fatalf("pebble: fatal commit error: %v", err)
			return err // inside a recovering section Fatalf panics instead
		}
	}
	return nil
}

func (d *PebbleDB) commitOrdered(pb *pebble.Batch, wo *pebble.WriteOptions) error {
	d.chain.Lock()
	defer d.chain.Unlock()
	seq := d.chain.seq + 1
	if err := pb.Set(chainKey(seq), nil, nil); err != nil {
		return err
	}
	d.trimChain(pb)
	d.applying.Store(seq)
	var err error
	if wo.Sync {
		err = d.db.ApplyNoSyncWait(pb, wo)
	} else {
		err = pb.Commit(wo)
	}
	if err != nil {
		return err
	}
	d.chain.seq = seq
	return nil
}

// trimChain adds to pb the deletion of the chain's keys whose batches are
// all in sstables, keeping the last of them: those before the last
// rotation of the write-ahead log once Pebble has flushed every memtable
// but the mutable one. Commits happen under d.chain, so no rotation by a
// commit happens between the check and the commit of pb (a rotation by
// Flush records a boundary at or below every batch of the new memtable).
// It looks at most once per 64 commits after a rotation, as Metrics takes
// Pebble's lock.
func (d *PebbleDB) trimChain(pb *pebble.Batch) {
	r := d.rotatedAt.Load()
	if r < 2 || r-1 <= d.chain.first {
		return
	}
	if d.chain.trimWait++; d.chain.trimWait < 64 {
		return
	}
	d.chain.trimWait = 0
	if d.db.Metrics().MemTable.Count != 1 {
		return
	}
	_ = pb.DeleteRange(chainKey(d.chain.first), chainKey(r-1), nil)
	d.chain.first = r - 1
}

// loadChain checks the chain after Pebble's replay, trims it (every
// replayed batch is in sstables once Open returns) and commits the
// open's batch, the chain's next number.
func (d *PebbleDB) loadChain() error {
	it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: chainPrefix, UpperBound: chainEnd})
	if err != nil {
		return err
	}
	var first, last uint64
	chained := false
	var holes []string
	for valid := it.First(); valid; valid = it.Next() {
		k := it.Key()
		if len(k) != len(chainPrefix)+8 {
			_ = it.Close()
			return fmt.Errorf("%w: write chain key %x", ErrCorrupt, k)
		}
		seq := binary.BigEndian.Uint64(k[len(chainPrefix):])
		switch {
		case !chained:
			first, chained = seq, true
		case seq != last+1:
			holes = append(holes, fmt.Sprintf("%d-%d", last+1, seq-1))
		}
		last = seq
	}
	if err := it.Close(); err != nil {
		return err
	}
	if len(holes) > 0 {
		return fmt.Errorf("%w: batches %s are missing between later ones: a write-ahead log was lost or damaged (logs present at open: %s)",
			ErrCorrupt, strings.Join(holes, ", "), strings.Join(d.logs, ", "))
	}
	// The open's batch takes the next number, synced, whatever the
	// state: it is the epoch of the chunk versions of this open (see
	// ingest.go), greater than any earlier open's even if a crash lost
	// batches that were not synced after it.
	next := uint64(0)
	if chained {
		next = last + 1
	}
	pb := d.db.NewBatch()
	defer pb.Close()
	if chained {
		_ = pb.DeleteRange(chainKey(first), chainKey(next), nil)
	}
	_ = pb.Set(chainKey(next), nil, nil)
	if err := pb.Commit(pebble.Sync); err != nil {
		return err
	}
	d.chain.seq, d.chain.first, d.epoch = next, next, next
	return nil
}
