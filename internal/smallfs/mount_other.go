//go:build !linux

package smallfs

// NewMount returns the reason a tmpfs cannot be mounted: that is
// implemented on Linux only.
func NewMount(dir string, size int64) (*FS, string) {
	return nil, "mounting a tmpfs is implemented on Linux only"
}

// Resize changes the size of the file system.
func (f *FS) Resize(size int64) error {
	f.quota = size
	return nil
}

// Close does nothing: off Linux the file system is a quota.
func (f *FS) Close() error { return nil }
