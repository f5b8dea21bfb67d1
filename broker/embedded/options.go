package embedded

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/duality-streams/duality/broker"
)

// Option configures a Broker in Open.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// Defaults of the options.
const (
	DefaultMaxRecordBytes  = 1 << 20
	DefaultCleanupInterval = time.Minute
)

type config struct {
	syncInterval    time.Duration
	maxRecordBytes  int
	fs              vfs.FS
	clock           func() time.Time
	logger          *slog.Logger
	cleanupInterval time.Duration
	diskReserve     int64 // 0: default; negative: no checks
	ackRecordSync   bool
	pebbleOpts      []func(*pebble.Options)
	chunkLen        int // the length of a chunked batch's chunks (chunks.go)
	batchLen        int // the bytes of the batches an append is split into (writer.go)
}

func defaultConfig() config {
	return config{
		maxRecordBytes:  DefaultMaxRecordBytes,
		fs:              vfs.Default,
		clock:           time.Now,
		logger:          slog.New(slog.DiscardHandler),
		cleanupInterval: DefaultCleanupInterval,
		chunkLen:        chunkLen,
		batchLen:        batchLen,
	}
}

// validate reports every problem of c at once; the error matches
// broker.ErrInvalidConfig.
func (c *config) validate() error {
	var errs []error
	if c.syncInterval < 0 {
		errs = append(errs, fmt.Errorf("sync interval %v is negative", c.syncInterval))
	}
	if c.maxRecordBytes <= 0 {
		errs = append(errs, fmt.Errorf("max record bytes %d must be positive", c.maxRecordBytes))
	}
	if c.fs == nil {
		errs = append(errs, errors.New("file system is nil"))
	}
	if c.clock == nil {
		errs = append(errs, errors.New("clock is nil"))
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
	return fmt.Errorf("%w: %w", broker.ErrInvalidConfig, errors.Join(errs...))
}

// WithSyncInterval sets the durability policy.
//
// 0 (the default) syncs the write-ahead log before acknowledging every
// Produce, Commit and CommitOffsets. Concurrent calls share one fsync (group
// commit), so throughput grows with the number of concurrent writers and the
// size of their batches. An acknowledged write survives a process crash
// (kill -9) and a power failure.
//
// d > 0 acknowledges writes without waiting for a sync and syncs the
// write-ahead log every d in the background. On a power failure or an OS
// crash, up to about d of acknowledged writes can be lost. So can the most
// recent ones on a process crash (kill -9): Pebble hands the log to the OS
// asynchronously, in 32 KiB blocks, from process memory (killing a process
// right after 1000 sequential one-record produces lost about 50 of them in
// a test; never more than the last d). Whatever survives is a prefix of what
// was acknowledged: a batch is never partially visible and offsets stay
// contiguous.
//
// Negative values are refused by Open with broker.ErrInvalidConfig.
func WithSyncInterval(d time.Duration) Option {
	return optionFunc(func(c *config) { c.syncInterval = d })
}

// WithAckRecordSync sets whether, in sync mode (WithSyncInterval 0), a
// write is acknowledged only once the acknowledgement record covering it is
// synced too. Default false.
//
// Open checks that every write the record covers survived Pebble's
// recovery and fails with a *LostWritesError otherwise (see the package
// documentation, "Damaged files"). By default the record is written in the
// background after the write-ahead log syncs, at most every 50 ms: it
// trails the acknowledgements by up to about that, so damage to the newest
// write-ahead log that destroys only writes acknowledged in the last 50 ms
// before a crash can look like a torn tail and go unreported. With true
// the record is synced before each acknowledgement, so that any damage to
// an acknowledged write is reported, at the cost of a second fsync on
// every acknowledgement: about half the throughput of one producer
// appending batches of 100 records (BenchmarkAppend). Interval mode
// records at each interval sync, and a cleanly closed directory is fully
// covered either way.
func WithAckRecordSync(strict bool) Option {
	return optionFunc(func(c *config) { c.ackRecordSync = strict })
}

// WithMaxRecordBytes sets the largest record accepted, counting its key,
// value and header keys and values. Default 1 MiB. A Produce or Commit with
// a larger record fails with a *broker.RecordTooLargeError and writes
// nothing of that call. n must be positive.
func WithMaxRecordBytes(n int) Option {
	return optionFunc(func(c *config) { c.maxRecordBytes = n })
}

// WithFS sets the file system, for example vfs.NewMem() or an errorfs for
// fault-injection tests. Default vfs.Default, the operating system's.
//
// The directory lock (see ErrLocked) uses flock(2) on vfs.Default and the
// file system's own Lock otherwise.
func WithFS(fs vfs.FS) Option {
	return optionFunc(func(c *config) { c.fs = fs })
}

// WithClock sets the clock used for records produced with a zero Timestamp
// and for retention and tombstone expiry. Default time.Now.
func WithClock(now func() time.Time) Option {
	return optionFunc(func(c *config) { c.clock = now })
}

// WithLogger sets the logger for the broker and Pebble. Default: a logger
// that discards everything.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) { c.logger = l })
}

// WithCleanupInterval sets how often retention and compaction run in the
// background. Default 1 minute; 0 means the default; negative disables the
// background cleanup (Broker.Cleanup still runs it on demand).
func WithCleanupInterval(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d == 0 {
			d = DefaultCleanupInterval
		}
		c.cleanupInterval = d
	})
}

// WithPebbleOptions lets f adjust the Pebble options after the broker has
// set its tuned values (see the package documentation) and before Open.
// Several calls apply in order. f must not change FS, or anything that
// changes the meaning of keys (Comparer, Merger).
func WithPebbleOptions(f func(*pebble.Options)) Option {
	return optionFunc(func(c *config) { c.pebbleOpts = append(c.pebbleOpts, f) })
}
