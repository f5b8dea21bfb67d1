package smallfs

import (
	"fmt"
	"os"
	"syscall"
)

// NewMount mounts a tmpfs of size bytes on dir (which must exist and be
// empty). It returns a reason instead when it cannot (not root, no mount
// permission in this container).
func NewMount(dir string, size int64) (*FS, string) {
	if os.Geteuid() != 0 {
		return nil, "a small file system needs a tmpfs mount, which needs root"
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0755", size)); err != nil {
		return nil, fmt.Sprintf("mount a tmpfs on %s: %v", dir, err)
	}
	return &FS{Dir: dir}, ""
}

// Resize changes the size of the file system (a tmpfs is remounted), as
// growing a volume does.
func (f *FS) Resize(size int64) error {
	if f.quota > 0 {
		f.quota = size
		return nil
	}
	return syscall.Mount("tmpfs", f.Dir, "tmpfs", syscall.MS_REMOUNT, fmt.Sprintf("size=%d,mode=0755", size))
}

// Close unmounts the file system, dropping its files.
func (f *FS) Close() error {
	if f.quota > 0 {
		return nil
	}
	return syscall.Unmount(f.Dir, syscall.MNT_DETACH)
}
