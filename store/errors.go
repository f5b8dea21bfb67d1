package store

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

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
	// a Pebble database that is not a store) or Pebble reports corruption.
	ErrCorrupt = errors.New("store: corrupt")
	// ErrDiskFull is returned when a write (or OpenPebble) is refused
	// because the file system is (nearly) full: see WithDiskReserve. A
	// refused write wrote nothing and may succeed once space is freed.
	ErrDiskFull = errors.New("store: disk full")
)

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
