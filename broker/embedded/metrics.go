package embedded

import "sync/atomic"

// Metrics is a snapshot of a broker's counters since Open and of the
// sizes of its Pebble database.
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

	// The fields below describe the broker's Pebble database, for
	// watching its memory and disk; they are 0 after Close. Pebble
	// allocates memtables and cached blocks outside the Go heap (with
	// cgo), so they show in the process's resident memory, not in Go's
	// memory statistics.

	// MemTableBytes is the memory held by memtables: the mutable one and
	// those queued for flushing, MemTables in all.
	MemTableBytes uint64
	MemTables     int64
	// ZombieMemTables and ZombieMemTableBytes count the flushed memtables
	// whose memory is still held: by an iterator opened before the flush,
	// or kept for the next memtable to reuse (Pebble keeps one).
	ZombieMemTables     int64
	ZombieMemTableBytes uint64
	// BlockCacheBytes is the memory held by the block cache.
	BlockCacheBytes int64
	// TableCacheTables is the number of sstables open in Pebble's file
	// cache, TableCacheBytes the memory their readers hold;
	// TableIterators is the number of sstable iterators open.
	TableCacheTables, TableCacheBytes int64
	TableIterators                    int64
	// ZombieTables and ZombieTableBytes count the sstables compacted away
	// but still read by an iterator: their space is freed once it closes.
	ZombieTables     int64
	ZombieTableBytes uint64
	// WALFiles is the number of write-ahead log files in use (one per
	// memtable), WALBytes their data not yet flushed to sstables.
	WALFiles int64
	WALBytes uint64
	// CompactionDebt is Pebble's estimate of the bytes compactions must
	// rewrite to bring the LSM back into shape; a debt that keeps growing
	// means compactions do not keep up with writes.
	CompactionDebt uint64
}

type metrics struct {
	writes, records, bytes, commits atomic.Uint64
	fetches, fetchWaits, fetched    atomic.Uint64
	cleanupRuns, bytesRemoved       atomic.Uint64
}

// Metrics returns a snapshot of the broker's counters. It is cheap and safe
// for concurrent use; after Close, DiskUsage and the Pebble fields are 0.
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
		pm := b.db.Metrics()
		b.leave()
		m.DiskUsage = pm.DiskSpaceUsage()
		m.MemTableBytes, m.MemTables = pm.MemTable.Size, pm.MemTable.Count
		m.ZombieMemTables, m.ZombieMemTableBytes = pm.MemTable.ZombieCount, pm.MemTable.ZombieSize
		m.BlockCacheBytes = pm.BlockCache.Size
		m.TableCacheTables, m.TableCacheBytes = pm.FileCache.TableCount, pm.FileCache.Size
		m.TableIterators = pm.TableIters
		m.ZombieTables, m.ZombieTableBytes = pm.Table.ZombieCount, pm.Table.ZombieSize
		m.WALFiles, m.WALBytes = pm.WAL.Files, pm.WAL.Size
		m.CompactionDebt = pm.Compact.EstimatedDebt
	}
	return m
}
