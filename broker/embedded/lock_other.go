//go:build !unix

package embedded

import (
	"fmt"
	"io"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// flockFile falls back to Pebble's file lock where flock(2) is missing.
func flockFile(name, dir string) (io.Closer, error) {
	c, err := vfs.Default.Lock(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", lockedError(dir, ""), err)
	}
	return c, nil
}
