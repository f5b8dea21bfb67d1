// Package diskspace keeps a Pebble database from filling its file system,
// for every package that writes one (broker/embedded, store).
//
// Pebble cannot survive a full disk: a failed write-ahead log write makes
// its next log rotation panic with its mutex unlocked (Go's "fatal error:
// sync: unlock of unlocked mutex", which no recover catches), a failed
// manifest write is fatal, and a flush that fails while the database opens
// is retried forever. So writes must be refused before the disk is full,
// while Pebble still has room for what it writes on its own: the
// sstables of the memtables it flushes, manifest edits, a reopen.
//
// A [Guard] admits writes: it refuses one, with a [*FullError], when the
// free space (statfs, through the Pebble vfs) minus the room needed to
// flush the unflushed data would fall below a reserve. It measures lazily:
// again after a tenth of a second, or once the writes admitted since the
// last measure could have used half of the margin; between measures an
// admission is two atomic additions and a clock read.
//
// The reserve is also held as an emergency ballast file in the directory,
// as CockroachDB does (pkg/storage/ballast.go): a preallocated file that
// [Guard.Open] deletes when the database could not otherwise reopen, so a
// disk filled by someone else still leaves room to replay and flush the
// write-ahead log. It is recreated at a later open once there is room.
package diskspace

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Bounds of the default reserve: a thousandth of the file system, within
// [MinReserve, MaxReserve]. CockroachDB's ballast is 1% up to 1 GiB for a
// database that owns its disk; an embedded library shares the machine (and
// tests put many data directories on one tmpfs), so ours is smaller.
const (
	MinReserve = 1 << 20
	MaxReserve = 64 << 20
)

// BallastFile is the name of the emergency ballast file in a data directory.
const BallastFile = "EMERGENCY-BALLAST"

// flushCost is the room kept to flush one byte of unflushed data, in
// quarters: an sstable holds the data of its write-ahead log plus per-key
// trailers, index and filter blocks, so 5/4 of it.
const flushCost = 5

// refreshEvery bounds the age of the free space a Guard works from.
const refreshEvery = 100 * time.Millisecond

// FullError reports a write or an open refused because the file system is
// (nearly) full. It matches its package's sentinel (Is) and says it is
// retryable: the same call may succeed once space is freed.
type FullError struct {
	Sentinel error  // broker.ErrDiskFull, store.ErrDiskFull
	Op       string // "write", "open"
	Dir      string
	Free     int64 // bytes free on the file system
	Needed   int64 // bytes that must stay free (reserve, room to flush, the write)
}

func (e *FullError) Error() string {
	why := "the reserve kept for Pebble, room to flush its write-ahead log and the write itself"
	if e.Op == "open" {
		why = "room to flush the write-ahead log the open replays, and half the reserve"
	}
	return fmt.Sprintf("%v: %s refused in %s: %s free, %s needed (%s); free space on the file system and retry",
		e.Sentinel, e.Op, e.Dir, formatBytes(e.Free), formatBytes(e.Needed), why)
}

// Is reports whether target is e's sentinel.
func (e *FullError) Is(target error) bool { return target == e.Sentinel }

// Retryable reports true: once space is freed, the call may succeed.
func (e *FullError) Retryable() bool { return true }

// IsNoSpace reports whether err is the file system's "no space left on
// device" (or "disk quota exceeded").
func IsNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// Config configures a Guard.
type Config struct {
	FS       vfs.FS
	Dir      string
	Sentinel error
	// Reserve is the space kept free; 0 chooses the default (see
	// DefaultReserve), negative disables the guard.
	Reserve int64
	Log     *slog.Logger
	// Eager measures the free space at every admission (a statfs, about
	// 5 us), for writers whose writes are few and large (the state
	// store's, one per commit): another process filling the disk is then
	// noticed at the next write. The unflushed bytes are still read at
	// most every 100 ms.
	Eager bool
}

// Guard admits writes to one database. It is safe for concurrent use.
type Guard struct {
	cfg     Config
	reserve int64
	enabled bool

	// unflushed returns the bytes of the database not yet flushed to
	// sstables (its live write-ahead log); set by SetUnflushed.
	unflushed atomic.Pointer[func() int64]

	walErr atomic.Pointer[error] // see WatchFS

	mu sync.Mutex // serializes measures
	// flush is the room to flush the unflushed bytes, read at flushAt,
	// plus that of the writes admitted since; guarded by mu.
	flush   int64
	flushAt int64
	// flushRoom is flush, for readers that must not take mu (see
	// admitPreallocate).
	flushRoom atomic.Int64

	margin atomic.Int64 // free - reserve - room to flush, at the last measure
	spent  atomic.Int64 // cost of the writes admitted since
	at     atomic.Int64 // when, in nanoseconds since epoch (monotonic)
	full   atomic.Bool  // the last admission was refused
}

var epoch = time.Now()

func now() int64 { return int64(time.Since(epoch)) }

// DefaultReserve returns the default reserve for a file system of total
// bytes.
func DefaultReserve(total int64) int64 {
	return min(max(total/1000, MinReserve), MaxReserve)
}

// New returns a Guard for cfg.Dir. If the file system cannot report its
// free space (vfs.NewMem without TestingSetDiskUsage), or cfg.Reserve is
// negative, the guard admits everything.
func New(cfg Config) *Guard {
	g := &Guard{cfg: cfg}
	if cfg.Log == nil {
		g.cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Reserve < 0 {
		return g
	}
	du, err := g.usage()
	if err != nil {
		g.cfg.Log.Debug("disk space: free space unknown, writes are not limited", "dir", cfg.Dir, "error", err)
		return g
	}
	g.enabled = true
	g.expire()
	g.reserve = cfg.Reserve
	if g.reserve == 0 {
		g.reserve = DefaultReserve(int64(du.TotalBytes))
	}
	return g
}

// usage returns the disk usage of the file system of g's directory, or of
// its nearest existing parent before the directory is created.
func (g *Guard) usage() (vfs.DiskUsage, error) {
	fs, path := g.cfg.FS, g.cfg.Dir
	for {
		du, err := fs.GetDiskUsage(path)
		if err == nil || !errors.Is(err, os.ErrNotExist) {
			return du, err
		}
		parent := fs.PathDir(path)
		if parent == path {
			return du, err
		}
		path = parent
	}
}

// Enabled reports whether g limits writes.
func (g *Guard) Enabled() bool { return g.enabled }

// Reserve returns the space g keeps free, in bytes.
func (g *Guard) Reserve() int64 { return g.reserve }

// SetUnflushed sets the function that returns the bytes the database
// holds unflushed (its live write-ahead log), called at each measure.
func (g *Guard) SetUnflushed(f func() int64) {
	g.mu.Lock()
	g.unflushed.Store(&f)
	g.flushAt = 0
	g.mu.Unlock()
	g.expire()
}

// expire makes the next admission measure.
func (g *Guard) expire() { g.at.Store(-int64(refreshEvery)) }

// cost is the space a write of n bytes takes: its write-ahead log record
// now, its sstable at the next flush.
func cost(n int64) int64 { return n + n*flushCost/4 }

// Admit admits a write of n bytes, or refuses it with a *FullError when it
// would leave less free than the reserve plus the room to flush everything
// unflushed.
func (g *Guard) Admit(n int64) error {
	if err := g.Failed(); err != nil {
		return err
	}
	if !g.enabled {
		return nil
	}
	c := cost(n)
	if !g.cfg.Eager && !g.full.Load() && now()-g.at.Load() < int64(refreshEvery) {
		if g.spent.Add(c) <= g.margin.Load()/2 {
			return nil
		}
		g.spent.Add(-c)
	}
	return g.measure(n)
}

// AdmitSmall admits a small write that frees space or that Pebble needs to
// go on (deleting a topic or records, a sync): it is refused only when
// less than half the reserve is free.
func (g *Guard) AdmitSmall() error {
	if err := g.Failed(); err != nil {
		return err
	}
	if !g.enabled {
		return nil
	}
	du, err := g.usage()
	if err != nil {
		return nil
	}
	if free := int64(du.AvailBytes); free < g.reserve/2 {
		return &FullError{Sentinel: g.cfg.Sentinel, Op: "write", Dir: g.cfg.Dir, Free: free, Needed: g.reserve / 2}
	}
	return nil
}

// measure measures the free space and admits a write of n bytes.
func (g *Guard) measure(n int64) error {
	c := cost(n)
	g.mu.Lock()
	defer g.mu.Unlock()
	du, err := g.usage()
	if err != nil {
		// Free space unknown this time: do not refuse on a guess, and
		// try again at the next admission.
		g.cfg.Log.Warn("disk space: cannot measure free space", "dir", g.cfg.Dir, "error", err)
		g.expire()
		return nil
	}
	free := int64(du.AvailBytes)
	t := now()
	if f := g.unflushed.Load(); f != nil && (!g.cfg.Eager || g.flushAt == 0 || t-g.flushAt >= int64(refreshEvery)) {
		g.flush, g.flushAt = (*f)()*flushCost/4, max(t, 1)
	}
	flush := g.flush
	g.flushRoom.Store(flush)
	margin := free - g.reserve - flush
	g.margin.Store(margin)
	g.spent.Store(0)
	g.at.Store(t)
	if c > margin {
		if !g.full.Swap(true) {
			g.cfg.Log.Error("disk space: file system nearly full, refusing writes", "dir", g.cfg.Dir,
				"free", free, "reserve", g.reserve, "flush", flush)
		}
		return &FullError{Sentinel: g.cfg.Sentinel, Op: "write", Dir: g.cfg.Dir, Free: free, Needed: g.reserve + flush + c}
	}
	if g.full.Swap(false) {
		g.cfg.Log.Info("disk space: space available again, accepting writes", "dir", g.cfg.Dir, "free", free)
	}
	g.spent.Store(c)
	g.flush += n * flushCost / 4 // until the next read of the unflushed bytes
	g.flushRoom.Store(g.flush)
	return nil
}

// Open checks that the database in g's directory can open: Pebble flushes
// the write-ahead logs it replays, which needs about their size again, and
// writes a manifest and an options file. walBytes returns the bytes of
// write-ahead log the open will replay (see WALBytes); it is only called
// when the free space is short of the whole directory's logs.
//
// If the space is short, Open deletes the emergency ballast and checks
// again; if it is still short, it returns a *FullError, before Pebble
// could start an open that retries its flush forever. Otherwise it returns
// a function to call once the database is open: it (re)creates the ballast
// when the file system has room for it.
func (g *Guard) Open(walBytes func() (int64, error)) (established func(), err error) {
	noop := func() {}
	if !g.enabled {
		return noop, nil
	}
	fs, dir := g.cfg.FS, g.cfg.Dir
	du, err := fs.GetDiskUsage(dir)
	if err != nil {
		return noop, nil
	}
	free := int64(du.AvailBytes)
	logs, err := logBytes(fs, dir)
	if err != nil {
		return nil, err
	}
	needed := func(wal int64) int64 { return g.reserve/2 + wal*flushCost/4 }
	if free < needed(logs) {
		// The directory's logs may include recycled ones the open will
		// not replay: ask for the exact amount.
		if logs, err = walBytes(); err != nil {
			return nil, err
		}
	}
	ballast := fs.PathJoin(dir, BallastFile)
	if free < needed(logs) {
		if fi, err := fs.Stat(ballast); err == nil {
			if err := fs.Remove(ballast); err != nil {
				return nil, fmt.Errorf("remove emergency ballast: %w", err)
			}
			g.cfg.Log.Warn("disk space: removed the emergency ballast to open", "dir", dir, "ballast", fi.Size(), "free", free)
			if du, err = fs.GetDiskUsage(dir); err == nil {
				free = int64(du.AvailBytes)
			}
		}
	}
	if free < needed(logs) {
		return nil, &FullError{Sentinel: g.cfg.Sentinel, Op: "open", Dir: dir, Free: free, Needed: needed(logs)}
	}
	return g.EstablishBallast, nil
}

// EstablishBallast creates the emergency ballast file if it is missing or
// short and a quarter of the free space covers it (CockroachDB's rule).
// Call it once the database is open.
func (g *Guard) EstablishBallast() {
	if !g.enabled {
		return
	}
	fs, size := g.cfg.FS, g.reserve
	path := fs.PathJoin(g.cfg.Dir, BallastFile)
	var have int64
	if fi, err := fs.Stat(path); err == nil {
		have = fi.Size()
	}
	if have >= size {
		return
	}
	du, err := fs.GetDiskUsage(g.cfg.Dir)
	if err != nil || size-have > int64(du.AvailBytes)/4 {
		return
	}
	if err := writeBallast(fs, g.cfg.Dir, path, size); err != nil {
		_ = fs.Remove(path)
		g.cfg.Log.Warn("disk space: cannot create the emergency ballast", "path", path, "error", err)
		return
	}
	g.cfg.Log.Info("disk space: emergency ballast in place", "path", path, "bytes", size)
}

// writeBallast writes a file of size bytes that holds its blocks (a sparse
// file would hold nothing): preallocated where the file system can
// (fallocate, then one byte written at the end to set the size), zeros
// written where it cannot.
func writeBallast(fs vfs.FS, dir, path string, size int64) error {
	tmp := path + ".tmp"
	f, err := fs.Create(tmp, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	fail := func(err error) error {
		_ = f.Close()
		_ = fs.Remove(tmp)
		return err
	}
	before, errBefore := fs.GetDiskUsage(dir)
	allocated := false
	if errBefore == nil && f.Preallocate(0, size) == nil {
		if _, err := f.WriteAt([]byte{0}, size-1); err != nil {
			return fail(err)
		}
		// Trust the preallocation only if the free space went down.
		after, err := fs.GetDiskUsage(dir)
		allocated = err == nil && int64(before.AvailBytes)-int64(after.AvailBytes) >= size/2
	}
	if !allocated {
		zeros := make([]byte, 256<<10)
		for off := int64(0); off < size; {
			n := min(size-off, int64(len(zeros)))
			if _, err := f.WriteAt(zeros[:n], off); err != nil {
				return fail(err)
			}
			off += n
		}
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		_ = fs.Remove(tmp)
		return err
	}
	return fs.Rename(tmp, path)
}

// logBytes returns the total size of the write-ahead log files (*.log) in
// dir.
func logBytes(fs vfs.FS, dir string) (int64, error) {
	names, err := fs.List(dir)
	if err != nil {
		return 0, fmt.Errorf("list %s: %w", dir, err)
	}
	var n int64
	for _, name := range names {
		if len(name) < 4 || name[len(name)-4:] != ".log" {
			continue
		}
		fi, err := fs.Stat(fs.PathJoin(dir, name))
		if err != nil {
			continue // deleted meanwhile
		}
		n += fi.Size()
	}
	return n, nil
}

// ReplayLogger is a Pebble logger that notes the write-ahead logs Pebble
// replays while it opens, from its "[JOB n] WAL 000012: {...} stopped
// reading at offset" lines, and passes every line on to Logger.
type ReplayLogger struct {
	Logger interface {
		Infof(format string, args ...any)
		Errorf(format string, args ...any)
		Fatalf(format string, args ...any)
	}
	mu   sync.Mutex
	logs []string // file numbers of the replayed logs
}

var replayedWAL = regexp.MustCompile(`\] WAL (\d+): .* stopped reading at offset`)

// Infof notes a replayed log and passes the line on.
func (l *ReplayLogger) Infof(format string, args ...any) {
	if m := replayedWAL.FindStringSubmatch(fmt.Sprintf(format, args...)); m != nil {
		l.mu.Lock()
		l.logs = append(l.logs, m[1])
		l.mu.Unlock()
	}
	l.Logger.Infof(format, args...)
}

// Errorf passes the line on.
func (l *ReplayLogger) Errorf(format string, args ...any) { l.Logger.Errorf(format, args...) }

// Fatalf passes the line on.
func (l *ReplayLogger) Fatalf(format string, args ...any) { l.Logger.Fatalf(format, args...) }

// Bytes returns the size of the replayed logs in dir. If no replay was
// noted (a Pebble whose log lines differ), it returns the size of every
// log in dir, which counts the recycled ones too: more than the open
// needs, never less.
func (l *ReplayLogger) Bytes(fs vfs.FS, dir string) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.logs) == 0 {
		return logBytes(fs, dir)
	}
	var n int64
	for _, num := range l.logs {
		fi, err := fs.Stat(fs.PathJoin(dir, num+".log"))
		if err != nil {
			return logBytes(fs, dir)
		}
		n += fi.Size()
	}
	return n, nil
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
