package embedded

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"syscall"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// ErrLocked is matched by the error of Open when the data directory is
// already open, in this process or another one: most often by a running
// app. The error names the directory and, when the lock file says so, the
// process that holds it.
var ErrLocked = errors.New("embedded: data directory is in use by a running app or another open broker")

// lockFileName is the lock file inside the data directory.
const lockFileName = "duality.lock"

// lockDir takes the exclusive lock of the data directory dir: flock(2) on
// the operating system's file system (see lock_unix.go), which excludes a
// second open in this process as well as other processes, and fs.Lock on
// any other file system.
func lockDir(fs vfs.FS, dir string) (io.Closer, error) {
	name := fs.PathJoin(dir, lockFileName)
	if fs == vfs.Default {
		return flockFile(name, dir)
	}
	c, err := fs.Lock(name)
	if err != nil {
		if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES) {
			return nil, lockedError(dir, "")
		}
		return nil, fmt.Errorf("embedded: lock %s: %w", dir, err)
	}
	return c, nil
}

// lockedError is the error of an Open refused by the lock of dir; holder
// is the lock file's content (the holder's process id), possibly empty.
func lockedError(dir, holder string) error {
	holder = strings.TrimSpace(holder)
	if _, err := strconv.Atoi(holder); err != nil || holder == "" {
		return fmt.Errorf("%w: %s (stop it, or use another directory)", ErrLocked, dir)
	}
	return fmt.Errorf("%w: %s is locked by process %s (stop it, or use another directory)", ErrLocked, dir, holder)
}
