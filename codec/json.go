package codec

import (
	"encoding/json"
	"fmt"
)

// JSON returns a codec for T using encoding/json (json.Marshal and
// json.Unmarshal, with their struct tags and rules).
//
// It is not order-preserving. Encodings are deterministic (encoding/json
// sorts map keys), so equal values encode to equal bytes. Append returns an
// error wrapping the json error for values encoding/json rejects (channels,
// functions, NaN or infinite floats, ...), and then returns dst unchanged.
// Decode fails with an error matching [ErrInvalid] (and wrapping the json
// error) for anything json.Unmarshal rejects, trailing data included; nil
// and empty input are errors. Decode shares no memory with src.
func JSON[T any]() Codec[T] { return jsonCodec[T]{} }

type jsonCodec[T any] struct{}

func (jsonCodec[T]) Append(dst []byte, v T) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return dst, fmt.Errorf("codec: json encode %T: %w", v, err)
	}
	return append(dst, b...), nil
}

func (jsonCodec[T]) Decode(src []byte) (T, error) {
	var v T
	if err := json.Unmarshal(src, &v); err != nil {
		var zero T
		return zero, fmt.Errorf("%w: json: %w", ErrInvalid, err)
	}
	return v, nil
}

func (jsonCodec[T]) OrderPreserving() bool { return false }
