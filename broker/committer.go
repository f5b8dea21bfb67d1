package broker

import "context"

// A Committer makes a worker's records and its input offsets visible.
// There are two kinds, one per processing guarantee:
//
//   - Atomic ([Broker.NewCommitter], for exactly-once): records and
//     offsets become visible together or not at all. On Kafka it is one
//     transactional producer whose transactional id is the id the
//     Committer was created with; on the embedded broker it wraps the
//     broker's atomic commit.
//   - At-least-once ([Broker.NewAtLeastOnceCommitter]): the records are
//     appended and acknowledged first, then the offsets are committed,
//     fenced by the generation. A commit that fails or is cut by a crash
//     may leave some or all of its records visible without its offsets,
//     so the work is redone and its output appears twice; offsets never
//     become visible without every record of their commit. On Kafka it is
//     an idempotent, non-transactional producer followed by a group
//     OffsetCommit; the embedded broker's atomic commit costs no more
//     than a split one would (one Pebble batch and one write-ahead-log
//     sync either way), so it gives its atomic committer.
//
// A Committer is used by one goroutine at a time; it is not safe for
// concurrent use. Close releases it; calls after Close, or after the
// broker closed, return ErrClosed.
type Committer interface {
	// Commit appends req.Records and commits req.Offsets for req.Group,
	// fenced by req.Generation and req.MemberID (KIP-447 on Kafka), and
	// sets the records' Partition and Offset in place. An atomic
	// committer's failed commit left nothing visible; an at-least-once
	// committer's may have left records visible, never the offsets
	// without them. Either way the caller returns its state to the last
	// commit (ErrFenced: the partitions moved, or a newer atomic
	// Committer with the same id was opened; other errors: retry from
	// the committed offsets, which FetchOffsets reads back).
	Commit(ctx context.Context, req CommitRequest) error
	// Close releases the committer. Closing twice is a no-op.
	Close() error
}
