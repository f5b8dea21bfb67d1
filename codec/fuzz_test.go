package codec_test

import (
	"bytes"
	"cmp"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/duality-streams/duality/codec"
)

// Run one fuzzer at a time with an anchored name, e.g.
//
//	go test ./codec -run='^$' -fuzz='^FuzzInt64$' -fuzztime=10s
//
// Decode fuzzers check that arbitrary input never panics, that failures
// match codec.ErrInvalid, and that a decoded value re-encodes and decodes
// to itself. Order fuzzers check that bytes.Compare on encodings agrees
// with the order of the values.

// checkExact checks a codec whose encoding is a bijection on the inputs it
// accepts: re-encoding a decoded value gives the input back.
func checkExact[T any](t *testing.T, c codec.Codec[T], data []byte) (T, bool) {
	src := bytes.Clone(data)
	v, err := c.Decode(src)
	if err != nil {
		require.ErrorIs(t, err, codec.ErrInvalid)
		return v, false
	}
	clear(src) // the decoded value must not share memory with src
	enc, err := c.Append(nil, v)
	require.NoError(t, err)
	require.Equal(t, data, enc)
	return v, true
}

func FuzzString(f *testing.F) {
	for _, s := range []string{"", "a", "héllo", "\x00\xff"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, ok := checkExact(t, codec.String(), data)
		require.True(t, ok, "String decodes anything")
		require.Equal(t, string(data), v)
	})
}

func FuzzBytes(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 1, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		v, ok := checkExact(t, codec.Bytes(), data)
		require.True(t, ok, "Bytes decodes anything")
		require.Equal(t, data == nil, v == nil)
	})
}

func FuzzInt64(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 2, 3})
	f.Add(make([]byte, 8))
	f.Add(bytes.Repeat([]byte{0xff}, 8))
	f.Add(make([]byte, 9))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, ok := checkExact(t, codec.Int64(), data)
		require.Equal(t, len(data) == 8, ok)
	})
}

func FuzzUint64(f *testing.F) {
	f.Add([]byte{})
	f.Add(make([]byte, 7))
	f.Add(bytes.Repeat([]byte{0x80}, 8))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, ok := checkExact(t, codec.Uint64(), data)
		require.Equal(t, len(data) == 8, ok)
	})
}

func FuzzFloat64(f *testing.F) {
	f.Add([]byte{})
	f.Add(make([]byte, 8))                                        // smallest negative NaN
	f.Add(bytes.Repeat([]byte{0xff}, 8))                          // largest positive NaN
	f.Add([]byte{0x80, 0, 0, 0, 0, 0, 0, 0})                      // +0
	f.Add([]byte{0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) // -0
	f.Fuzz(func(t *testing.T, data []byte) {
		_, ok := checkExact(t, codec.Float64(), data)
		require.Equal(t, len(data) == 8, ok)
	})
}

func FuzzBool(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0})
	f.Add([]byte{1})
	f.Add([]byte{2})
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		_, ok := checkExact(t, codec.Bool(), data)
		require.Equal(t, len(data) == 1 && data[0] <= 1, ok)
	})
}

// fuzzRecord is the small struct the JSON and Msgpack fuzzers decode into.
type fuzzRecord struct {
	Name  string            `json:"name"`
	Count int64             `json:"count"`
	Small int8              `json:"small"`
	Ratio float64           `json:"ratio"`
	On    bool              `json:"on"`
	Tags  []string          `json:"tags"`
	Blob  []byte            `json:"blob"`
	Attrs map[string]string `json:"attrs"`
	Inner *struct {
		ID uint32 `json:"id"`
	} `json:"inner"`
}

// checkRecodes checks a codec that is not a bijection: a decoded value
// encodes to bytes that decode to an equal value and encode to the same
// bytes again.
func checkRecodes[T any](t *testing.T, c codec.Codec[T], data []byte, hasNaN func(T) bool) {
	src := bytes.Clone(data)
	v1, err := c.Decode(src)
	if err != nil {
		require.ErrorIs(t, err, codec.ErrInvalid)
		return
	}
	clear(src) // the decoded value must not share memory with src
	enc1, err := c.Append(nil, v1)
	require.NoError(t, err)
	v2, err := c.Decode(enc1)
	require.NoError(t, err, "re-decoding %x", enc1)
	enc2, err := c.Append(nil, v2)
	require.NoError(t, err)
	require.Equal(t, enc1, enc2)
	if !hasNaN(v1) {
		require.Equal(t, v1, v2)
	}
}

func recordHasNaN(r fuzzRecord) bool { return math.IsNaN(r.Ratio) }

func FuzzJSON(f *testing.F) {
	for _, s := range []string{
		``, `null`, `{}`, `[]`, `{"name":"a","count":-3,"ratio":1.5,"on":true}`,
		`{"tags":["x",""],"blob":"AAE=","attrs":{"b":"2","a":"1"},"inner":{"id":7}}`,
		`{"small":300}`, `{"NAME":"case"}`, `{"name":"\ud800"}`, `{"ratio":1e400}`, `{} {}`,
	} {
		f.Add([]byte(s))
	}
	c := codec.JSON[fuzzRecord]()
	f.Fuzz(func(t *testing.T, data []byte) {
		checkRecodes(t, c, data, recordHasNaN)
	})
}

func FuzzMsgpack(f *testing.F) {
	c := codec.Msgpack[fuzzRecord]()
	seeds := []fuzzRecord{
		{},
		{Name: "a", Count: -3, Small: -1, Ratio: 1.5, On: true},
		{Tags: []string{"x", ""}, Blob: []byte{0, 1}, Attrs: map[string]string{"b": "2", "a": "1"}},
		{Count: math.MinInt64, Ratio: math.Inf(-1), Inner: &struct {
			ID uint32 `json:"id"`
		}{ID: math.MaxUint32}},
	}
	for _, r := range seeds {
		b, err := c.Append(nil, r)
		require.NoError(f, err)
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0xc0})                                                                    // nil
	f.Add([]byte{0x90})                                                                    // empty array
	f.Add([]byte{0xc1})                                                                    // never used
	f.Add([]byte{0xdf, 0xff, 0xff, 0xff, 0xff})                                            // map32 claiming 4G entries
	f.Add([]byte{0x81, 0xa5, 'c', 'o', 'u', 'n', 't', 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0}) // count: 1.5
	raw := codec.Msgpack[msgpack.RawMessage]()
	f.Fuzz(func(t *testing.T, data []byte) {
		checkRecodes(t, c, data, recordHasNaN)

		// The codec's input check accepts every single value the msgpack
		// library can skip, and RawMessage keeps it byte for byte.
		r := bytes.NewReader(data)
		if msgpack.NewDecoder(r).Skip() == nil && r.Len() == 0 {
			v, err := raw.Decode(data)
			require.NoError(t, err)
			if !bytes.Equal(data, []byte{0xc0}) { // nil decodes to a nil RawMessage
				require.Equal(t, data, []byte(v))
			}
		}
	})
}

// FuzzMsgpackAny decodes arbitrary input into any, which exercises every
// MessagePack type (ext types and timestamps included): decoding never
// panics, and a decoded value encodes and decodes again. Encodings are not
// compared: maps with non-string keys encode in random order.
func FuzzMsgpackAny(f *testing.F) {
	c := codec.Msgpack[any]()
	for _, v := range []any{nil, true, int64(-1), uint64(1 << 63), 1.5, "s", []byte{1}, []any{"a", int8(2)},
		map[string]any{"k": []any{}}, map[any]any{int64(1): "x"}, time.Unix(1700000000, 5).UTC()} {
		b, err := c.Append(nil, v)
		require.NoError(f, err)
		f.Add(b)
	}
	f.Add([]byte{0xd6, 0xff, 0, 0, 0, 1})                             // timestamp32
	f.Add([]byte{0xc7, 12, 0xff, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1}) // timestamp96
	f.Add([]byte{0xd4, 0x05, 0x00})                                   // unregistered ext
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := c.Decode(data)
		if err != nil {
			require.ErrorIs(t, err, codec.ErrInvalid)
			return
		}
		enc, err := c.Append(nil, v)
		require.NoError(t, err)
		_, err = c.Decode(enc)
		require.NoError(t, err, "re-decoding %x", enc)
	})
}

// checkOrder checks that bytes.Compare on the encodings of a and b is
// want, and that both decode back.
func checkOrder[T any](t *testing.T, c codec.Codec[T], a, b T, want int, eq func(a, b T) bool) {
	ea, err := c.Append(nil, a)
	require.NoError(t, err)
	eb, err := c.Append(nil, b)
	require.NoError(t, err)
	require.Equalf(t, want, bytes.Compare(ea, eb), "%v (%x) vs %v (%x)", a, ea, b, eb)
	da, err := c.Decode(ea)
	require.NoError(t, err)
	require.Truef(t, eq(a, da), "%v decoded as %v", a, da)
}

func FuzzStringOrder(f *testing.F) {
	f.Add("", "a")
	f.Add("a", "a\x00")
	f.Add("é", "z")
	f.Fuzz(func(t *testing.T, a, b string) {
		checkOrder(t, codec.String(), a, b, cmp.Compare(a, b), equal)
	})
}

func FuzzBytesOrder(f *testing.F) {
	f.Add([]byte{}, []byte{0})
	f.Add([]byte{1}, []byte{0, 2})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		checkOrder(t, codec.Bytes(), a, b, bytes.Compare(a, b), bytes.Equal)
	})
}

func FuzzInt64Order(f *testing.F) {
	f.Add(int64(-1), int64(0))
	f.Add(int64(math.MinInt64), int64(math.MaxInt64))
	f.Add(int64(255), int64(256))
	f.Fuzz(func(t *testing.T, a, b int64) {
		checkOrder(t, codec.Int64(), a, b, cmp.Compare(a, b), equal)
	})
}

func FuzzUint64Order(f *testing.F) {
	f.Add(uint64(0), uint64(1<<63))
	f.Add(uint64(255), uint64(256))
	f.Fuzz(func(t *testing.T, a, b uint64) {
		checkOrder(t, codec.Uint64(), a, b, cmp.Compare(a, b), equal)
	})
}

func FuzzBoolOrder(f *testing.F) {
	f.Add(false, true)
	f.Fuzz(func(t *testing.T, a, b bool) {
		want := 0
		switch {
		case !a && b:
			want = -1
		case a && !b:
			want = 1
		}
		checkOrder(t, codec.Bool(), a, b, want, equal)
	})
}

// totalOrder is IEEE 754 totalOrder written from its definition rather
// than from the bit trick the codec uses: negative NaNs (larger payload
// first), -Inf, negative numbers, -0, +0, positive numbers, +Inf,
// positive NaNs (larger payload last).
func totalOrder(a, b float64) int {
	class := func(x float64) int {
		switch {
		case math.IsNaN(x) && math.Signbit(x):
			return -1
		case math.IsNaN(x):
			return 1
		}
		return 0
	}
	payload := func(x float64) uint64 { return math.Float64bits(x) & (1<<52 - 1) }
	ca, cb := class(a), class(b)
	if ca != cb {
		return cmp.Compare(ca, cb)
	}
	switch ca {
	case -1:
		return cmp.Compare(payload(b), payload(a))
	case 1:
		return cmp.Compare(payload(a), payload(b))
	}
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	sa, sb := math.Signbit(a), math.Signbit(b) // a == b: only zeros differ
	switch {
	case sa == sb:
		return 0
	case sa:
		return -1
	}
	return 1
}

func FuzzFloat64Order(f *testing.F) {
	f.Add(math.Copysign(0, -1), 0.0)
	f.Add(math.Inf(-1), -math.MaxFloat64)
	f.Add(math.NaN(), math.Inf(1))
	f.Add(math.Float64frombits(0xfff8000000000001), math.Inf(-1))
	f.Add(math.Float64frombits(0xfff8000000000001), math.Float64frombits(0xfff8000000000002))
	f.Add(-math.SmallestNonzeroFloat64, math.SmallestNonzeroFloat64)
	f.Add(1.0, 1.0000000000000002)
	f.Fuzz(func(t *testing.T, a, b float64) {
		checkOrder(t, codec.Float64(), a, b, totalOrder(a, b), sameFloat)
	})
}
