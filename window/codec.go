package window

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/duality-streams/duality/codec"
)

// WindowedCodec returns the codec of [Windowed] keys whose inner keys kc
// encodes. The encoding is the key's encoding with every 0x00 byte
// escaped as 0x00 0xFF and terminated by 0x00 0x01, then the start and
// the end as 8-byte big-endian epoch milliseconds with the sign bit
// flipped (as codec.Int64). The escaping keeps the key's bytes ordered
// and self-delimiting, so bytes.Compare orders encodings by key bytes,
// then start, then end: the codec is order-preserving when kc is, and in
// any case all windows of one key are contiguous and ordered by time,
// which is what range queries over a key's windows need.
//
// Decode fails with an error matching codec.ErrInvalid for input that is
// not such an encoding, and with kc's error for an invalid inner key.
// Times are kept at millisecond precision.
func WindowedCodec[K any](kc codec.Codec[K]) codec.Codec[Windowed[K]] {
	return windowedCodec[K]{kc: kc}
}

type windowedCodec[K any] struct{ kc codec.Codec[K] }

func (c windowedCodec[K]) Append(dst []byte, w Windowed[K]) ([]byte, error) {
	if c.kc == nil {
		return dst, fmt.Errorf("window: windowed codec: nil key codec")
	}
	mark := len(dst)
	dst, err := c.kc.Append(dst, w.Key)
	if err != nil {
		return dst[:mark], err
	}
	dst = escapeFrom(dst, mark)
	dst = appendTime(dst, w.Start.UnixMilli())
	return appendTime(dst, w.End.UnixMilli()), nil
}

func (c windowedCodec[K]) Decode(src []byte) (Windowed[K], error) {
	var w Windowed[K]
	if c.kc == nil {
		return w, fmt.Errorf("window: windowed codec: nil key codec")
	}
	key, rest, err := unescape(src)
	if err != nil {
		return w, err
	}
	if len(rest) != 16 {
		return w, fmt.Errorf("%w: windowed key needs 16 bytes of start and end after the key, got %d", codec.ErrInvalid, len(rest))
	}
	if w.Key, err = c.kc.Decode(key); err != nil {
		return w, err
	}
	w.Start = time.UnixMilli(readTime(rest))
	w.End = time.UnixMilli(readTime(rest[8:]))
	return w, nil
}

func (c windowedCodec[K]) OrderPreserving() bool { return c.kc != nil && c.kc.OrderPreserving() }

// escapeFrom escapes dst[mark:] in place (growing dst) and appends the
// terminator.
func escapeFrom(dst []byte, mark int) []byte {
	zeros := 0
	for _, b := range dst[mark:] {
		if b == 0 {
			zeros++
		}
	}
	if zeros == 0 {
		return append(dst, 0, 1)
	}
	n := len(dst)
	dst = append(dst, make([]byte, zeros+2)...)
	// Copy backwards so the source is read before it is overwritten.
	j := len(dst) - 2
	dst[j], dst[j+1] = 0, 1
	for i := n - 1; i >= mark; i-- {
		if dst[i] == 0 {
			j -= 2
			dst[j], dst[j+1] = 0, 0xFF
		} else {
			j--
			dst[j] = dst[i]
		}
	}
	return dst
}

// appendEscaped appends the escaped, terminated form of key to dst.
func appendEscaped(dst, key []byte) []byte {
	for _, b := range key {
		if b == 0 {
			dst = append(dst, 0, 0xFF)
		} else {
			dst = append(dst, b)
		}
	}
	return append(dst, 0, 1)
}

// unescape parses an escaped, terminated key at the start of src and
// returns the key (a new slice) and the bytes after the terminator.
func unescape(src []byte) (key, rest []byte, err error) {
	key = make([]byte, 0, len(src))
	for i := 0; i < len(src); i++ {
		if src[i] != 0 {
			key = append(key, src[i])
			continue
		}
		if i+1 >= len(src) {
			break
		}
		switch src[i+1] {
		case 0xFF:
			key = append(key, 0)
			i++
		case 1:
			return key, src[i+2:], nil
		default:
			return nil, nil, fmt.Errorf("%w: windowed key: bad escape 0x00 0x%02x", codec.ErrInvalid, src[i+1])
		}
	}
	return nil, nil, fmt.Errorf("%w: windowed key: unterminated key", codec.ErrInvalid)
}

// appendTime appends ms as 8 bytes big-endian with the sign bit flipped,
// so that encodings sort numerically.
func appendTime(dst []byte, ms int64) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(ms)^(1<<63))
}

func readTime(b []byte) int64 { return int64(binary.BigEndian.Uint64(b) ^ (1 << 63)) }
