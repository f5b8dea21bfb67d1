package broker

import (
	"context"
	"time"
)

// ConsumerOptions configure a Consumer. The zero value is valid.
type ConsumerOptions struct {
	// MaxRecords bounds the number of records of one Poll over all
	// partitions; 0 means the backend's default. A backend may exceed it
	// by less than one of its internal batches.
	MaxRecords int
	// MaxBytes bounds the key and value bytes of one Poll; 0 means the
	// backend's default. At least one record is returned when any is
	// readable.
	MaxBytes int
}

// A Consumer reads the partitions assigned to it, each from its own
// position, in offset order per partition. Only records of committed
// transactions (successful commits) are returned, on every backend
// (Kafka's read_committed).
//
// A Consumer is used by one goroutine at a time; it is not safe for
// concurrent use. Records it returns are owned by the caller. Close
// releases it; calls after Close, or after the broker closed, return
// ErrClosed.
type Consumer interface {
	// Assign adds partitions or moves the positions of assigned ones:
	// each partition is read next from the offset given (a seek). A
	// paused partition stays paused. An offset below the partition's
	// earliest offset is an *OffsetOutOfRangeError from Poll (one beyond
	// the partition's end may be one too); an unknown topic or partition
	// is likewise an error from Poll. A Poll that returns an error
	// returns no records: those of other partitions come in later Polls.
	Assign(positions map[TopicPartition]int64)
	// Unassign stops reading the partitions and forgets their positions.
	// Records of them already polled stay the caller's. Unassigning a
	// partition that is not assigned does nothing.
	Unassign(tps ...TopicPartition)
	// Pause stops fetching the partitions, keeping their positions, until
	// Resume. Neither is an error for unassigned partitions, and neither
	// outlives an Unassign.
	Pause(tps ...TopicPartition)
	// Resume starts fetching paused partitions again.
	Resume(tps ...TopicPartition)
	// Poll returns the next records of the assigned, unpaused partitions
	// and advances their positions past them. When none is readable it
	// waits up to maxWait (0: do not wait) for one, or until ctx ends
	// (then ctx's error). A Poll that returns nothing is not an error.
	Poll(ctx context.Context, maxWait time.Duration) (Polled, error)
	// Close releases the consumer. Closing twice is a no-op.
	Close() error
}

// A Recycler is a Consumer that can reuse the memory of the Record
// values its Poll returned: a caller done with the records of a Poll
// hands their slice back with Recycle, and a later Poll may fill it
// again. Only the slice of Record values is reused: the keys, values and
// headers they point to stay the caller's, so one kept from a recycled
// record stays valid. A fetched Record takes 128 bytes besides its key and
// value, more than a small record's bytes: reusing them spares the
// allocation, the zeroing and, on a VM whose host reclaims free pages,
// the first touch of fresh memory for every record read.
type Recycler interface {
	Consumer
	// Recycle hands back recs, the Records of one Polled as Poll
	// returned them: the whole slice, exactly once, and none of its
	// records still in use (not a part of it, not twice). The caller must
	// not use recs afterwards. Recycling nil or an empty slice does
	// nothing.
	Recycle(recs []Record)
}

// Polled is what one Consumer.Poll returns.
type Polled struct {
	// Records are in offset order per partition.
	Records []Record
	// Ends holds, for the partitions this Poll found fully read (no
	// record readable after the ones returned, now), the offset up to
	// which they are: the partition's end for read_committed readers (on
	// Kafka the last stable offset). A bounded run uses it to know that
	// offsets left without records (compaction, transaction markers,
	// deleted records) hold no input. Partitions not in Ends may or may
	// not have more records readable now.
	Ends map[TopicPartition]int64
}
