package codec

import (
	"bytes"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

// flat has a field of every kind the direct path handles, names from
// msgpack tags, json tags and Go names, a skipped field and an
// unexported one.
type flat struct {
	B    bool    `msgpack:"b"`
	I    int     `json:"i"`
	I8   int8    `msgpack:"i8"`
	I16  int16   `msgpack:"i16"`
	I32  int32   `msgpack:"i32"`
	I64  int64   `msgpack:"i64" json:"ignored"`
	U    uint    `msgpack:"u"`
	U8   uint8   `msgpack:"u8"`
	U16  uint16  `msgpack:"u16"`
	U32  uint32  `msgpack:"u32"`
	U64  uint64  `msgpack:"u64"`
	F32  float32 `msgpack:"f32"`
	F64  float64 `msgpack:"f64"`
	S    string  `msgpack:"s"`
	Name string
	Skip string `msgpack:"-"`
	priv int
}

// flatOmit has omitempty fields and more than 15 fields (a map16 header).
type flatOmit struct {
	A, B, C, D, E, F, G, H, I, J, K, L, M, N, O int64
	P                                           string  `msgpack:"p,omitempty"`
	Q                                           float64 `msgpack:"q,omitempty"`
	R                                           bool    `msgpack:"r,omitempty"`
	S                                           uint8   `msgpack:"s,omitempty"`
}

// nested has the composite fields a plan handles: an embedded struct
// (inlined), slices of scalars and of structs, a struct.
type nested struct {
	flat
	Ints []int64 `msgpack:"ints"`
	Strs []string
	Subs []flatOmit
	One  flatOmit
	F32s []float32 `msgpack:"f32s,omitempty"`
	Bool []bool
}

type ints []int64

// tree contains itself: no plan.
type tree struct {
	Name string
	Kids []tree
}

// libEncode encodes v with the msgpack library as the pooled encoders
// are configured, the reference the direct path must match.
func libEncode(t *testing.T, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	enc.SetSortMapKeys(true)
	enc.SetCustomStructTag("json")
	require.NoError(t, enc.Encode(v))
	return buf.Bytes()
}

// libDecode decodes src with the msgpack library as the pooled decoders
// are configured.
func libDecode[T any](src []byte) (T, error) {
	var v T
	dec := msgpack.NewDecoder(bytes.NewReader(src))
	dec.SetCustomStructTag("json")
	err := dec.Decode(&v)
	return v, err
}

func TestPlanFor(t *testing.T) {
	type named int64
	type textual struct{ time.Time }
	for _, tc := range []struct {
		name string
		typ  reflect.Type
		want bool
	}{
		{"flat", reflect.TypeFor[flat](), true},
		{"omitempty, map16", reflect.TypeFor[flatOmit](), true},
		{"empty struct", reflect.TypeFor[struct{}](), true},
		{"not a struct", reflect.TypeFor[int64](), false},
		{"pointer", reflect.TypeFor[*flat](), false},
		{"nested", reflect.TypeFor[nested](), true},
		{"slice field", reflect.TypeFor[struct{ A []int64 }](), true},
		{"bytes field", reflect.TypeFor[struct{ A []byte }](), false},
		{"slice of slices", reflect.TypeFor[struct{ A [][]int64 }](), false},
		{"slice of pointers", reflect.TypeFor[struct{ A []*flat }](), false},
		{"named slice", reflect.TypeFor[struct{ A ints }](), false},
		{"named field type", reflect.TypeFor[struct{ A named }](), false},
		{"map field", reflect.TypeFor[struct{ A map[string]int64 }](), false},
		{"pointer field", reflect.TypeFor[struct{ A *int64 }](), false},
		{"struct field", reflect.TypeFor[struct{ A flat }](), true},
		{"struct field omitempty", reflect.TypeFor[struct {
			A flat `msgpack:"a,omitempty"`
		}](), false},
		{"struct field of a custom encoder", reflect.TypeFor[struct{ A customFlat }](), false},
		{"embedded", reflect.TypeFor[struct{ flat }](), true},
		{"embedded with a tag", reflect.TypeFor[struct {
			flat `msgpack:"f"`
		}](), false},
		{"embedded, shadowed", reflect.TypeFor[struct {
			Name int64
			flat
		}](), false},
		{"time", reflect.TypeFor[time.Time](), false},
		{"embeds a marshaler", reflect.TypeFor[textual](), false},
		{"as_array", reflect.TypeFor[struct {
			_msgpack struct{} `msgpack:",as_array"`
			A        int64
		}](), false},
		{"intern", reflect.TypeFor[struct {
			A string `msgpack:"a,intern"`
		}](), false},
		{"duplicate name", reflect.TypeFor[struct {
			A int64 `msgpack:"x"`
			B int64 `msgpack:"x"`
		}](), false},
		{"custom encoder", reflect.TypeFor[customFlat](), false},
		{"recursive", reflect.TypeFor[tree](), false},
		{"contains a recursive type", reflect.TypeFor[struct{ T []tree }](), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, planFor(tc.typ) != nil)
		})
	}
}

// customFlat is flat but encodes itself: the library's choice must stand.
type customFlat struct{ A int64 }

func (c customFlat) EncodeMsgpack(e *msgpack.Encoder) error  { return e.EncodeInt(c.A) }
func (c *customFlat) DecodeMsgpack(d *msgpack.Decoder) error { return d.Decode(&c.A) }

func TestMsgpackFlatStructMatchesLibrary(t *testing.T) {
	ints := []int64{0, 1, 31, 127, 128, 255, 256, math.MaxUint16, math.MaxUint16 + 1, math.MaxUint32, math.MaxUint32 + 1,
		math.MaxInt64, -1, -32, -33, math.MinInt8, math.MinInt8 - 1, math.MinInt16, math.MinInt16 - 1,
		math.MinInt32, math.MinInt32 - 1, math.MinInt64}
	strs := []string{"", "a", strings.Repeat("x", 31), strings.Repeat("x", 32), strings.Repeat("x", 255),
		strings.Repeat("x", 256), strings.Repeat("x", math.MaxUint16), strings.Repeat("x", math.MaxUint16+1), "héllo\x00\xff"}
	floats := []float64{0, math.Copysign(0, -1), 1.5, -1e300, math.Inf(1), math.SmallestNonzeroFloat64}
	c := Msgpack[flat]()
	var values []flat
	for i, n := range ints {
		values = append(values, flat{
			B: i%2 == 0, I: int(n), I8: int8(n), I16: int16(n), I32: int32(n), I64: n,
			U: uint(n), U8: uint8(n), U16: uint16(n), U32: uint32(n), U64: uint64(n),
			F32: float32(floats[i%len(floats)]), F64: floats[i%len(floats)],
			S: strs[i%len(strs)], Name: strs[(i+3)%len(strs)],
		})
	}
	for _, v := range values {
		want := libEncode(t, v)
		got, err := c.Append([]byte("prefix"), v)
		require.NoError(t, err)
		require.Equal(t, "prefix", string(got[:6]))
		require.Equal(t, want, got[6:], "%+v", v)

		d, err := c.Decode(want)
		require.NoError(t, err)
		lib, err := libDecode[flat](want)
		require.NoError(t, err)
		require.Equal(t, lib, d)
		require.Equal(t, v, d)
	}

	o := Msgpack[flatOmit]()
	for _, v := range []flatOmit{{}, {A: 1, O: -1}, {P: "p", Q: -0.5, R: true, S: 200}, {Q: math.Copysign(0, -1)}} {
		want := libEncode(t, v)
		got, err := o.Append(nil, v)
		require.NoError(t, err)
		require.Equal(t, want, got)
		d, err := o.Decode(got)
		require.NoError(t, err)
		lib, err := libDecode[flatOmit](got)
		require.NoError(t, err)
		require.Equal(t, math.Float64bits(lib.Q), math.Float64bits(d.Q)) // -0 is omitted: +0
		require.Equal(t, lib, d)
		require.Equal(t, v, d)
	}
}

func TestMsgpackNestedStructMatchesLibrary(t *testing.T) {
	c := Msgpack[nested]()
	many := make([]int64, 70000)
	for i := range many {
		many[i] = int64(i * i)
	}
	subs := make([]flatOmit, 20)
	for i := range subs {
		subs[i] = flatOmit{A: int64(i), P: strings.Repeat("p", i)}
	}
	for _, v := range []nested{
		{},
		{Ints: []int64{}, Strs: []string{}, Subs: []flatOmit{}, Bool: []bool{}}, // an empty F32s would be omitted
		{flat: flat{I: 5, S: "inlined", Name: "n"}, Ints: []int64{-1, 0, 1 << 40}, Strs: []string{"", "a", strings.Repeat("b", 40)},
			Subs: []flatOmit{{}, {P: "x", R: true}}, One: flatOmit{O: 9}, F32s: []float32{1.5}, Bool: []bool{true, false}},
		{Ints: many, Subs: subs},
	} {
		want := libEncode(t, v)
		got, err := c.Append(nil, v)
		require.NoError(t, err)
		require.Equal(t, want, got)

		d, err := c.Decode(want)
		require.NoError(t, err)
		lib, err := libDecode[nested](want)
		require.NoError(t, err)
		require.Equal(t, lib, d) // nil and empty slices alike
		require.Equal(t, v, d)
	}
}

// TestMsgpackFlatStructCompatible decodes encodings the direct path does
// not write, as the library does: older and newer versions of the
// struct, integers and floats in other forms, nil, binary strings, an
// array-encoded struct.
func TestMsgpackFlatStructCompatible(t *testing.T) {
	type v1 struct {
		ID   int64   `msgpack:"id"`
		Name string  `msgpack:"name"`
		Rate float32 `msgpack:"rate"`
	}
	type v2 struct {
		Name  string   `msgpack:"name"`
		ID    int64    `msgpack:"id"`
		Extra []string `msgpack:"extra"`
		New   bool     `msgpack:"new"`
	}
	c := Msgpack[v1]()
	for _, tc := range []struct {
		name string
		src  []byte
	}{
		{"newer version", libEncode(t, v2{Name: "n", ID: 7, Extra: []string{"x"}, New: true})},
		{"reordered and missing", libEncode(t, map[string]any{"name": "n", "id": int64(9)})},
		{"full-width ints", []byte{0x82, 0xa2, 'i', 'd', 0xd3, 0, 0, 0, 0, 0, 0, 0, 5, 0xa4, 'r', 'a', 't', 'e', 0xcf, 0, 0, 0, 0, 0, 0, 0, 3}},
		{"nil values", []byte{0x83, 0xa2, 'i', 'd', 0xc0, 0xa4, 'n', 'a', 'm', 'e', 0xc0, 0xa4, 'r', 'a', 't', 'e', 0xc0}},
		{"binary string", []byte{0x81, 0xa4, 'n', 'a', 'm', 'e', 0xc4, 2, 'h', 'i'}},
		{"float64 into float32", []byte{0x81, 0xa4, 'r', 'a', 't', 'e', 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0}},
		{"float32", []byte{0x81, 0xa4, 'r', 'a', 't', 'e', 0xca, 0x3f, 0xc0, 0, 0}},
		{"array", []byte{0x93, 0x01, 0xa1, 'a', 0x02}},
		{"duplicate field", []byte{0x82, 0xa2, 'i', 'd', 0x01, 0xa2, 'i', 'd', 0x02}},
		{"nil struct", []byte{0xc0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, wantErr := libDecode[v1](tc.src)
			got, err := c.Decode(tc.src)
			if wantErr != nil {
				require.ErrorIs(t, err, ErrInvalid)
				return
			}
			require.NoError(t, err)
			require.Equal(t, want, got)
		})
	}
}

// TestMsgpackFlatStructMalformed cuts and corrupts a valid encoding:
// every result is an error matching ErrInvalid or the library's value,
// never a panic.
func TestMsgpackFlatStructMalformed(t *testing.T) {
	c := Msgpack[flat]()
	src, err := c.Append(nil, flat{I: -300, S: "string", U64: math.MaxUint64, F64: 2.5, F32: 1, Name: "n", B: true})
	require.NoError(t, err)
	for i := range src {
		_, err := c.Decode(src[:i])
		require.ErrorIs(t, err, ErrInvalid, "prefix of %d bytes", i)
	}
	for i := range src {
		for _, b := range []byte{0x00, 0x7f, 0xa1, 0xc0, 0xc1, 0xc3, 0xca, 0xcb, 0xd0, 0xd9, 0xdc, 0xde, 0xff} {
			bad := bytes.Clone(src)
			bad[i] = b
			got, err := c.Decode(bad)
			want, wantErr := libDecode[flat](bad)
			if err != nil {
				require.ErrorIs(t, err, ErrInvalid)
				continue
			}
			require.NoError(t, wantErr, "byte %d set to %#x: decoded %+v", i, b, got)
			require.Equal(t, want, got)
		}
	}
	_, err = c.Decode(append(bytes.Clone(src), 0x01))
	require.ErrorIs(t, err, ErrInvalid)

	// A value of the wrong type goes to the library, whose error says so.
	_, err = c.Decode([]byte{0x81, 0xa1, 's', 0x05})
	require.ErrorIs(t, err, ErrInvalid)
	require.ErrorContains(t, err, "decoding string")
}

func TestMsgpackFlatStructAllocs(t *testing.T) {
	type ints struct {
		A, B int64
		C    bool
	}
	buf := make([]byte, 0, 256)
	fv := flat{I: 1, S: "s", Name: "name"}
	enc, err := Msgpack[flat]().Append(nil, fv)
	require.NoError(t, err)
	iv, err := Msgpack[ints]().Append(nil, ints{A: 1, B: -1, C: true})
	require.NoError(t, err)
	c, ci := Msgpack[flat](), Msgpack[ints]()
	for _, tc := range []struct {
		name string
		want float64
		f    func()
	}{
		{"Append", 0, func() { buf, _ = c.Append(buf[:0], fv) }},
		{"Decode ints", 0, func() { _, _ = ci.Decode(iv) }},
		{"Decode strings", 1, func() { _, _ = c.Decode(enc) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, testing.AllocsPerRun(100, tc.f))
		})
	}
}

// FuzzMsgpackFlatStruct checks the direct path against the library on
// arbitrary input: the same values decoded, the same errors (as
// ErrInvalid), and a decoded value encoding to the library's bytes.
func FuzzMsgpackFlatStruct(f *testing.F) {
	c := Msgpack[flat]()
	for _, v := range []flat{{}, {I: -1, S: "x", F64: 1.5, U8: 200}, {I64: math.MinInt64, Name: strings.Repeat("n", 40)}} {
		b, err := c.Append(nil, v)
		require.NoError(f, err)
		f.Add(b)
	}
	f.Add([]byte{0x81, 0xa1, 's', 0xc0})
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := c.Decode(bytes.Clone(data))
		if err != nil {
			require.ErrorIs(t, err, ErrInvalid)
			if checkMsgpack(data) == nil {
				_, libErr := libDecode[flat](data)
				require.Error(t, libErr, "the library decodes %x", data)
			}
			return
		}
		want, libErr := libDecode[flat](data)
		require.NoError(t, libErr)
		if got.F32 == got.F32 && got.F64 == got.F64 { // NaN != NaN
			require.Equal(t, want, got)
		}
		enc, err := c.Append(nil, got)
		require.NoError(t, err)
		require.Equal(t, libEncode(t, got), enc)
	})
}
