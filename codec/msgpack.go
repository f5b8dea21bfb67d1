package codec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// Msgpack returns a codec for T using MessagePack
// (github.com/vmihailenco/msgpack/v5); it is the default codec for
// structs.
//
// Structs are encoded as maps keyed by field name, so a reader with more,
// fewer or reordered fields still decodes what it knows (unknown keys are
// skipped, missing ones leave the zero value). A field's name is taken from
// its `msgpack` tag, else from its `json` tag, else it is the Go field name;
// "-" skips a field and omitempty is honoured. Integers use the smallest
// MessagePack integer that holds them. Maps of type map[string]string,
// map[string]bool and map[string]any are written with sorted keys; other
// map types are written in Go's random map order, so a value holding such a
// map does not always encode to the same bytes and should not be used as a
// key.
//
// It is not order-preserving. Append returns an error wrapping the msgpack
// error for values msgpack cannot encode (channels, functions, ...), and
// then returns dst with its length unchanged. Decode fails with an error
// matching [ErrInvalid] for malformed or truncated input, for input whose
// type does not fit T, and for trailing bytes after the value; nil and
// empty input are errors. Decode shares no memory with src.
//
// Encoders and decoders are pooled and shared by all Msgpack codecs.
func Msgpack[T any]() Codec[T] { return msgpackCodec[T]{} }

type msgpackCodec[T any] struct{}

// appendWriter is the io.Writer (and io.ByteWriter, so msgpack does not
// wrap it) that a pooled encoder writes into: it appends to b.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

func (w *appendWriter) WriteByte(c byte) error {
	w.b = append(w.b, c)
	return nil
}

type msgpackEncoder struct {
	w   appendWriter
	enc *msgpack.Encoder
}

type msgpackDecoder struct {
	r   bytes.Reader
	dec *msgpack.Decoder
}

// The pools hold configured encoders and decoders. An encoder or decoder
// whose call failed is dropped rather than put back, so no state left by a
// failure reaches the next call.
var (
	msgpackEncoders = sync.Pool{New: func() any {
		e := new(msgpackEncoder)
		e.enc = msgpack.NewEncoder(&e.w)
		e.enc.UseCompactInts(true)
		e.enc.SetSortMapKeys(true)
		e.enc.SetCustomStructTag("json")
		return e
	}}
	msgpackDecoders = sync.Pool{New: func() any {
		d := new(msgpackDecoder)
		// bytes.Reader is an io.ByteScanner, so the decoder reads it
		// directly without buffering: d.r.Len() is what it has not read.
		// UsePreallocateValues stays off: it starts a goroutine per type.
		d.dec = msgpack.NewDecoder(&d.r)
		d.dec.SetCustomStructTag("json")
		return d
	}}
)

func (msgpackCodec[T]) Append(dst []byte, v T) ([]byte, error) {
	e := msgpackEncoders.Get().(*msgpackEncoder)
	e.w.b = dst
	err := e.enc.Encode(v)
	out := e.w.b
	e.w.b = nil
	if err != nil {
		return dst, fmt.Errorf("codec: msgpack encode %T: %w", v, err)
	}
	msgpackEncoders.Put(e)
	return out, nil
}

func (msgpackCodec[T]) Decode(src []byte) (T, error) {
	d := msgpackDecoders.Get().(*msgpackDecoder)
	d.r.Reset(src)
	var v T
	err := d.dec.Decode(&v)
	rest := d.r.Len()
	d.r.Reset(nil)
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		err = fmt.Errorf("%w: msgpack: %w", ErrInvalid, io.ErrUnexpectedEOF)
	case err != nil && strings.HasPrefix(err.Error(), "msgpack: "):
		err = fmt.Errorf("%w: %w", ErrInvalid, err)
	case err != nil:
		err = fmt.Errorf("%w: msgpack: %w", ErrInvalid, err)
	case rest > 0:
		err = fmt.Errorf("%w: msgpack: %d trailing bytes after the value", ErrInvalid, rest)
	}
	if err != nil {
		var zero T
		return zero, err
	}
	msgpackDecoders.Put(d)
	return v, nil
}

func (msgpackCodec[T]) OrderPreserving() bool { return false }
