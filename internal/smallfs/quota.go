package smallfs

import (
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// QuotaFS is the operating system's file system with a quota on the bytes
// of the files under a root directory: a write that would pass it fails
// with ENOSPC, and GetDiskUsage reports the quota as the file system's
// size. It stands in for a small file system where none can be mounted;
// it counts apparent file sizes (a write over existing bytes counts as
// new), which makes it fill a little early, never late.
type QuotaFS struct {
	vfs.FS
	root string
	size int64
	used atomic.Int64
}

// NewQuota returns a QuotaFS of size bytes over root, counting the files
// already there.
func NewQuota(root string, size int64) *QuotaFS {
	q := &QuotaFS{FS: vfs.Default, root: root, size: size}
	q.resync()
	return q
}

// resync sets the bytes used to the size of the files under the root.
func (q *QuotaFS) resync() {
	var n int64
	_ = filepath.WalkDir(q.root, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	q.used.Store(n)
}

// reserve counts n more bytes, or returns ENOSPC if they do not fit.
func (q *QuotaFS) reserve(path string, n int64) error {
	for {
		used := q.used.Load()
		if used+n > q.size {
			return &os.PathError{Op: "write", Path: path, Err: syscall.ENOSPC}
		}
		if q.used.CompareAndSwap(used, used+n) {
			return nil
		}
	}
}

// GetDiskUsage reports the quota as the file system.
func (q *QuotaFS) GetDiskUsage(string) (vfs.DiskUsage, error) {
	q.resync()
	used := q.used.Load()
	return vfs.DiskUsage{AvailBytes: uint64(max(0, q.size-used)), TotalBytes: uint64(q.size), UsedBytes: uint64(used)}, nil
}

// Unwrap returns nil: nothing may bypass the quota.
func (q *QuotaFS) Unwrap() vfs.FS { return nil }

func (q *QuotaFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := q.FS.Create(name, c)
	q.resync() // Create truncates
	return q.wrap(name, f, err)
}

func (q *QuotaFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := q.FS.OpenReadWrite(name, c, opts...)
	return q.wrap(name, f, err)
}

func (q *QuotaFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := q.FS.ReuseForWrite(oldname, newname, c)
	return q.wrap(newname, f, err)
}

func (q *QuotaFS) Remove(name string) error {
	err := q.FS.Remove(name)
	q.resync()
	return err
}

func (q *QuotaFS) RemoveAll(name string) error {
	err := q.FS.RemoveAll(name)
	q.resync()
	return err
}

func (q *QuotaFS) Rename(oldname, newname string) error {
	err := q.FS.Rename(oldname, newname)
	q.resync()
	return err
}

func (q *QuotaFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &quotaFile{File: f, q: q, name: name}, nil
}

type quotaFile struct {
	vfs.File
	q    *QuotaFS
	name string
}

func (f *quotaFile) Write(p []byte) (int, error) {
	if err := f.q.reserve(f.name, int64(len(p))); err != nil {
		return 0, err
	}
	return f.File.Write(p)
}

func (f *quotaFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.q.reserve(f.name, int64(len(p))); err != nil {
		return 0, err
	}
	return f.File.WriteAt(p, off)
}

// Preallocate does nothing: the quota counts file sizes, not blocks.
func (f *quotaFile) Preallocate(offset, length int64) error { return nil }

// VFS returns the file system the code under test must use on f: the
// operating system's on a mount, a QuotaFS of f's size otherwise.
func (f *FS) VFS() vfs.FS {
	if f.quota == 0 {
		return vfs.Default
	}
	return NewQuota(f.Dir, f.quota)
}

// Spec describes f for a child process (FromSpec).
func (f *FS) Spec() string {
	if f.quota == 0 {
		return "mount"
	}
	return "quota:" + strconv.FormatInt(f.quota, 10)
}

// Attach returns the small file system at dir that Spec described, in a
// child process.
func Attach(dir, spec string) *FS {
	f := &FS{Dir: dir}
	if s, ok := strings.CutPrefix(spec, "quota:"); ok {
		f.quota, _ = strconv.ParseInt(s, 10, 64)
	}
	return f
}

// FromSpec returns the vfs.FS a child process uses for the file system at
// dir that Spec described: Attach(dir, spec).VFS().
func FromSpec(dir, spec string) vfs.FS { return Attach(dir, spec).VFS() }
