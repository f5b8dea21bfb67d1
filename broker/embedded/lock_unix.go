//go:build unix

package embedded

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"
)

// flockFile locks the file name with flock(2), LOCK_EX|LOCK_NB. Locks taken
// through different open file descriptions conflict even within one
// process, so a second Open of the same directory fails too. The lock is
// released when the returned file is closed or the process dies.
func flockFile(name, dir string) (io.Closer, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("embedded: lock %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			// The holder wrote its pid into the file (below); reading
			// it without the lock may see it half written, which
			// lockedError tolerates.
			holder, _ := os.ReadFile(name)
			return nil, lockedError(dir, string(holder))
		}
		return nil, fmt.Errorf("embedded: lock %s: %w", dir, err)
	}
	// The owner's pid helps whoever finds the directory locked.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}
