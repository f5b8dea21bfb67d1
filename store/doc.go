// Package store holds the state of stream processing tasks: ordered
// key-value stores of byte strings, on Pebble or in memory.
//
// The store knows nothing of the DSL: keys and values are bytes (the DSL
// encodes them with its codecs, which say whether they preserve order), and
// the changelog offset a store reflects is a number it records for the
// runtime.
//
// # Databases and stores
//
// A DB opens stores by name and partition. OpenPebble opens one Pebble
// database for a whole app instance; every (name, partition) gets a short
// numeric key prefix from a catalog inside the database, so the stores of
// all tasks share one block cache, one write-ahead log and one set of
// background compactions, names of any length cost nothing per key and no
// name reaches a file path. NewMemoryDB gives the same behaviour in memory,
// for tests and small state.
//
// # Reads and writes
//
// Store.Get returns a copy of a value. Writes go through a Batch (Put,
// Delete, DeleteRange) that Store.Apply writes atomically. Range,
// RangeReverse and Prefix return a Cursor over a snapshot of the store,
// with Err and Close because a scan of Pebble can fail. The cursors of
// both stores implement Reseeker: a reader doing many small scans keeps
// one cursor and moves it to each next range of the same snapshot, a seek
// rather than a new Pebble iterator each.
//
// # Large values
//
// Pebble copies a value whole whenever it flushes or compacts it, so a
// PebbleDB stores a value over 1 MiB in chunks of 1 MiB under keys of
// their own, with a short stub under the value's key, all in the batch of
// the Apply that writes it (a large value is there whole or not at all).
// Flushes and compactions then handle 1 MiB at a time, and Get and
// cursors reassemble the value (a cursor into a buffer of its own, reused
// for its next large value). A write that replaces or deletes a large
// value deletes its chunks; a store that holds none pays only one tag
// byte per value for this. Damage to a chunk or stub (missing, extra, of
// the wrong length) is reported by the read that meets it, as ErrCorrupt.
//
// The chunks of a value of 16 MiB or more do not go through the batch:
// they are written, in chunks of 192 KiB (so that Pebble reuses its
// block buffers), into an sstable that Pebble ingests before the batch
// with the stub commits, so that the value is not held again in the
// batch, the write-ahead log and a memtable (a 100 MiB value cost that
// much memory two or three times over). Such chunks have keys
// of their own version, so that neither a reader nor a crash between the
// ingestion and the commit mixes them with the value they replace. A
// small synced record of the ingestion, written before it and deleted
// with the stub, lets OpenPebble delete the chunks of an ingestion whose
// batch did not commit (the process died in between); an Apply that
// fails deletes them at once. This costs one more synced write per value
// of 16 MiB or more, and nothing for smaller ones.
//
// Databases created by versions before chunking (format marker
// duality-store-v1) open and work as before, storing large values whole;
// a database created from scratch (or rebuilt from its changelogs after
// deleting it) gets the new format, duality-store-v2, which its first
// value of 16 MiB or more upgrades to duality-store-v3 (versions before
// ingestion refuse that with ErrCorrupt; they open a duality-store-v2
// database).
//
// # Offsets and rebuilding
//
// State must always be a prefix of its changelog. Batch.SetOffset records
// the changelog offset a batch brings the store to, inside the same atomic
// write as the data, so after a crash Store.Offset says exactly which
// prefix of the changelog the state holds. Store.Drop deletes one store's
// data and offset (on Pebble with a range deletion, whatever the size)
// without touching the other stores, so that one task's state can be
// rebuilt from the beginning of its changelog. A restore reads like this:
//
//	next := int64(0)
//	if off, ok, err := s.Offset(); err != nil {
//		return err
//	} else if ok {
//		next = off + 1
//	}
//	for each fetched run of changelog records from next {
//		b.Reset()
//		for _, r := range records {
//			if r.Value == nil {
//				b.Delete(r.Key)
//			} else {
//				b.Put(r.Key, r.Value)
//			}
//		}
//		b.SetOffset(records[len(records)-1].Offset)
//		if err := s.Apply(&b); err != nil {
//			return err
//		}
//	}
//
// A write-back cache or a changelogging layer wraps a Store (it is an
// interface, and so is Cursor, so a wrapper can merge its own entries into
// scans) and applies one Batch per commit, with the offset of the
// changelog records the commit wrote.
//
// # Corruption and quarantine
//
// Damage to a database's files gives errors matching ErrCorrupt: from
// OpenPebble for what opening reads (manifest, markers, OPTIONS, a file
// the manifest lists that is missing or of the wrong size, the blocks
// the catalog is in), from the read that meets it otherwise (a corrupt
// block of an sstable). State is a copy of its changelogs, so the remedy
// is to rebuild it: QuarantinePebble moves the closed database into a
// directory of its own under dir/quarantine (QuarantineDir), where it is
// kept for inspection, and the next OpenPebble starts an empty one. The
// move holds the database's lock and survives a crash (OpenPebble
// finishes it).
//
// # Ownership and concurrency
//
// Stores and DBs are safe for concurrent use (except DB.Close); cursors
// and batches are not. A Batch copies what it is given; Get returns a copy
// the caller owns; a cursor's Key and Value are valid until its next Next.
//
// # Errors
//
// Errors wrap ErrClosed, ErrInvalid, ErrInvalidConfig, ErrCorrupt or
// ErrDiskFull (or the underlying Pebble or file system error) with the
// store's name, partition and operation. Bad arguments return errors,
// never panics.
//
// # A full disk
//
// Pebble cannot continue after a failed write-ahead log write (its next
// log rotation panics in a way no recover catches), so a PebbleDB refuses
// a write before the file system is full: Apply, Drop and store creation
// fail with ErrDiskFull, having written nothing, while the free space
// minus the room to flush the write-ahead log is below a reserve (see
// WithDiskReserve); they succeed again once space is freed. OpenPebble
// fails at once with ErrDiskFull when the write-ahead log it would replay
// cannot be flushed, instead of retrying the flush forever; the emergency
// ballast file it keeps in the directory is deleted first if that makes
// room.
//
// Storage failures that Pebble cannot continue from (a failed manifest
// write in a background flush or compaction, a commit whose write-ahead
// log write failed) are returned by OpenPebble, and end the process
// (status 70, message "store: fatal storage error: ..." on stderr)
// anywhere else, as Pebble does by default: state is rebuilt from the
// changelog on the next start. With the guard, that needs another process
// to fill the disk between the free space measure of an Apply (a statfs at
// every Apply; the runtime applies once per commit and store) and its
// write; a log write that fails in the background is noticed (the file
// system given to Pebble is watched) and every later write is refused
// with ErrDiskFull until the DB is reopened. One path remains outside the
// policy: without WithSync, if the failing log write is the one Pebble
// makes while rotating its log, Pebble panics with its mutex unlocked (Go's
// "fatal error: sync: unlock of unlocked mutex", exit status 2), which no
// recover catches. TestDiskFullOutsider measures how rare that became.
//
// # Damaged files
//
// PebbleDB.Close flushes the memtables, so a cleanly closed directory does
// not depend on a write-ahead log. OpenPebble returns an error matching
// ErrCorrupt for every failure to open an existing database that is not
// the operating system refusing an operation: checksum mismatches, a
// truncated or missing sstable, a damaged or missing MANIFEST, marker or
// OPTIONS file. A store's data and offset are written in one batch, so
// Pebble recovering the valid prefix of a damaged newest write-ahead log
// leaves every store consistent at an older offset, from which the
// changelog restores the rest. A missing or damaged older log would not:
// Pebble replays the newer logs over a state that lacks its batches. So
// every batch carries a sequence number (a key of the write chain), and
// OpenPebble fails with ErrCorrupt when the numbers it finds after
// recovery have a hole. Reads that meet a damaged block return ErrCorrupt.
//
// # Testing
//
// Package storetest is the conformance suite that every DB passes.
package store
