package store

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Option configures a PebbleDB in OpenPebble.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// Defaults of the options.
const (
	DefaultBlockCacheSize  = 64 << 20
	DefaultMemTableSize    = 32 << 20
	DefaultBloomBitsPerKey = 10
)

type config struct {
	blockCacheSize int64
	memTableSize   int64
	bloomBits      int
	sync           bool
	fs             vfs.FS
	logger         *slog.Logger
	diskReserve    int64 // 0: default; negative: no checks
	pebbleOpts     []func(*pebble.Options)
}

func defaultConfig() config {
	return config{
		blockCacheSize: DefaultBlockCacheSize,
		memTableSize:   DefaultMemTableSize,
		bloomBits:      DefaultBloomBitsPerKey,
		fs:             vfs.Default,
		logger:         slog.New(slog.DiscardHandler),
	}
}

// validate reports every problem of c at once; the error matches
// ErrInvalidConfig.
func (c *config) validate() error {
	var errs []error
	if c.blockCacheSize < 0 {
		errs = append(errs, fmt.Errorf("block cache size %d is negative", c.blockCacheSize))
	}
	if c.memTableSize < 64<<10 || c.memTableSize >= 4<<30 {
		errs = append(errs, fmt.Errorf("memtable size %d is not in [64 KiB, 4 GiB)", c.memTableSize))
	}
	if c.bloomBits < 0 || c.bloomBits > 32 {
		errs = append(errs, fmt.Errorf("bloom filter bits per key %d is not in [0, 32]", c.bloomBits))
	}
	if c.fs == nil {
		errs = append(errs, errors.New("file system is nil"))
	}
	if c.logger == nil {
		errs = append(errs, errors.New("logger is nil"))
	}
	for _, f := range c.pebbleOpts {
		if f == nil {
			errs = append(errs, errors.New("pebble options function is nil"))
			break
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
}

// WithBlockCacheSize sets the size in bytes of Pebble's block cache for
// data, filter and index blocks, shared by every store of the DB. Default
// 64 MiB (Pebble's own default is 8 MiB). Pebble charges its memtables
// against the same cache, so the DB's Pebble cache is sized n plus two
// memtables (see [WithMemTableSize]): without that, the default memtables
// would take the whole cache and every read of a large store would go to
// the file system. 0 gives Pebble's default cache, from which memtables
// are also taken; negative values are refused.
func WithBlockCacheSize(n int64) Option {
	return optionFunc(func(c *config) { c.blockCacheSize = n })
}

// WithMemTableSize sets the size in bytes of one Pebble memtable; Pebble
// keeps up to two before it stalls writes. Default 32 MiB (Pebble's is
// 4 MiB): fewer, larger flushes for the update-heavy write pattern of
// aggregations. It must be in [64 KiB, 4 GiB).
func WithMemTableSize(n int64) Option {
	return optionFunc(func(c *config) { c.memTableSize = n })
}

// WithBloomFilterBitsPerKey sets the bits per key of the bloom filters that
// Pebble builds on every level, so that a Get of an absent key rarely
// reads a data block. Default 10 (about 1% false positives); 0 disables
// them; at most 32.
func WithBloomFilterBitsPerKey(n int) Option {
	return optionFunc(func(c *config) { c.bloomBits = n })
}

// WithSync makes every Apply, Drop and store creation sync Pebble's
// write-ahead log before returning, so a returned Apply survives a process
// crash and a power failure. Default false: a write is atomic at once but
// durable only once Pebble syncs (at the latest at Close). Pebble hands
// the log to the OS asynchronously, so even a process crash (kill -9) can
// lose the most recent batches (TestKillNine loses up to about 20 of its
// small batches). Whatever survives is consistent: the data and offset of
// one earlier Apply, from which the store catches up on its changelog.
func WithSync(sync bool) Option {
	return optionFunc(func(c *config) { c.sync = sync })
}

// WithFS sets the file system, for example vfs.NewMem() in tests or an
// errorfs for fault injection. Default vfs.Default, the operating system's.
func WithFS(fs vfs.FS) Option {
	return optionFunc(func(c *config) { c.fs = fs })
}

// WithLogger sets the logger for the DB and Pebble. Default: a logger that
// discards everything.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) { c.logger = l })
}

// WithPebbleOptions lets f adjust the Pebble options after the DB has set
// its tuned values (block cache, memtable, bloom filters, L0 thresholds)
// and before Open. Several calls apply in order. f must not change FS,
// Comparer or Merger, which the DB sets after f.
func WithPebbleOptions(f func(*pebble.Options)) Option {
	return optionFunc(func(c *config) { c.pebbleOpts = append(c.pebbleOpts, f) })
}
