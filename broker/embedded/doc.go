// Package embedded is the embedded, durable implementation of
// [broker.Broker]: partitioned logs, consumer-group offsets and group
// membership inside the application's process, stored in one Pebble
// database in a data directory.
//
//	b, err := embedded.Open(dir)
//	...
//	defer b.Close()
//
// Because logs and offsets live in one engine, [Broker.Commit] appends
// records to several partitions and stores a group's offsets in one atomic
// Pebble batch: the basis of exactly-once processing on this broker.
//
// # Storage layout
//
// Every key starts with one byte naming its kind; numbers are big-endian so
// that keys sort by them:
//
//	m<name>                            metadata: format version, next topic id
//	t<topic name>                      topic id and configuration
//	p<topic id><partition>             log start offset, next offset, bytes
//	r<topic id><partition><base offset> one batch of records (internal/logfmt)
//	c<topic id><partition><base offset><chunk> a chunk of a large batch
//	o<topic id><partition><group>      the group's next offset to consume
//
// A batch holds records that one Produce or Commit call appends to one
// partition, in one Pebble value: appends and sequential fetches touch one
// key per batch instead of one per record. A call's records for one
// partition go into consecutive batches of at most 192 KiB (a larger
// record makes a batch alone), which Pebble's sstable writer builds in
// reused block buffers (earlier versions wrote one batch per call and
// partition, whatever its size; those read as before). Each batch carries
// a CRC32C of its contents; a damaged batch is reported as an error
// matching [broker.ErrCorrupt] naming the topic, partition and offset.
//
// A batch larger than 1 MiB (one large record) is stored in chunks of 192 KiB, with a small
// stub (its header, length and number of chunks) under its record key, all
// in the same Pebble batch: Pebble copies a value several times over when
// it flushes or compacts it, so a large value would cost several times its
// size in memory at every flush, while chunks cost a few MiB whatever the
// record's size, and chunks of 192 KiB fit the block buffers that Pebble's
// sstable writer reuses. Fetch reassembles a chunked batch in one buffer,
// which the records it returns share (as they share a whole batch's copy).
// Data directories written before chunking, whose large batches are whole
// values, read as before, and so do those written with the 1 MiB chunks of
// earlier versions (and earlier versions read 192 KiB chunks).
//
// Topics get a fresh, never reused id at creation. Deleting a topic deletes
// the key ranges of its id (records, partition state and group offsets);
// a topic created later with the same name starts empty. Topic names are
// validated with [broker.ValidateTopicName] and only ever used inside keys,
// never in file paths.
//
// # Writes, offsets and durability
//
// One writer goroutine performs every write. It takes all queued Produce,
// Commit and CommitOffsets calls, assigns their offsets, commits them as one
// Pebble batch and only then makes them visible to Fetch and acknowledges
// them. Offsets are therefore contiguous per partition and never reused,
// and a batch is either wholly visible or not at all, also after a crash.
//
// The durability policy is chosen with [WithSyncInterval]:
//
//   - 0, the default: the write-ahead log is synced before any write is
//     acknowledged. Concurrent callers share one fsync (group commit): while
//     a group waits for its sync, the writer already commits the next ones,
//     and Pebble folds their syncs together. Acknowledged data survives a
//     process crash (kill -9) and power loss.
//   - d > 0: writes are acknowledged without waiting for a sync, and the
//     log is synced every d. A crash of the OS or the machine can lose up
//     to about d of acknowledged writes; a crash of the process only the
//     most recent ones, which Pebble had not yet handed to the OS (it
//     writes the log asynchronously in 32 KiB blocks). What survives is a
//     prefix, in commit order, of what was acknowledged.
//
// Group membership is kept in memory only: it ends with Close. Group
// offsets are durable like records.
//
// Storage failures: when a sync of the write-ahead log fails (an I/O
// error, a full disk), the calls waiting for it and every later write
// return an error, reads keep working, and the broker must be closed and
// reopened; nothing of a failed batch becomes visible. When the write
// itself fails, Pebble panics by design (its state is unknown at that
// point), which ends the process; so do failed fsyncs in Pebble's
// background flushes and compactions, and, in sync mode with concurrent
// writers, a commit that the writer issued between a failed sync and the
// moment the failure was reported (the interval-mode sync runs on the
// writer goroutine, so it has no such window). Either way, reopening shows
// what was acknowledged under the sync policy, with contiguous offsets.
//
// # Retention and compaction
//
// A background task runs every [WithCleanupInterval] (default one minute);
// [Broker.Cleanup] runs it on demand. Topics with [broker.CleanupDelete]
// lose whole batches, oldest first, while their newest record is older
// than RetentionTime or while the partition holds more than RetentionBytes.
// Topics with [broker.CleanupCompact] keep only the newest record of each
// key, at its original offset (Fetch skips the gaps), and drop tombstones
// (nil values) older than DeleteRetention. The log start offset (Earliest
// of ListOffsets) then moves to the first record still stored; offsets are
// never reused, even when every record is gone. Cleanup edits go through
// the writer, so they never race with appends. The background task
// compacts a partition only when the data added since its last compaction
// is at least half of what that compaction kept, or a kept tombstone has
// expired; Broker.Cleanup compacts every partition with new data. Topics
// with [broker.CleanupCompactDelete] get both, retention first: whole
// batches whose newest record is older than RetentionTime go even when
// they hold the newest record of a key, and what remains is compacted.
//
// [Broker.DeleteRecords] raises a partition's log start offset on demand
// (Kafka's DeleteRecords; the runtime purges its repartition topics with
// it): the batches wholly below the new log start are deleted with one
// range deletion, in the same Pebble batch that stores the new log start,
// so it never moves back after a crash; a batch that straddles it stays
// until a later deletion or retention passes it, and Fetch skips its
// records below the log start.
//
// # Files and locking
//
// The data directory holds Pebble's files and three of the broker's own:
//
//   - duality.lock: Open locks it with flock(2), so that a second Open of
//     the same directory, from this process or another, fails with an
//     error matching [ErrLocked]. Close releases the lock, and so does the
//     OS when the process dies.
//   - duality.identity: a random id of the database, also stored inside
//     it. If damaged Pebble files (a lost or corrupt MANIFEST) would make
//     Pebble open an empty or different database without complaint, Open
//     fails with an error matching [broker.ErrCorrupt] instead.
//   - duality.acked.0 and duality.acked.1: the acknowledgement record (see
//     below), written in turn so that a write torn by a crash leaves the
//     other whole.
//
// # Damaged files
//
// Close flushes Pebble's memtables, so a cleanly closed directory holds
// nothing that exists only in a write-ahead log. Pebble detects damaged
// sstables, MANIFESTs and write-ahead logs by their checksums; Open and the
// reads that meet them return errors matching [broker.ErrCorrupt], and so
// does every other failure to open an existing database that is not the
// operating system refusing an operation (a truncated sstable, a missing
// file or marker, a damaged OPTIONS file).
//
// Pebble alone cannot tell damage at the end of its newest write-ahead log
// (in its last 32 KiB block, or the log cut short or deleted) from a write
// torn by a crash: it recovers the valid prefix without an error. Nor does
// it notice an older log that is missing or empty. Two checks make such
// losses of acknowledged writes errors, a [*LostWritesError] matching
// [broker.ErrCorrupt] that names the logs present and the partitions and
// offset ranges lost:
//
//   - The write chain: every Pebble batch of the broker has a sequence
//     number and writes a key for it; after recovery the numbers must be
//     contiguous, so the batches of a missing or damaged log in the middle
//     cannot vanish while later ones survive. Keys of batches already in
//     sstables are deleted as Pebble flushes.
//   - The acknowledgement record: the sequence number of the last durable
//     batch and the next offset of every partition, checksummed and
//     fsynced; after recovery the chain must reach that number and every
//     partition that offset. In sync mode it is written in the background
//     after write-ahead log syncs, at most every 50 ms, so it trails the
//     acknowledgements by up to about that; [WithAckRecordSync] syncs it
//     before each acknowledgement instead, at the cost of a second fsync
//     per acknowledgement. In interval mode it is written at each interval
//     sync (covering what a crash cannot lose), and by Close.
//
// The one loss still not reported is damage confined to the end of the
// newest write-ahead log of a process that crashed, destroying only writes
// acknowledged in the moment before the crash that the record does not
// cover yet (none with WithAckRecordSync; those of the last 50 ms at most
// by default). A damaged acknowledgement record is itself reported unless the
// other file holds a valid, older record, which is then used. Nothing is
// repaired: the directory is left as it is, for inspection or for restoring
// from a copy.
//
// # A full disk
//
// Pebble cannot survive a full disk: after a failed write-ahead log write
// its next log rotation panics in a way no recover catches, a failed
// manifest write is fatal, and a flush that fails while it opens is
// retried forever. So the broker refuses writes first. The writer admits
// each group before committing it: when the free space (statfs), minus the
// room to flush the write-ahead log (5/4 of it) and a reserve
// ([WithDiskReserve]: a thousandth of the file system, 1 to 64 MiB), would
// not cover the group, every call of the group fails with an error
// matching [broker.ErrDiskFull] and writes nothing. The broker stays
// usable: reads go on, offset commits, topic deletion and retention need
// only half the reserve, and the same call succeeds once space is freed
// ([broker.IsRetryable] says so). The free space is measured at most every
// 100 ms, or sooner when the writes since could have used half the margin,
// so the check costs an admission two atomic additions and a clock read
// (BenchmarkAppendDiskGuard).
//
// Open checks first that the write-ahead log it replays can be flushed
// (Pebble flushes it while opening) and fails at once with
// [broker.ErrDiskFull] otherwise, instead of an open that never ends. The
// reserve is also held by an emergency ballast file, EMERGENCY-BALLAST in
// the data directory (CockroachDB's idea): Open deletes it when the
// directory could not be opened otherwise, say because another process
// filled the disk, and creates it again at a later Open once a quarter of
// the free space covers it.
//
// A write that fails with ENOSPC anyway (another process filled the disk
// between two measures) fails the broker as any failed write does (see
// WithSyncInterval): the error matches [broker.ErrDiskFull] but is not
// retryable, and the broker must be reopened.
//
// # Metrics
//
// [Broker.Metrics] returns counters since Open: acknowledged writes, records
// and bytes appended, Pebble commits (groups), fetches and their waits,
// cleanup runs and bytes removed; and Pebble's disk usage and what it
// holds: memtables (zombies too), block cache, open tables, write-ahead
// log, compaction debt.
//
// # Limits
//
// A record (key, value and headers) is at most [WithMaxRecordBytes]
// (default 1 MiB); one call's records at most [MaxCallBytes]; a topic has
// at most [MaxPartitions] partitions.
//
// # Pebble tuning
//
// The broker opens Pebble with a 64 MiB memtable, a 64 MiB block cache
// (Pebble charges its memtables to the same cache, so the cache is sized
// 64 MiB plus two memtables: 192 MiB at most, filled as blocks are read)
// and an L0 stop-writes threshold of 32 files (default 12), so that bursts of
// appends do not stall on compactions. [WithPebbleOptions] overrides any of
// them. Measured with BenchmarkAppend (100-byte random values, batches of
// 1000, 2 cores, CPU time per record so that other load does not skew it):
// block compression costs no more CPU than none and saves disk on
// compressible data. The sstables use MinLZ (Snappy on arm64), Pebble's
// fastest profile, rather than its default Snappy: BenchmarkLogCompression
// (small records and Nexmark-like JSON bids, 4 MiB memtable so that
// flushes and compactions run, fetched back whole) measured the same CPU
// within the noise and 2% to 10% less disk; no compression took as much
// CPU or more (more bytes to write and read) and 1.5 to 4 times the disk,
// zstd half the disk again at up to 1.5 times the CPU. A 256 MiB memtable
// saves under 10% of CPU over 64 MiB at four times the memory, a 4 MiB one
// costs 2.5x; Pebble's value separation (blob files) made no measurable
// difference. Bloom filters are not configured: the log is read with
// iterators, which filters do not help, and point reads (group offsets,
// metadata) are few.
package embedded
