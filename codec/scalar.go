package codec

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"
)

// lengthError reports a fixed-size encoding of the wrong length.
func lengthError(kind string, want, got int) error {
	return fmt.Errorf("%w: %s needs %d bytes, got %d", ErrInvalid, kind, want, got)
}

// nonNil returns dst, or an empty non-nil slice when dst is nil, so that
// an encoding that appends nothing is still distinguishable from a
// tombstone (a nil record value).
func nonNil(dst []byte) []byte {
	if dst == nil {
		return []byte{}
	}
	return dst
}

// String returns the codec for strings: the encoding is the string's bytes,
// unchanged and not validated as UTF-8.
//
// It is order-preserving: bytes.Compare on encodings orders strings as Go's
// < does (byte-wise). Append never returns nil, even for "" with a nil dst.
// Decode copies its input; nil and empty input both decode to "". Decode
// never fails.
func String() Codec[string] { return stringCodec{} }

type stringCodec struct{}

func (stringCodec) Append(dst []byte, v string) ([]byte, error) {
	return append(nonNil(dst), v...), nil
}

func (stringCodec) Decode(src []byte) (string, error) { return string(src), nil }

// DecodeOwned returns a string of src's bytes without copying them (see
// OwningDecoder): src must not change afterwards.
func (stringCodec) DecodeOwned(src []byte) (string, error) {
	return unsafe.String(unsafe.SliceData(src), len(src)), nil
}

func (stringCodec) OrderPreserving() bool { return true }

// Bytes returns the codec for byte slices: the encoding is the slice
// itself.
//
// It is order-preserving (the encoding is the value). It keeps the
// difference between nil and empty: Append of a nil v returns dst unchanged
// (nil if dst is nil), Append of an empty non-nil v returns a non-nil
// slice; Decode of nil returns nil and Decode of an empty non-nil slice
// returns an empty non-nil slice. A nil record value is a tombstone, so the
// distinction matters to callers that map one to the other. Decode returns
// a copy of src and never fails.
func Bytes() Codec[[]byte] { return bytesCodec{} }

type bytesCodec struct{}

func (bytesCodec) Append(dst []byte, v []byte) ([]byte, error) {
	if v == nil {
		return dst, nil
	}
	return append(nonNil(dst), v...), nil
}

func (bytesCodec) Decode(src []byte) ([]byte, error) { return bytes.Clone(src), nil }

// DecodeOwned returns src itself (see OwningDecoder).
func (bytesCodec) DecodeOwned(src []byte) ([]byte, error) { return src, nil }

func (bytesCodec) OrderPreserving() bool { return true }

// Int64 returns the codec for int64: 8 bytes, big-endian, with the sign bit
// flipped so that negative numbers sort before positive ones.
//
// It is order-preserving: bytes.Compare on encodings orders values
// numerically. Append does not allocate when dst has 8 bytes of spare
// capacity. Decode fails with an error matching [ErrInvalid] unless src is
// exactly 8 bytes; in particular nil and empty input are errors.
func Int64() Codec[int64] { return int64Codec{} }

type int64Codec struct{}

func (int64Codec) Append(dst []byte, v int64) ([]byte, error) {
	return binary.BigEndian.AppendUint64(dst, uint64(v)^(1<<63)), nil
}

func (int64Codec) Decode(src []byte) (int64, error) {
	if len(src) != 8 {
		return 0, lengthError("int64", 8, len(src))
	}
	return int64(binary.BigEndian.Uint64(src) ^ (1 << 63)), nil
}

func (int64Codec) OrderPreserving() bool { return true }

// Uint64 returns the codec for uint64: 8 bytes, big-endian.
//
// It is order-preserving: bytes.Compare on encodings orders values
// numerically. Append does not allocate when dst has 8 bytes of spare
// capacity. Decode fails with an error matching [ErrInvalid] unless src is
// exactly 8 bytes; in particular nil and empty input are errors.
func Uint64() Codec[uint64] { return uint64Codec{} }

type uint64Codec struct{}

func (uint64Codec) Append(dst []byte, v uint64) ([]byte, error) {
	return binary.BigEndian.AppendUint64(dst, v), nil
}

func (uint64Codec) Decode(src []byte) (uint64, error) {
	if len(src) != 8 {
		return 0, lengthError("uint64", 8, len(src))
	}
	return binary.BigEndian.Uint64(src), nil
}

func (uint64Codec) OrderPreserving() bool { return true }

// Float64 returns the codec for float64: the IEEE 754 bits, 8 bytes
// big-endian, with the sign bit flipped for positive numbers and every bit
// flipped for negative ones.
//
// It is order-preserving in the sense of IEEE 754 totalOrder: bytes.Compare
// on encodings orders -Inf < negative numbers < -0 < +0 < positive numbers
// < +Inf. -0 sorts just before +0 (they encode differently although -0 ==
// +0). NaNs keep their bits: a NaN with the sign bit clear (math.NaN())
// sorts after +Inf, a NaN with the sign bit set sorts before -Inf, and NaNs
// of the same sign sort by payload. Every value, NaN payloads included,
// round-trips bit for bit.
//
// Append does not allocate when dst has 8 bytes of spare capacity. Decode
// fails with an error matching [ErrInvalid] unless src is exactly 8 bytes;
// in particular nil and empty input are errors.
func Float64() Codec[float64] { return float64Codec{} }

type float64Codec struct{}

func (float64Codec) Append(dst []byte, v float64) ([]byte, error) {
	b := math.Float64bits(v)
	if b>>63 == 0 {
		b ^= 1 << 63
	} else {
		b = ^b
	}
	return binary.BigEndian.AppendUint64(dst, b), nil
}

func (float64Codec) Decode(src []byte) (float64, error) {
	if len(src) != 8 {
		return 0, lengthError("float64", 8, len(src))
	}
	b := binary.BigEndian.Uint64(src)
	if b>>63 == 1 {
		b ^= 1 << 63
	} else {
		b = ^b
	}
	return math.Float64frombits(b), nil
}

func (float64Codec) OrderPreserving() bool { return true }

// Bool returns the codec for bool: one byte, 0x00 for false and 0x01 for
// true.
//
// It is order-preserving (false sorts before true). Decode fails with an
// error matching [ErrInvalid] unless src is exactly one byte holding 0x00
// or 0x01; in particular nil and empty input are errors.
func Bool() Codec[bool] { return boolCodec{} }

type boolCodec struct{}

func (boolCodec) Append(dst []byte, v bool) ([]byte, error) {
	if v {
		return append(dst, 1), nil
	}
	return append(dst, 0), nil
}

func (boolCodec) Decode(src []byte) (bool, error) {
	if len(src) != 1 {
		return false, lengthError("bool", 1, len(src))
	}
	switch src[0] {
	case 0:
		return false, nil
	case 1:
		return true, nil
	}
	return false, fmt.Errorf("%w: bool needs byte 0x00 or 0x01, got 0x%02x", ErrInvalid, src[0])
}

func (boolCodec) OrderPreserving() bool { return true }
