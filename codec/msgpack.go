package codec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"unsafe"

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
// empty input are errors. Before decoding, Decode checks that src is one
// well-formed value whose arrays and maps nest at most 10000 deep and whose
// length headers claim no more bytes or elements than src holds, so a
// short hostile input cannot make the decoder allocate gigabytes for a
// claimed length or recurse without bound. Decode shares no memory with
// src.
//
// Encoders and decoders are pooled and shared by all Msgpack codecs.
//
// Structs of plain data are encoded and decoded without reflection per
// value: a struct whose encoded fields are all of the predeclared boolean,
// integer, float and string types, structs of plain data, slices of those
// (not []byte), or embedded structs of plain data (whose fields msgpack
// inlines), tagged with at most a name and omitempty (not on a struct
// field), is worked out once per type: its fields, names and offsets,
// checked against the msgpack library on sample values. Append and
// Decode then read and write the fields directly. The bytes are the
// library's, byte for byte; missing fields decode as zero, and input the
// direct decoder does not expect (an unknown field, a struct encoded as an
// array, a value of another type, nil for a struct) goes to the library,
// so such a struct reads what older or newer versions of it wrote, as any
// struct does. Encoding allocates nothing beyond dst; decoding allocates
// one copy of src that the string fields share (none when they are all
// empty) and one array per non-empty slice. Other types (maps, pointers,
// interfaces, named field types such as time.Time, types with encoders of
// their own: msgpack.CustomEncoder, msgpack.Marshaler,
// encoding.BinaryMarshaler, encoding.TextMarshaler, a `_msgpack` options
// field) go through the library; where that shows in a profile, give the
// step a [Codec] written for the type (its Append and Decode by hand, as
// the Nexmark benchmark's event codec is).
func Msgpack[T any]() Codec[T] { return msgpackCodec[T]{plan: planFor(reflect.TypeFor[T]())} }

type msgpackCodec[T any] struct {
	plan *structPlan // T's, or nil: the library encodes T by reflection
}

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

func (c msgpackCodec[T]) Append(dst []byte, v T) ([]byte, error) {
	if c.plan != nil {
		return c.plan.append(dst, unsafe.Pointer(&v)), nil
	}
	return appendMsgpack(dst, v)
}

// appendMsgpack is Append by the library.
func appendMsgpack[T any](dst []byte, v T) ([]byte, error) {
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

func (c msgpackCodec[T]) Decode(src []byte) (T, error) {
	if err := checkMsgpack(src); err != nil {
		var zero T
		return zero, err
	}
	if c.plan != nil {
		var v T
		if c.plan.decode(src, unsafe.Pointer(&v)) {
			return v, nil
		}
	}
	return decodeMsgpack[T](src)
}

// decodeMsgpack is Decode by the library, of a src checkMsgpack accepted.
func decodeMsgpack[T any](src []byte) (T, error) {
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

// msgpackMaxDepth bounds how deeply arrays and maps may nest in a value
// Msgpack decodes, as encoding/json bounds JSON nesting; the msgpack
// decoder recurses once per level.
const msgpackMaxDepth = 10000

// checkMsgpack walks src as exactly one MessagePack value without
// decoding it. It rejects truncated input, reserved codes, trailing bytes,
// nesting deeper than msgpackMaxDepth and, before the decoder can act on
// them, length headers that claim more bytes or elements than src holds:
// the msgpack decoder allocates up to a claimed bin length at once, so an
// 11-byte input could otherwise allocate 4 GiB. It does not allocate for
// values nested up to 32 deep.
func checkMsgpack(src []byte) error {
	var stackBuf [32]int
	open := append(stackBuf[:0], 1) // values still to read in each open container
	off := 0
	for len(open) > 0 {
		top := len(open) - 1
		if open[top] == 0 {
			open = open[:top]
			continue
		}
		open[top]--

		if off >= len(src) {
			return fmt.Errorf("%w: msgpack: %w at offset %d", ErrInvalid, io.ErrUnexpectedEOF, off)
		}
		c := src[off]
		start := off
		off++
		var (
			lenSize int    // size of the length field that follows c
			payload int    // bytes after the length field (fixed-size types)
			extra   int    // bytes after the length field besides the length (ext type)
			elems   int    // 1 for arrays, 2 for maps (per counted entry)
			name    string // for errors
		)
		switch {
		case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
			continue // fixint, nil, false, true
		case c >= 0x80 && c <= 0x8f, c >= 0x90 && c <= 0x9f:
			n := int(c & 0x0f) // fixmap, fixarray
			if c <= 0x8f {
				n *= 2
			}
			if n > 0 {
				if len(open) > msgpackMaxDepth {
					return msgpackDepthError(start)
				}
				open = append(open, n)
			}
			continue
		case c >= 0xa0 && c <= 0xbf:
			payload, name = int(c&0x1f), "fixstr"
		case c == 0xcc || c == 0xd0:
			payload, name = 1, "int8"
		case c == 0xcd || c == 0xd1:
			payload, name = 2, "int16"
		case c == 0xce || c == 0xd2 || c == 0xca:
			payload, name = 4, "32-bit number"
		case c == 0xcf || c == 0xd3 || c == 0xcb:
			payload, name = 8, "64-bit number"
		case c >= 0xd4 && c <= 0xd8:
			payload, name = 1+1<<(c-0xd4), "fixext"
		case c == 0xc4 || c == 0xd9:
			lenSize, name = 1, "bin8/str8"
		case c == 0xc5 || c == 0xda:
			lenSize, name = 2, "bin16/str16"
		case c == 0xc6 || c == 0xdb:
			lenSize, name = 4, "bin32/str32"
		case c >= 0xc7 && c <= 0xc9:
			lenSize, extra, name = 1<<(c-0xc7), 1, "ext"
		case c == 0xdc:
			lenSize, elems, name = 2, 1, "array16"
		case c == 0xdd:
			lenSize, elems, name = 4, 1, "array32"
		case c == 0xde:
			lenSize, elems, name = 2, 2, "map16"
		case c == 0xdf:
			lenSize, elems, name = 4, 2, "map32"
		default: // 0xc1
			return fmt.Errorf("%w: msgpack: reserved code %#x at offset %d", ErrInvalid, c, start)
		}
		if lenSize > 0 {
			if len(src)-off < lenSize {
				return fmt.Errorf("%w: msgpack: %s at offset %d has a truncated length: %w", ErrInvalid, name, start, io.ErrUnexpectedEOF)
			}
			n := 0
			for _, b := range src[off : off+lenSize] {
				n = n<<8 | int(b)
			}
			off += lenSize
			if elems > 0 {
				// Every value takes at least one byte.
				if len(src)-off < elems*n {
					return fmt.Errorf("%w: msgpack: %s at offset %d claims %d entries, only %d bytes left", ErrInvalid, name, start, n, len(src)-off)
				}
				if n > 0 {
					if len(open) > msgpackMaxDepth {
						return msgpackDepthError(start)
					}
					open = append(open, elems*n)
				}
				continue
			}
			payload = extra + n
		}
		if len(src)-off < payload {
			return fmt.Errorf("%w: msgpack: %s at offset %d needs %d bytes, only %d left", ErrInvalid, name, start, payload, len(src)-off)
		}
		off += payload
	}
	if rest := len(src) - off; rest > 0 {
		return fmt.Errorf("%w: msgpack: %d trailing bytes after the value", ErrInvalid, rest)
	}
	return nil
}

func msgpackDepthError(off int) error {
	return fmt.Errorf("%w: msgpack: nesting deeper than %d at offset %d", ErrInvalid, msgpackMaxDepth, off)
}
