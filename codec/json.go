package codec

import (
	"encoding/json"
	"fmt"
	"sync"
)

// JSON returns a codec for T using encoding/json, with its struct tags and
// rules: Append writes what json.Marshal returns (HTML characters escaped,
// no trailing newline) through a pooled json.Encoder, straight into dst;
// Decode is json.Unmarshal.
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

// jsonEncoder is a pooled json.Encoder writing into w; it encodes straight
// into the caller's buffer, where json.Marshal would return a new slice.
type jsonEncoder struct {
	w   appendWriter
	enc *json.Encoder
}

var jsonEncoders = sync.Pool{New: func() any {
	e := new(jsonEncoder)
	e.enc = json.NewEncoder(&e.w)
	return e
}}

func (jsonCodec[T]) Append(dst []byte, v T) ([]byte, error) {
	e := jsonEncoders.Get().(*jsonEncoder)
	e.w.b = dst
	err := e.enc.Encode(v)
	out := e.w.b
	e.w.b = nil
	jsonEncoders.Put(e)
	if err != nil {
		return dst, fmt.Errorf("codec: json encode %T: %w", v, err)
	}
	// Encode ends every value with a newline; json.Marshal does not.
	return out[:len(out)-1], nil
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
