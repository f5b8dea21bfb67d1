package embedded

import (
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"

	"github.com/duality-streams/duality/internal/pebblelog"
)

// Tuned Pebble settings; see the package documentation and
// BenchmarkAppend for the measurements behind them.
const (
	memTableSize          = 64 << 20
	blockCacheSize        = 64 << 20
	l0CompactionThreshold = 4
	l0StopWritesThreshold = 32
)

// logCompression is the block compression of the log's sstables: MinLZ
// on amd64 and Snappy on arm64, where MinLZ has no assembly (Pebble's
// "fastest" profile). BenchmarkLogCompression: CPU the same as Snappy's
// within the noise, 2% to 10% less disk; none costs as much CPU or more
// (more bytes to write and read) and 1.5 to 4 times the disk; zstd saves
// half the disk again but costs up to 1.5 times the CPU on larger values.
func logCompression() *sstable.CompressionProfile { return sstable.FastestCompression }

// pebbleOptions returns the Pebble options: tuned defaults, then the
// user's WithPebbleOptions functions, then the settings the broker relies on.
func (b *Broker) pebbleOptions() *pebble.Options {
	logger := pebblelog.Logger{Log: b.log, Name: "embedded"}
	o := &pebble.Options{
		FormatMajorVersion: pebble.FormatNewest,
		MemTableSize:       memTableSize,
		// Pebble reserves every memtable's size in its cache (the
		// mutable one and one being flushed or recycled): without the
		// two memtables added, they would take the whole cache.
		CacheSize:             blockCacheSize + 2*memTableSize,
		L0CompactionThreshold: l0CompactionThreshold,
		L0StopWritesThreshold: l0StopWritesThreshold,
		Logger:                logger,
		EventListener: &pebble.EventListener{
			// Pebble's default exits the process on a corrupt block. The
			// read that found it returns an error matching ErrCorrupt
			// anyway, so log it and carry on.
			DataCorruption: func(info pebble.DataCorruptionInfo) {
				b.log.Error("embedded: on-disk corruption", "path", info.Path, "error", info.Details)
			},
		},
	}
	o.EnsureDefaults()
	for i := range o.Levels {
		o.Levels[i].Compression = logCompression
	}
	for _, f := range b.cfg.pebbleOpts {
		f(o)
	}
	o.FS = b.space.WatchFS(b.cfg.fs) // see diskspace.go
	o.Logger = logger
	var el pebble.EventListener
	if o.EventListener != nil {
		el = *o.EventListener
	}
	walCreated := el.WALCreated
	o.EventListener = &el
	el.WALCreated = func(info pebble.WALCreateInfo) {
		// Called by the goroutine whose commit rotated the log: the
		// writer, while it applies batch b.applying.
		b.rotatedAt.Store(b.applying.Load())
		if walCreated != nil {
			walCreated(info)
		}
	}
	o.ReadOnly = false
	o.DisableWAL = false
	return o
}

// recoverFatal turns a pebblelog.Fatal panic into an error in *errp; any
// other panic continues.
func recoverFatal(errp *error) {
	if r := recover(); r != nil {
		*errp = pebblelog.FromPanic(r, "embedded: storage failed")
	}
}

// enterRecoverable marks the current goroutine as recovering Pebble's fatal
// errors (see package pebblelog) until the returned function is called.
func enterRecoverable() (exit func()) { return pebblelog.Enter() }
