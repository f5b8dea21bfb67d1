package broker

import "context"

// A Committer makes a worker's records and its input offsets visible
// together or not at all. On Kafka it is one transactional producer whose
// transactional id is the id the Committer was created with; on the
// embedded broker it wraps the broker's atomic commit.
//
// A Committer is used by one goroutine at a time; it is not safe for
// concurrent use. Close releases it; calls after Close, or after the
// broker closed, return ErrClosed.
type Committer interface {
	// Commit appends req.Records and commits req.Offsets for req.Group
	// atomically, fenced by req.Generation and req.MemberID (KIP-447 on
	// Kafka), and sets the records' Partition and Offset in place. A
	// commit that failed left nothing visible: the caller returns its
	// state to the last commit (ErrFenced: the partitions moved, or a
	// newer Committer with the same id was opened; other errors: retry
	// from the committed offsets, which FetchOffsets reads back).
	Commit(ctx context.Context, req CommitRequest) error
	// Close releases the committer. Closing twice is a no-op.
	Close() error
}
