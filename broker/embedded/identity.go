package embedded

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/duality-streams/duality/broker"
)

// The identity file guards against a damaged Pebble manifest that makes
// Pebble open an older or empty database without an error (for example a
// deleted marker.manifest file makes Pebble create a fresh database). A new
// database gets a random id, stored both in the database (under keyFormat,
// with the format version) and in this file. When the file exists, Open
// requires Pebble to find an existing database holding the same id;
// anything else is reported as corruption instead of silently losing data.
const identityFileName = "duality.identity"

const identityLen = 16

// readIdentity returns the id in dir's identity file, or nil if there is
// none.
func readIdentity(fs vfs.FS, dir string) ([]byte, error) {
	name := fs.PathJoin(dir, identityFileName)
	f, err := fs.Open(name)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("read %s: %w", identityFileName, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 256))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", identityFileName, err)
	}
	id, err := hex.DecodeString(string(bytes.TrimSpace(data)))
	if err != nil || len(id) != identityLen {
		return nil, fmt.Errorf("%w: %s holds %q, not a database id", broker.ErrCorrupt, identityFileName, data)
	}
	return id, nil
}

// writeIdentity writes id to dir's identity file atomically and durably.
func writeIdentity(fs vfs.FS, dir string, id []byte) error {
	name := fs.PathJoin(dir, identityFileName)
	tmp := name + ".tmp"
	f, err := fs.Create(tmp, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("write %s: %w", identityFileName, err)
	}
	_, err = f.Write([]byte(hex.EncodeToString(id) + "\n"))
	err = errors.Join(err, f.Sync(), f.Close())
	if err == nil {
		err = fs.Rename(tmp, name)
	}
	if err == nil {
		var d vfs.File
		if d, err = fs.OpenDir(dir); err == nil {
			err = errors.Join(d.Sync(), d.Close())
		}
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", identityFileName, err)
	}
	return nil
}

// formatValue is the value under keyFormat: format version and id.
func formatValue(id []byte) []byte { return append([]byte{formatVersion}, id...) }

// checkIdentity verifies that the open database is the one the identity
// file names (fileID), or, without an identity file (fileID nil), gives a
// new database its identity and writes the file.
func (b *Broker) checkIdentity(fileID []byte) error {
	v, closer, err := b.db.Get(keyFormat)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		if fileID != nil {
			return fmt.Errorf("%w: the database lost its data: %s names database %x but Pebble opened one without it (damaged MANIFEST or missing files?)",
				broker.ErrCorrupt, identityFileName, fileID)
		}
		id := make([]byte, identityLen)
		_, _ = rand.Read(id)
		if err := b.db.Set(keyFormat, formatValue(id), pebble.Sync); err != nil {
			return fmt.Errorf("write format version: %w", err)
		}
		return writeIdentity(b.cfg.fs, b.dir, id)
	case err != nil:
		return wrapRead("read format version", err)
	}
	stored := bytes.Clone(v)
	_ = closer.Close()
	if len(stored) != 1+identityLen || stored[0] != formatVersion {
		return fmt.Errorf("%w: unknown data format %x", broker.ErrCorrupt, stored)
	}
	switch id := stored[1:]; {
	case fileID == nil:
		// An earlier Open stopped before writing the file.
		return writeIdentity(b.cfg.fs, b.dir, id)
	case !bytes.Equal(fileID, id):
		return fmt.Errorf("%w: %s names database %x, the directory holds %x", broker.ErrCorrupt, identityFileName, fileID, id)
	}
	return nil
}
