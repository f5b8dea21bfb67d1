package store

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/duality-streams/duality/internal/diskspace"
)

// QuarantineDir is the directory, inside a Pebble database's directory,
// where QuarantinePebble moves damaged databases: each into a directory of
// its own named for the time of the move, such as
// quarantine/20261206T143518.123456789Z. Pebble ignores it, and nothing in
// this module ever deletes it.
const QuarantineDir = "quarantine"

// Names inside a database directory that a quarantine leaves in place:
// the quarantined copies, and Pebble's lock file, which the quarantine
// holds while it moves the rest.
const (
	lockFile       = "LOCK"
	partialSuffix  = ".partial"
	quarantineTime = "20060102T150405.000000000Z"
)

// QuarantinePebble moves the Pebble database in dir aside, into a new
// directory under dir/quarantine (see [QuarantineDir]), where it is kept
// for inspection, and returns that directory's path. dir is left without a
// database, so the next OpenPebble creates an empty one: state is a copy
// of its changelogs, from which the runtime rebuilds it.
//
// Call it only on a closed database. It holds the database's lock while it
// moves the files, so it fails, having moved nothing, while a PebbleDB (of
// this or another process) has dir open. The move survives a crash: the
// files go into a directory ending in ".partial", renamed once they are
// all there, and OpenPebble finishes a move it finds interrupted before it
// opens the database. Of the options, only WithFS is used.
func QuarantinePebble(dir string, opts ...Option) (string, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if o != nil {
			o.apply(&cfg)
		}
	}
	if cfg.fs == nil {
		return "", fmt.Errorf("store: quarantine %s: %w: file system is nil", dir, ErrInvalidConfig)
	}
	fs := cfg.fs
	qdir := fs.PathJoin(dir, QuarantineDir)
	if err := fs.MkdirAll(qdir, 0o755); err != nil {
		return "", fmt.Errorf("store: quarantine %s: %w", dir, err)
	}
	unlock, err := lockDB(fs, dir)
	if err != nil {
		return "", fmt.Errorf("store: quarantine %s: %w", dir, err)
	}
	defer unlock()
	name := time.Now().UTC().Format(quarantineTime)
	for i := 1; ; i++ {
		_, errFinal := fs.Stat(fs.PathJoin(qdir, name))
		_, errPartial := fs.Stat(fs.PathJoin(qdir, name+partialSuffix))
		if errors.Is(errFinal, os.ErrNotExist) && errors.Is(errPartial, os.ErrNotExist) {
			break
		}
		name = fmt.Sprintf("%s-%d", time.Now().UTC().Format(quarantineTime), i)
	}
	partial := fs.PathJoin(qdir, name+partialSuffix)
	if err := fs.MkdirAll(partial, 0o755); err != nil {
		return "", fmt.Errorf("store: quarantine %s: %w", dir, err)
	}
	if err := syncDir(fs, qdir); err != nil {
		return "", fmt.Errorf("store: quarantine %s: %w", dir, err)
	}
	path, err := moveInto(fs, dir, partial)
	if err != nil {
		return "", fmt.Errorf("store: quarantine %s: %w", dir, err)
	}
	return path, nil
}

// finishQuarantine completes a quarantine of the database in dir that a
// crash interrupted (a directory ending in ".partial" under dir/quarantine),
// before OpenPebble opens dir. It does nothing, at the cost of one
// listing, when there is none.
func finishQuarantine(fs vfs.FS, dir string) error {
	qdir := fs.PathJoin(dir, QuarantineDir)
	names, err := fs.List(qdir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	slices.Sort(names)
	for _, n := range names {
		if !strings.HasSuffix(n, partialSuffix) {
			continue
		}
		unlock, err := lockDB(fs, dir)
		if err != nil {
			return err
		}
		_, err = moveInto(fs, dir, fs.PathJoin(qdir, n))
		unlock()
		if err != nil {
			return fmt.Errorf("finish an interrupted quarantine: %w", err)
		}
	}
	return nil
}

// lockDB takes the lock Pebble takes on the database in dir.
func lockDB(fs vfs.FS, dir string) (unlock func(), err error) {
	l, err := fs.Lock(fs.PathJoin(dir, lockFile))
	if err != nil {
		return nil, fmt.Errorf("lock the database (is it open?): %w", err)
	}
	return func() { _ = l.Close() }, nil
}

// moveInto moves every entry of dir but the quarantine directory, the
// lock file and the disk reserve's ballast (diskspace.BallastFile: the
// directory's reserve, not part of the database, and up to 64 MiB that a
// copy kept for inspection must not hold) into partial, a directory ending in ".partial" under
// dir/quarantine, then renames partial without its suffix and returns the
// new name. It can run again on what an interrupted run left.
func moveInto(fs vfs.FS, dir, partial string) (string, error) {
	names, err := fs.List(dir)
	if err != nil {
		return "", err
	}
	for _, n := range names {
		if n == QuarantineDir || n == lockFile || n == diskspace.BallastFile {
			continue
		}
		if err := fs.Rename(fs.PathJoin(dir, n), fs.PathJoin(partial, n)); err != nil {
			return "", err
		}
	}
	if err := errors.Join(syncDir(fs, partial), syncDir(fs, dir)); err != nil {
		return "", err
	}
	final := strings.TrimSuffix(partial, partialSuffix)
	if err := fs.Rename(partial, final); err != nil {
		return "", err
	}
	if err := syncDir(fs, fs.PathDir(final)); err != nil {
		return "", err
	}
	return final, nil
}

func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// checkManifestMarker reports, as ErrCorrupt, a directory holding the
// files of a Pebble database (a manifest, sstables, write-ahead logs)
// without the marker that names its current manifest: Pebble would create
// a new database there and replay the write-ahead logs it finds into it,
// which can give a state that claims a changelog offset without the data
// before it.
func checkManifestMarker(fs vfs.FS, dir string) error {
	names, err := fs.List(dir)
	if err != nil {
		return nil // no directory yet: Pebble creates it
	}
	var dbFile string
	for _, n := range names {
		if strings.HasPrefix(n, "marker.manifest.") || n == "CURRENT" {
			return nil
		}
		if pebbleFile(n) {
			dbFile = n
		}
	}
	if dbFile != "" {
		return fmt.Errorf("%w: database file %s but no manifest marker (marker.manifest.*)", ErrCorrupt, dbFile)
	}
	return nil
}

// pebbleFile reports whether name is that of a manifest, an sstable, a
// write-ahead log or a blob file of Pebble: MANIFEST-<n>, <n>.sst, <n>.log
// or <n>.blob, n decimal.
func pebbleFile(name string) bool {
	num, ok := strings.CutPrefix(name, "MANIFEST-")
	if !ok {
		var ext string
		num, ext, ok = strings.Cut(name, ".")
		if !ok || (ext != "sst" && ext != "log" && ext != "blob") {
			return false
		}
	}
	if num == "" {
		return false
	}
	for _, c := range num {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// openError classifies an error of pebble.Open: damage to the database's
// files matches ErrCorrupt. Pebble marks some damage as corruption (a
// checksum mismatch, a malformed manifest or OPTIONS file, a corrupt
// write-ahead log record) and reports the rest otherwise: a file the
// manifest lists that is missing (os.ErrNotExist, the directory itself
// being created by Pebble) or of another size than the manifest says, or
// a database that is "not pristine" because its format marker is gone.
func openError(err error) error {
	if errors.Is(err, ErrCorrupt) {
		return err
	}
	if pebble.IsCorruptionError(err) || errors.Is(err, os.ErrNotExist) ||
		errors.Is(err, pebble.ErrDBNotPristine) || strings.Contains(err.Error(), "object size mismatch") {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return err
}
