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
	// MemTableBytes is the memory held by memtables.
	MemTableBytes uint64
	// BlockCacheBytes is the memory held by the block cache;
	// BlockCacheHits and BlockCacheMisses count its lookups.
	BlockCacheBytes                  int64
	BlockCacheHits, BlockCacheMisses int64
	// BloomHits counts the data block reads that bloom filters avoided;
	// BloomMisses the lookups they could not avoid.
	BloomHits, BloomMisses int64
	// Flushes and Compactions count completed memtable flushes and
	// compactions.
	Flushes, Compactions int64
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
		Stores:           stores,
		DiskBytes:        m.DiskSpaceUsage(),
		MemTableBytes:    m.MemTable.Size,
		BlockCacheBytes:  m.BlockCache.Size,
		BlockCacheHits:   m.BlockCache.Hits,
		BlockCacheMisses: m.BlockCache.Misses,
		BloomHits:        m.Filter.Hits,
		BloomMisses:      m.Filter.Misses,
		Flushes:          m.Flush.Count,
		Compactions:      m.Compact.Count,
	}, nil
}
