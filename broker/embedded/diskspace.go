package embedded

import (
	"errors"
	"fmt"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/diskspace"
)

// A full disk is an error, never a hang or a crash: Pebble panics (in a
// way no recover catches) on the write-ahead log rotation after a failed
// log write, and retries a failed flush forever while it opens. So the
// broker refuses writes while the file system still has room for what
// Pebble writes on its own (see package internal/diskspace): the writer
// admits each group before committing it, and Open checks that the
// write-ahead log it replays can be flushed before it lets Pebble open.

// WithDiskReserve sets the space, in bytes, that the broker keeps free on
// the file system of its data directory for Pebble's own writes (manifest
// and options files, the flushes of a reopen). A Produce or Commit that
// would leave less free than the reserve plus the room to flush the
// write-ahead log is refused with an error matching broker.ErrDiskFull;
// it wrote nothing and is retryable (broker.IsRetryable) once space is
// freed. The reserve is also held by an emergency ballast file in the data
// directory (EMERGENCY-BALLAST), which Open deletes when the directory
// could not otherwise be opened. Default: a thousandth of the file system,
// at least 1 MiB, at most 64 MiB. Negative disables the checks (and the
// ballast); so does a file system that cannot report its free space
// (vfs.NewMem).
func WithDiskReserve(n int64) Option {
	return optionFunc(func(c *config) { c.diskReserve = n })
}

// openSpace sets up the disk space guard and checks that the database can
// open; see diskspace.Guard.Open. It returns the function to call once the
// database is open.
func (b *Broker) openSpace() (opened func(), err error) {
	b.space = diskspace.New(diskspace.Config{
		FS:       b.cfg.fs,
		Dir:      b.dir,
		Sentinel: broker.ErrDiskFull,
		Reserve:  b.cfg.diskReserve,
		Log:      b.log,
	})
	established, err := b.space.Open(b.replayBytes)
	if err != nil {
		return nil, err
	}
	return func() {
		established()
		b.space.SetUnflushed(func() int64 { return int64(b.db.Metrics().WAL.Size) })
	}, nil
}

// replayBytes returns the bytes of write-ahead log an open replays (and
// flushes): those of the logs a read-only open, which writes nothing,
// replays.
func (b *Broker) replayBytes() (int64, error) {
	o := b.pebbleOptions()
	o.ReadOnly = true
	replayed := &diskspace.ReplayLogger{Logger: o.Logger}
	o.Logger = replayed
	db, err := openPebble(b.dir, o)
	if err != nil {
		return 0, wrapRead("measure the write-ahead log", err)
	}
	if err := db.Close(); err != nil {
		return 0, fmt.Errorf("measure the write-ahead log: %w", err)
	}
	return replayed.Bytes(b.cfg.fs, b.dir)
}

// admitGroup admits the staged group before the writer commits it. A group
// that appends records is admitted by its size; one that only commits
// offsets or edits retention (which frees space) only needs half the
// reserve.
func (w *writer) admitGroup() error {
	if err := w.b.space.Failed(); err != nil {
		// A write-ahead log write failed: Pebble would panic at its next
		// log rotation. Refuse this and every later write.
		return w.fail(err)
	}
	for _, op := range w.ops {
		if op.kind == opAppend && len(op.records) > 0 {
			return w.b.space.Admit(int64(w.batch.Len()))
		}
	}
	return w.b.space.AdmitSmall()
}

// The FS given to Pebble is watched (diskspace.Guard.WatchFS), so that a
// write-ahead log write that fails in the background fails the broker
// before its next commit reaches Pebble's log rotation.

// diskFull makes a Pebble write error that says the disk is full match
// broker.ErrDiskFull; other errors are returned as they are.
func diskFull(err error) error {
	if diskspace.IsNoSpace(err) && !errors.Is(err, broker.ErrDiskFull) {
		return fmt.Errorf("%w: %w", broker.ErrDiskFull, err)
	}
	return err
}
