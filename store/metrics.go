package store

import "fmt"

// Metrics is a snapshot of a PebbleDB's counters and sizes. Counters are
// cumulative since OpenPebble.
type Metrics struct {
	// Stores is the number of stores in the catalog (dropped ones
	// included: Drop keeps a store's id).
	Stores int
	// DiskBytes is the space the database takes on disk: sstables,
	// write-ahead logs, manifests.
	DiskBytes uint64
	// MemTableBytes is the memory held by memtables: the mutable one
	// and those queued for flushing, MemTables in all.
	MemTableBytes uint64
	MemTables     int64
	// ZombieMemTables and ZombieMemTableBytes count the flushed memtables
	// whose memory is still held: by an iterator opened before the flush,
	// or kept for the next memtable to reuse (Pebble keeps one).
	ZombieMemTables     int64
	ZombieMemTableBytes uint64
	// BlockCacheBytes is the memory held by the block cache;
	// BlockCacheHits and BlockCacheMisses count its lookups. Pebble
	// allocates memtables and cached blocks outside the Go heap (with
	// cgo), so they show in the process's resident memory, not in Go's
	// memory statistics.
	BlockCacheBytes                  int64
	BlockCacheHits, BlockCacheMisses int64
	// BloomHits counts the data block reads that bloom filters avoided;
	// BloomMisses the lookups they could not avoid.
	BloomHits, BloomMisses int64
	// Flushes and Compactions count completed memtable flushes and
	// compactions.
	Flushes, Compactions int64
	// CompactionDebt is Pebble's estimate of the bytes compactions must
	// rewrite to bring the LSM back into shape; a debt that keeps growing
	// means compactions do not keep up with writes.
	CompactionDebt uint64
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
}

// Metrics returns a snapshot of the DB's metrics, or ErrClosed.
func (d *PebbleDB) Metrics() (Metrics, error) {
	if d.closed.Load() {
		return Metrics{}, fmt.Errorf("store: metrics: %w", ErrClosed)
	}
	m := d.db.Metrics()
	d.mu.Lock()
	stores := len(d.mu.ids)
	d.mu.Unlock()
	return Metrics{
		Stores:              stores,
		DiskBytes:           m.DiskSpaceUsage(),
		MemTableBytes:       m.MemTable.Size,
		MemTables:           m.MemTable.Count,
		ZombieMemTables:     m.MemTable.ZombieCount,
		ZombieMemTableBytes: m.MemTable.ZombieSize,
		BlockCacheBytes:     m.BlockCache.Size,
		BlockCacheHits:      m.BlockCache.Hits,
		BlockCacheMisses:    m.BlockCache.Misses,
		BloomHits:           m.Filter.Hits,
		BloomMisses:         m.Filter.Misses,
		Flushes:             m.Flush.Count,
		Compactions:         m.Compact.Count,
		CompactionDebt:      m.Compact.EstimatedDebt,
		TableCacheTables:    m.FileCache.TableCount,
		TableCacheBytes:     m.FileCache.Size,
		TableIterators:      m.TableIters,
		ZombieTables:        m.Table.ZombieCount,
		ZombieTableBytes:    m.Table.ZombieSize,
		WALFiles:            m.WAL.Files,
		WALBytes:            m.WAL.Size,
	}, nil
}
