//go:build !linux

package smallfs

// New returns the reason a small file system cannot be made: mounting a
// tmpfs is implemented on Linux only.
func New(dir string, size int64) (*FS, string) {
	return nil, "a small file system (tmpfs mount) is implemented on Linux only"
}

// Resize is not supported off Linux.
func (f *FS) Resize(size int64) error { panic("unreachable") }

// Close is not supported off Linux.
func (f *FS) Close() error { return nil }
