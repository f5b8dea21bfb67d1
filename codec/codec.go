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

// OwningDecoder is implemented by codecs that can decode a buffer its
// caller gives up without copying it: DecodeOwned decodes src like
// Decode, but its result may share memory with src, which the caller
// hands over and neither reads nor writes afterwards. [Bytes] and
// [String] implement it (their results are src itself). The runtime uses
// it for the large values of the records a source reads (see
// stream.From), whose fetched bytes are its own, so that a large record
// is not copied once more on its way in.
type OwningDecoder[T any] interface {
	DecodeOwned(src []byte) (T, error)
}

// ErrInvalid is matched by every decode failure of the built-in codecs.
var ErrInvalid = errors.New("codec: invalid encoding")

// DecodeError is a decode failure of a record's key or value. When the
// error stands alone (a test driver reading an output topic), Topic,
// Partition and Offset say which record it was, and Error names it; the
// runtime leaves them empty (Topic "") because the error that wraps this
// one (duality.ProcessingError) names the record, once.
// Its message has no package prefix: the codec's error it wraps says
// "codec:" (ErrInvalid), once.
type DecodeError struct {
	Topic     string
	Partition int32
	Offset    int64
	Part      string // "key" or "value"
	Err       error
}

func (e *DecodeError) Error() string {
	if e.Topic == "" {
		return fmt.Sprintf("decode %s: %v", e.Part, e.Err)
	}
	return fmt.Sprintf("decode %s of record at topic %q partition %d offset %d: %v",
		e.Part, e.Topic, e.Partition, e.Offset, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// EncodeError ties an encode failure to where the encoding was going: a
// topic (a sink's record) or a state store (a store's key or value).
// Both are empty for an encoding that went to neither (a key encoded to
// be compared) or when the error that wraps it says where. Like
// [DecodeError]'s, its message has no package prefix.
type EncodeError struct {
	// Topic is the topic the record was for ("" for a store's encoding).
	Topic string
	// Store is the state store the key or value was for ("" for a
	// record).
	Store string
	Part  string // "key" or "value"
	Err   error
}

func (e *EncodeError) Error() string {
	switch {
	case e.Store != "":
		return fmt.Sprintf("encode %s for store %q: %v", e.Part, e.Store, e.Err)
	case e.Topic != "":
		return fmt.Sprintf("encode %s for topic %q: %v", e.Part, e.Topic, e.Err)
	}
	return fmt.Sprintf("encode %s: %v", e.Part, e.Err)
}

func (e *EncodeError) Unwrap() error { return e.Err }
