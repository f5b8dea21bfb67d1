package store

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/duality-streams/duality/internal/diskspace"
)

// Sentinel errors. Errors returned by this package wrap one of them (or an
// error of Pebble or of the file system) with the store's name, partition
// and the operation: match them with errors.Is.
var (
	// ErrClosed is returned by every method of a store, a cursor or a DB
	// after the store handle or its DB has been closed.
	ErrClosed = errors.New("store: closed")
	// ErrInvalidConfig is returned by OpenPebble when an option is out of
	// range; the error lists every problem found.
	ErrInvalidConfig = errors.New("store: invalid config")
	// ErrInvalid is returned for an invalid argument, such as an empty store
	// name or a negative partition.
	ErrInvalid = errors.New("store: invalid argument")
	// ErrCorrupt is returned when stored data cannot be decoded (a catalog
	// entry or an offset written by something else, a directory that holds
	// a Pebble database that is not a store), when Pebble reports
	// corruption, and by OpenPebble for every failure to open an existing
	// database other than the operating system refusing an operation (a
	// truncated sstable, a missing or damaged MANIFEST, marker or OPTIONS
	// file).
	ErrCorrupt = errors.New("store: corrupt")
	// ErrDiskFull is returned when a write (or OpenPebble) is refused
	// because the file system is (nearly) full: see WithDiskReserve. A
	// refused write wrote nothing and may succeed once space is freed.
	ErrDiskFull = errors.New("store: disk full")
)

// damagedOpen reports whether err, from opening an existing Pebble
// database, means that its files are missing or damaged. Pebble marks only
// some such errors as corruption (a truncated sstable gives "object size
// mismatch", a deleted marker or a damaged OPTIONS file other errors), so
// every error is damage except the operating system refusing an operation
// (permissions, a full disk, too many open files, an I/O error), which
// says nothing about the files; a missing file is damage.
func damagedOpen(err error) bool {
	if errors.Is(err, os.ErrNotExist) {
		return true
	}
	var errno syscall.Errno
	return !errors.As(err, &errno)
}

// hasPebbleFiles reports whether dir holds files of a Pebble database
// (sstables, manifests, write-ahead logs, blob files; by Pebble's names, see
// pebbleFile, so that a user's app.log does not count).
func hasPebbleFiles(fs vfs.FS, dir string) bool {
	names, err := fs.List(dir)
	if err != nil {
		return false
	}
	for _, n := range names {
		if pebbleFile(n) {
			return true
		}
	}
	return false
}

// listLogs returns the names of the write-ahead logs in dir, sorted.
func listLogs(fs vfs.FS, dir string) []string {
	names, err := fs.List(dir)
	if err != nil {
		return nil
	}
	var logs []string
	for _, n := range names {
		if strings.HasSuffix(n, ".log") {
			logs = append(logs, n)
		}
	}
	slices.Sort(logs)
	return logs
}

// wrap adds context to err, ErrCorrupt if Pebble reports corruption, and
// ErrDiskFull if the file system says it has no space left.
func wrap(name string, partition int32, op string, err error) error {
	if diskspace.IsNoSpace(err) && !errors.Is(err, ErrDiskFull) {
		return fmt.Errorf("store %s/%d: %s: %w: %w", name, partition, op, ErrDiskFull, err)
	}
	if pebble.IsCorruptionError(err) && !errors.Is(err, ErrCorrupt) {
		return fmt.Errorf("store %s/%d: %s: %w: %w", name, partition, op, ErrCorrupt, err)
	}
	return fmt.Errorf("store %s/%d: %s: %w", name, partition, op, err)
}
