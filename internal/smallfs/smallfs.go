// Package smallfs gives tests a small file system to fill: a tmpfs mounted
// for the test when the process may mount (root on Linux), else a
// directory under a quota enforced by a Pebble vfs.FS ([QuotaFS]) that the
// code under test must use (FS.VFS; FromSpec in a child process). Set
// DUALITY_SMALLFS=quota to use the quota even as root.
package smallfs

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
)

// FS is a small file system at Dir.
type FS struct {
	Dir   string
	quota int64 // > 0: a QuotaFS of this size, not a mount
}

// New makes a small file system of size bytes at dir, which must exist and
// be empty: a tmpfs mount where the process may mount, a quota otherwise.
// Tests that cannot use a quota (they run code that takes no vfs.FS) call
// NewMount instead, which says why it cannot mount.
func New(dir string, size int64) *FS {
	if os.Getenv("DUALITY_SMALLFS") != "quota" {
		if fs, _ := NewMount(dir, size); fs != nil {
			return fs
		}
	}
	return &FS{Dir: dir, quota: size}
}

// Usage returns the free and total bytes of the file system.
func (f *FS) Usage() (free, total int64, err error) {
	du, err := f.VFS().GetDiskUsage(f.Dir)
	if err != nil {
		return 0, 0, err
	}
	return int64(du.AvailBytes), int64(du.TotalBytes), nil
}

// Fill writes the file name in Dir until the file system is full (or
// leave bytes are free), and returns the bytes written.
func (f *FS) Fill(name string, leave int64) (int64, error) {
	file, err := os.OpenFile(filepath.Join(f.Dir, name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	defer file.Close()
	buf := make([]byte, 64<<10)
	var n int64
	for {
		free, _, err := f.Usage()
		if err != nil {
			return n, err
		}
		if free <= leave {
			return n, nil
		}
		chunk := min(int64(len(buf)), free-leave)
		w, err := file.Write(buf[:chunk])
		n += int64(w)
		if err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return n, nil
			}
			return n, err
		}
	}
}

// Free shrinks the file name in Dir (made by Fill) by n bytes, or deletes
// it when n is negative or at least its size.
func (f *FS) Free(name string, n int64) error {
	path := filepath.Join(f.Dir, name)
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if n < 0 || n >= fi.Size() {
		return os.Remove(path)
	}
	return os.Truncate(path, fi.Size()-n)
}
