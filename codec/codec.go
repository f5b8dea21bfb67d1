package codec

import (
	"errors"
	"fmt"
)

// Codec turns values of type T into bytes and back.
//
// Append appends the encoding of v to dst and returns the extended slice,
// so callers reuse buffers. Decode parses src and must not retain it: the
// returned value shares no memory with src. A Codec is safe for concurrent
// use.
//
// OrderPreserving reports whether bytes.Compare on encodings orders values
// the way T orders them; range scans and window keys depend on it.
type Codec[T any] interface {
	Append(dst []byte, v T) ([]byte, error)
	Decode(src []byte) (T, error)
	OrderPreserving() bool
}

// ErrInvalid is matched by every decode failure of the built-in codecs.
var ErrInvalid = errors.New("codec: invalid encoding")

// DecodeError is a decode failure of a record's key or value. When the
// error stands alone (a test driver reading an output topic), Topic,
// Partition and Offset say which record it was, and Error names it; the
// runtime leaves them empty (Topic "") because the error that wraps this
// one (duality.ProcessingError) names the record, once.
type DecodeError struct {
	Topic     string
	Partition int32
	Offset    int64
	Part      string // "key" or "value"
	Err       error
}

func (e *DecodeError) Error() string {
	if e.Topic == "" {
		return fmt.Sprintf("codec: decode %s: %v", e.Part, e.Err)
	}
	return fmt.Sprintf("codec: decode %s of record at topic %q partition %d offset %d: %v",
		e.Part, e.Topic, e.Partition, e.Offset, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// EncodeError ties an encode failure to the topic it was meant for.
type EncodeError struct {
	Topic string
	Part  string // "key" or "value"
	Err   error
}

func (e *EncodeError) Error() string {
	return fmt.Sprintf("codec: encode %s for topic %q: %v", e.Part, e.Topic, e.Err)
}

func (e *EncodeError) Unwrap() error { return e.Err }
