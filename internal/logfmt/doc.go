// Package logfmt is the on-disk encoding of a batch of log records: the
// records one Produce or Commit call appends to one partition, stored as one
// Pebble value by broker/embedded.
//
// # Layout
//
// A batch is a 37-byte header followed by its records:
//
//	version         1 byte (1)
//	crc32c          4 bytes, Castagnoli, over everything after this field
//	base offset     8 bytes big-endian
//	last delta      4 bytes: offset of the last record minus the base offset
//	count           4 bytes: number of records
//	first timestamp 8 bytes: Unix milliseconds of the first record
//	max timestamp   8 bytes: largest record timestamp
//
// Each record is
//
//	offset delta     uvarint, strictly increasing (gaps after compaction)
//	timestamp delta  varint, relative to the first timestamp
//	key              varint length (-1 for nil) and bytes
//	value            varint length (-1 for nil, a tombstone) and bytes
//	header count     uvarint, then per header: uvarint key length, key,
//	                 varint value length (-1 for nil), value
//
// # Validation
//
// Decoding checks the version, the CRC, every length against the bytes left,
// offset order, the header's count, last delta and max timestamp, and that
// varints are minimal, so that a batch decodes in exactly one way and
// re-encodes to the same bytes. Any violation is an error matching
// [broker.ErrCorrupt]; decoding never panics (see FuzzDecodeBatch).
package logfmt
