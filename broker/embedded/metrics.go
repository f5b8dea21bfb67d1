package embedded

import "sync/atomic"

// Metrics is a snapshot of a broker's counters since Open.
type Metrics struct {
	// Writes counts acknowledged Produce, Commit and CommitOffsets calls.
	Writes uint64
	// RecordsAppended counts the records those calls appended.
	RecordsAppended uint64
	// BytesAppended counts the stored bytes of those records (encoded
	// batches, before Pebble's compression).
	BytesAppended uint64
	// Commits counts Pebble batches committed for writes: one per group of
	// concurrent calls. In sync mode each waits for a write-ahead log sync,
	// which Pebble shares among the groups in flight.
	Commits uint64
	// Fetches counts Fetch calls; FetchWaits the times one waited for
	// data; RecordsFetched the records returned.
	Fetches, FetchWaits, RecordsFetched uint64
	// CleanupRuns counts retention and compaction runs; BytesRemoved the
	// stored bytes they deleted.
	CleanupRuns, BytesRemoved uint64
	// DiskUsage is Pebble's estimate of the data directory's size in bytes.
	DiskUsage uint64
}

type metrics struct {
	writes, records, bytes, commits atomic.Uint64
	fetches, fetchWaits, fetched    atomic.Uint64
	cleanupRuns, bytesRemoved       atomic.Uint64
}

// Metrics returns a snapshot of the broker's counters. It is cheap and safe
// for concurrent use; after Close, DiskUsage is 0.
func (b *Broker) Metrics() Metrics {
	m := Metrics{
		Writes:          b.m.writes.Load(),
		RecordsAppended: b.m.records.Load(),
		BytesAppended:   b.m.bytes.Load(),
		Commits:         b.m.commits.Load(),
		Fetches:         b.m.fetches.Load(),
		FetchWaits:      b.m.fetchWaits.Load(),
		RecordsFetched:  b.m.fetched.Load(),
		CleanupRuns:     b.m.cleanupRuns.Load(),
		BytesRemoved:    b.m.bytesRemoved.Load(),
	}
	if b.enter() == nil {
		m.DiskUsage = b.db.Metrics().DiskSpaceUsage()
		b.leave()
	}
	return m
}
