package store

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/duality-streams/duality/internal/diskspace"
	"github.com/duality-streams/duality/internal/pebblelog"
)

// A full disk is an error, never a crash: after a failed write-ahead log
// write Pebble's next log rotation panics with its mutex unlocked (Go's
// "fatal error: sync: unlock of unlocked mutex", which no recover
// catches), and a flush that fails while it opens is retried forever. So
// the DB refuses writes while the file system still has room for what
// Pebble writes on its own (see package internal/diskspace): Apply, Drop
// and store creation admit each write before Pebble sees it, and
// OpenPebble checks that the write-ahead log it replays can be flushed.
// The FS given to Pebble is watched (diskspace.Guard.WatchFS): once a
// write-ahead log write has failed (another process filled the disk
// between two measures), every later write is refused before it can reach
// Pebble's log rotation, and the DB must be reopened.

// WithDiskReserve sets the space, in bytes, that the DB keeps free on the
// file system of its directory for Pebble's own writes (manifest and
// options files, the flushes of a reopen). An Apply that would leave less
// free than the reserve plus the room to flush the write-ahead log fails
// with an error matching ErrDiskFull and writes nothing; it may succeed
// once space is freed. The reserve is also held by an emergency ballast
// file in the directory (EMERGENCY-BALLAST), which OpenPebble deletes when
// the database could not otherwise be opened. Default: a thousandth of the
// file system, at least 1 MiB, at most 64 MiB. Negative disables the
// checks (and the ballast); so does a file system that cannot report its
// free space (vfs.NewMem).
func WithDiskReserve(n int64) Option {
	return optionFunc(func(c *config) { c.diskReserve = n })
}

// openSpace sets up the disk space guard and checks that the database can
// open; see diskspace.Guard.Open. It returns the function to call once the
// database is open.
func (d *PebbleDB) openSpace() (opened func(), err error) {
	d.space = diskspace.New(diskspace.Config{
		FS:       d.cfg.fs,
		Dir:      d.dir,
		Sentinel: ErrDiskFull,
		Reserve:  d.cfg.diskReserve,
		Log:      d.cfg.logger,
		// One Apply per commit and store: measuring each costs a statfs
		// (about 5 us) and notices another process filling the disk at
		// the next write.
		Eager: true,
	})
	if _, err := d.cfg.fs.Stat(d.dir); err != nil {
		// A new database: nothing to replay.
		return func() {
			d.space.EstablishBallast()
			d.spaceOpened()
		}, nil
	}
	established, err := d.space.Open(d.replayBytes)
	if err != nil {
		return nil, err
	}
	return func() {
		established()
		d.spaceOpened()
	}, nil
}

func (d *PebbleDB) spaceOpened() {
	d.space.SetUnflushed(func() int64 { return int64(d.db.Metrics().WAL.Size) })
}

// replayBytes returns the bytes of write-ahead log an open replays (and
// flushes): those of the logs a read-only open, which writes nothing,
// replays.
func (d *PebbleDB) replayBytes() (n int64, err error) {
	o := d.pebbleOptions()
	o.ReadOnly = true
	replayed := &diskspace.ReplayLogger{Logger: o.Logger}
	o.Logger = replayed
	defer pebblelog.Enter()()
	defer func() {
		if r := recover(); r != nil {
			err = pebblelog.FromPanic(r, "measure the write-ahead log")
		}
	}()
	db, err := pebble.Open(d.dir, o)
	if err != nil {
		return 0, fmt.Errorf("measure the write-ahead log: %w", err)
	}
	if err := db.Close(); err != nil {
		return 0, fmt.Errorf("measure the write-ahead log: %w", err)
	}
	return replayed.Bytes(d.cfg.fs, d.dir)
}
