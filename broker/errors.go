package broker

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

var (
	// ErrClosed is returned by calls on a closed broker or membership.
	ErrClosed = errors.New("broker: closed")
	// ErrUnknownTopic is matched by errors about a topic that does not exist.
	ErrUnknownTopic = errors.New("broker: unknown topic")
	// ErrUnknownPartition is matched by errors about a partition outside a topic.
	ErrUnknownPartition = errors.New("broker: unknown partition")
	// ErrUnknownGroup is matched by errors about a consumer group that
	// has neither members nor committed offsets.
	ErrUnknownGroup = errors.New("broker: unknown group")
	// ErrTopicExists is returned when creating a topic that exists.
	ErrTopicExists = errors.New("broker: topic already exists")
	// ErrInvalidTopicName is matched by errors about a name Kafka would refuse.
	ErrInvalidTopicName = errors.New("broker: invalid topic name")
	// ErrInvalidPartitions is matched by errors about a partition count < 1.
	ErrInvalidPartitions = errors.New("broker: invalid partition count")
	// ErrInvalidConfig is matched by errors about an invalid configuration.
	ErrInvalidConfig = errors.New("broker: invalid config")
	// ErrRecordTooLarge is matched by errors about a record over the size limit.
	ErrRecordTooLarge = errors.New("broker: record too large")
	// ErrFenced is returned by a commit from a member of an old generation
	// or from a member that left: a newer member owns its partitions.
	ErrFenced = errors.New("broker: fenced by a newer group generation")
	// ErrCorrupt is matched by errors about damaged stored data.
	ErrCorrupt = errors.New("broker: corrupt data")
	// ErrDiskFull is matched by errors about a write or an open refused
	// because the file system is (nearly) full. Such a refusal wrote
	// nothing and is retryable (IsRetryable): the call may succeed once
	// space is freed.
	ErrDiskFull = errors.New("broker: disk full")
)

// TopicError ties an error to a topic (and partition, when >= 0).
type TopicError struct {
	Topic     string
	Partition int32 // -1 when the error concerns the whole topic
	Err       error
}

func (e *TopicError) Error() string {
	if e.Partition < 0 {
		return fmt.Sprintf("topic %q: %v", e.Topic, e.Err)
	}
	return fmt.Sprintf("topic %q partition %d: %v", e.Topic, e.Partition, e.Err)
}

func (e *TopicError) Unwrap() error { return e.Err }

// OffsetOutOfRangeError is returned by Consumer.Poll for a position
// outside [Earliest, Latest] of its partition, and by DeleteRecords for an
// offset beyond Latest (or negative).
type OffsetOutOfRangeError struct {
	Topic     string
	Partition int32
	Offset    int64
	Offsets   Offsets
}

func (e *OffsetOutOfRangeError) Error() string {
	return fmt.Sprintf("broker: offset %d out of range [%d, %d] for topic %q partition %d",
		e.Offset, e.Offsets.Earliest, e.Offsets.Latest, e.Topic, e.Partition)
}

// RecordTooLargeError reports a record over the broker's size limit. It
// matches ErrRecordTooLarge.
type RecordTooLargeError struct {
	Topic string
	Size  int
	Max   int
}

func (e *RecordTooLargeError) Error() string {
	return fmt.Sprintf("broker: record of %d bytes for topic %q exceeds the limit of %d bytes", e.Size, e.Topic, e.Max)
}

func (e *RecordTooLargeError) Is(target error) bool { return target == ErrRecordTooLarge }

// IsRetryable reports whether err is transient: retrying the same call may
// succeed. Offset-out-of-range, unknown topics, invalid input, fencing,
// corruption and closed brokers are not retryable; a write refused for lack
// of disk space (ErrDiskFull) is.
func IsRetryable(err error) bool {
	var r interface{ Retryable() bool }
	if errors.As(err, &r) {
		return r.Retryable()
	}
	return false
}

// ValidateTopicName returns nil if name is a valid Kafka topic name:
// 1 to 249 characters of [a-zA-Z0-9._-], and not "." or "..". Otherwise it
// returns an error matching ErrInvalidTopicName that says why.
func ValidateTopicName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty name", ErrInvalidTopicName)
	case name == "." || name == "..":
		return fmt.Errorf("%w: %q is not allowed", ErrInvalidTopicName, name)
	case len(name) > MaxTopicNameLen:
		return fmt.Errorf("%w: %d characters, at most %d allowed", ErrInvalidTopicName, len(name), MaxTopicNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			// Name the character, not its first byte (%q of a byte
			// 0xc3 would print 'Ã' for "é").
			r, size := utf8.DecodeRuneInString(name[i:])
			if r == utf8.RuneError && size <= 1 {
				return fmt.Errorf("%w: %q has byte %#x (not UTF-8) at position %d; only [a-zA-Z0-9._-] are allowed", ErrInvalidTopicName, name, c, i)
			}
			return fmt.Errorf("%w: %q has character %q at position %d; only [a-zA-Z0-9._-] are allowed", ErrInvalidTopicName, name, r, i)
		}
	}
	return nil
}

// MaxTopicNameLen is Kafka's limit on topic name length.
const MaxTopicNameLen = 249
