package window

import (
	"fmt"
	"time"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/internal/windowstore"
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
	dst = windowstore.EscapeFrom(dst, mark)
	dst = windowstore.AppendTime(dst, w.Start.UnixMilli())
	return windowstore.AppendTime(dst, w.End.UnixMilli()), nil
}

func (c windowedCodec[K]) Decode(src []byte) (Windowed[K], error) {
	var w Windowed[K]
	if c.kc == nil {
		return w, fmt.Errorf("window: windowed codec: nil key codec")
	}
	key, rest, err := windowstore.Unescape(src)
	if err != nil {
		return w, err
	}
	if len(rest) != 16 {
		return w, fmt.Errorf("%w: windowed key needs 16 bytes of start and end after the key, got %d", codec.ErrInvalid, len(rest))
	}
	if w.Key, err = c.kc.Decode(key); err != nil {
		return w, err
	}
	w.Start = time.UnixMilli(windowstore.ReadTime(rest))
	w.End = time.UnixMilli(windowstore.ReadTime(rest[8:]))
	return w, nil
}

func (c windowedCodec[K]) OrderPreserving() bool { return c.kc != nil && c.kc.OrderPreserving() }
