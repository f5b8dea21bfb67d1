package diskspace

import (
	"fmt"
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// A write-ahead log write that fails (the disk filled up between two
// measures, because of another process) breaks Pebble's log writer for
// good: the next log rotation, in the commit that fills the memtable,
// panics. WatchFS notices the failure as it happens, so that the guard
// refuses every later write before it reaches Pebble: the database must be
// reopened.

// Pebble also preallocates each write-ahead log file (fallocate with
// FALLOC_FL_KEEP_SIZE) at its second write: 110% of the
// memtable size, 35 MiB for the store's 32 MiB memtables and 70 MiB for
// the log's 64 MiB ones, whatever the file system's size, and it ignores
// a failure. Those blocks are taken at once, outside the writes the guard
// admits, and up to three recycled logs keep theirs. A preallocation that
// does not fit is worse: the kernel allocates block by block until the
// file system is full, then fails (tmpfs frees the blocks again; other
// file systems may keep them). For that while nothing is free, and any
// write then fails with ENOSPC: a flush, a manifest edit, another
// database's log; a guard measuring then refuses writes on a file system
// that is mostly empty. So WatchFS lets a log file be preallocated only
// when the preallocation takes at most half of the margin the guard keeps
// (free space minus the reserve and the room to flush); otherwise the
// file just grows as it is written, which costs a little more at each
// sync and nothing else.

// WatchFS returns fs wrapped so that a failed write or sync of a
// write-ahead log file (*.log) is recorded in g (see Failed), and a
// preallocation of one is skipped when it would eat into the space the
// guard keeps (see admitPreallocate). Pass it to Pebble as Options.FS.
func (g *Guard) WatchFS(fs vfs.FS) vfs.FS { return &watchFS{FS: fs, g: g} }

// Failed returns the error of the first failed write-ahead log write or
// sync, or nil. Admit returns it too: a database whose log failed takes no
// more writes.
func (g *Guard) Failed() error {
	if p := g.walErr.Load(); p != nil {
		return *p
	}
	return nil
}

func (g *Guard) walFailed(op, path string, err error) {
	// err names the file (an *os.PathError) but perhaps not the operation.
	if IsNoSpace(err) {
		err = fmt.Errorf("%w: write-ahead log %s failed: %w; reopen once space is freed", g.cfg.Sentinel, op, err)
	} else {
		err = fmt.Errorf("write-ahead log %s failed: %w; reopen", op, err)
	}
	if g.walErr.CompareAndSwap(nil, &err) {
		g.cfg.Log.Error("disk space: write-ahead log failed, refusing writes", "dir", g.cfg.Dir, "file", path, "error", err)
	}
}

// admitPreallocate reports whether a write-ahead log file may be
// preallocated n more bytes: when g limits nothing, or when n is at most
// half of the margin above the reserve and the room to flush, measured
// now (once per preallocation, that is per 35 or 70 MiB of log). It takes
// no lock: Pebble may preallocate while it holds its own mutex, which a
// measure waits for.
func (g *Guard) admitPreallocate(n int64) bool {
	if !g.enabled {
		return true
	}
	du, err := g.usage()
	if err != nil {
		return false // unknown free space: the file grows as written
	}
	free := int64(du.AvailBytes)
	margin := free - g.reserve - g.flushRoom.Load()
	if n <= margin/2 {
		return true
	}
	g.cfg.Log.Debug("disk space: write-ahead log not preallocated", "dir", g.cfg.Dir,
		"bytes", n, "free", free, "reserve", g.reserve)
	return false
}

type watchFS struct {
	vfs.FS
	g *Guard
}

func (w *watchFS) Unwrap() vfs.FS { return w.FS }

func (w *watchFS) watch(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	return &watchFile{File: f, g: w.g, name: name}, nil
}

func (w *watchFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := w.FS.Create(name, c)
	return w.watch(name, f, err)
}

func (w *watchFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := w.FS.OpenReadWrite(name, c, opts...)
	return w.watch(name, f, err)
}

func (w *watchFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := w.FS.ReuseForWrite(oldname, newname, c)
	return w.watch(newname, f, err)
}

type watchFile struct {
	vfs.File
	g    *Guard
	name string
}

func (f *watchFile) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	if err != nil {
		f.g.walFailed("write", f.name, err)
	}
	return n, err
}

func (f *watchFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.File.WriteAt(p, off)
	if err != nil {
		f.g.walFailed("write", f.name, err)
	}
	return n, err
}

// Preallocate preallocates the file when the guard admits it (see
// admitPreallocate) and otherwise does nothing: Pebble ignores its
// result, and the file grows as it is written.
func (f *watchFile) Preallocate(offset, length int64) error {
	if !f.g.admitPreallocate(length) {
		return nil
	}
	return f.File.Preallocate(offset, length)
}

func (f *watchFile) Sync() error {
	err := f.File.Sync()
	if err != nil {
		f.g.walFailed("sync", f.name, err)
	}
	return err
}

func (f *watchFile) SyncData() error {
	err := f.File.SyncData()
	if err != nil {
		f.g.walFailed("sync", f.name, err)
	}
	return err
}

func (f *watchFile) SyncTo(length int64) (bool, error) {
	full, err := f.File.SyncTo(length)
	if err != nil {
		f.g.walFailed("sync", f.name, err)
	}
	return full, err
}
