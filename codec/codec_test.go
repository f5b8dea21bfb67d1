package codec_test

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math"
	"runtime"
	"slices"
	"sync"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/codec"
)

// roundTrip is one value and its expected encoding.
type roundTrip[T any] struct {
	name string
	v    T
	enc  []byte
}

// checkRoundTrips checks, for every case, that Append gives the expected
// encoding with a nil dst and after a prefix, and that Decode gives the
// value back. eq compares decoded values (floats need bit equality).
func checkRoundTrips[T any](t *testing.T, c codec.Codec[T], cases []roundTrip[T], eq func(a, b T) bool) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.Append(nil, tc.v)
			require.NoError(t, err)
			require.Equal(t, tc.enc, got)

			prefix := []byte("prefix")
			got, err = c.Append(slices.Clip(prefix), tc.v)
			require.NoError(t, err)
			require.Equal(t, "prefix", string(got[:len(prefix)]))
			require.Equal(t, []byte(tc.enc), got[len(prefix):])

			v, err := c.Decode(tc.enc)
			require.NoError(t, err)
			require.Truef(t, eq(tc.v, v), "decoded %#v, want %#v", v, tc.v)
		})
	}
}

func equal[T comparable](a, b T) bool { return a == b }

func sameFloat(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }

func hexBytes(s string) []byte {
	var b []byte
	_, err := fmt.Sscanf(s, "%x", &b)
	if err != nil {
		panic(err)
	}
	return b
}

func TestString(t *testing.T) {
	checkRoundTrips(t, codec.String(), []roundTrip[string]{
		{"empty", "", []byte{}},
		{"ascii", "hello", []byte("hello")},
		{"utf8", "héllo, 世界", []byte("héllo, 世界")},
		{"not utf8", "\x00\xff\xfe", []byte{0, 0xff, 0xfe}},
	}, equal)

	v, err := codec.String().Decode(nil)
	require.NoError(t, err)
	require.Equal(t, "", v)
}

func TestBytes(t *testing.T) {
	c := codec.Bytes()
	checkRoundTrips(t, c, []roundTrip[[]byte]{
		{"one", []byte{1}, []byte{1}},
		{"several", []byte{0, 1, 0xff}, []byte{0, 1, 0xff}},
	}, bytes.Equal)

	t.Run("nil and empty stay apart", func(t *testing.T) {
		enc, err := c.Append(nil, nil)
		require.NoError(t, err)
		require.Nil(t, enc)
		enc, err = c.Append(nil, []byte{})
		require.NoError(t, err)
		require.NotNil(t, enc)
		require.Empty(t, enc)

		v, err := c.Decode(nil)
		require.NoError(t, err)
		require.Nil(t, v)
		v, err = c.Decode([]byte{})
		require.NoError(t, err)
		require.NotNil(t, v)
		require.Empty(t, v)
	})
}

func TestInt64(t *testing.T) {
	checkRoundTrips(t, codec.Int64(), []roundTrip[int64]{
		{"min", math.MinInt64, hexBytes("0000000000000000")},
		{"minus one", -1, hexBytes("7fffffffffffffff")},
		{"zero", 0, hexBytes("8000000000000000")},
		{"one", 1, hexBytes("8000000000000001")},
		{"258", 258, hexBytes("8000000000000102")},
		{"max", math.MaxInt64, hexBytes("ffffffffffffffff")},
	}, equal)
}

func TestUint64(t *testing.T) {
	checkRoundTrips(t, codec.Uint64(), []roundTrip[uint64]{
		{"zero", 0, hexBytes("0000000000000000")},
		{"258", 258, hexBytes("0000000000000102")},
		{"high bit", 1 << 63, hexBytes("8000000000000000")},
		{"max", math.MaxUint64, hexBytes("ffffffffffffffff")},
	}, equal)
}

func TestFloat64(t *testing.T) {
	checkRoundTrips(t, codec.Float64(), []roundTrip[float64]{
		{"-inf", math.Inf(-1), hexBytes("000fffffffffffff")},
		{"-1", -1, hexBytes("400fffffffffffff")},
		{"-0", math.Copysign(0, -1), hexBytes("7fffffffffffffff")},
		{"+0", 0, hexBytes("8000000000000000")},
		{"smallest subnormal", math.SmallestNonzeroFloat64, hexBytes("8000000000000001")},
		{"1", 1, hexBytes("bff0000000000000")},
		{"+inf", math.Inf(1), hexBytes("fff0000000000000")},
		{"NaN", math.NaN(), hexBytes("fff8000000000001")},
		{"negative NaN", math.Float64frombits(0xfff8000000000001), hexBytes("0007fffffffffffe")},
	}, sameFloat)
}

func TestBool(t *testing.T) {
	checkRoundTrips(t, codec.Bool(), []roundTrip[bool]{
		{"false", false, []byte{0}},
		{"true", true, []byte{1}},
	}, equal)
}

// event is the struct the JSON and Msgpack tests encode.
type event struct {
	User    string            `json:"user"`
	Page    string            `msgpack:"page_url" json:"page"`
	Millis  int64             `json:"millis"`
	Score   float64           `json:"score,omitempty"`
	Tags    []string          `json:"tags"`
	Payload []byte            `json:"payload"`
	Attrs   map[string]string `json:"attrs"`
	Ignored string            `json:"-"`
}

func TestJSON(t *testing.T) {
	c := codec.JSON[event]()
	checkRoundTrips(t, c, []roundTrip[event]{
		{"struct", event{User: "ann", Page: "/a", Millis: 7, Tags: []string{"x"}, Attrs: map[string]string{"b": "2", "a": "1"}},
			[]byte(`{"user":"ann","page":"/a","millis":7,"tags":["x"],"payload":null,"attrs":{"a":"1","b":"2"}}`)},
	}, func(a, b event) bool { return fmt.Sprint(a) == fmt.Sprint(b) })

	t.Run("other types", func(t *testing.T) {
		b, err := codec.JSON[[]int]().Append(nil, []int{1, 2})
		require.NoError(t, err)
		require.Equal(t, "[1,2]", string(b))
		v, err := codec.JSON[map[string]any]().Decode([]byte(`{"n":1.5,"s":"x"}`))
		require.NoError(t, err)
		require.Equal(t, map[string]any{"n": 1.5, "s": "x"}, v)
	})
}

func TestMsgpack(t *testing.T) {
	c := codec.Msgpack[event]()
	in := event{
		User: "ann", Page: "/a", Millis: -7, Score: 0.5, Tags: []string{"x", "y"},
		Payload: []byte{0, 1}, Attrs: map[string]string{"b": "2", "a": "1"}, Ignored: "dropped",
	}
	enc, err := c.Append(nil, in)
	require.NoError(t, err)
	out, err := c.Decode(enc)
	require.NoError(t, err)
	want := in
	want.Ignored = ""
	require.Equal(t, want, out)

	t.Run("field names", func(t *testing.T) {
		// The msgpack tag wins over the json tag, which wins over the Go name.
		m, err := codec.Msgpack[map[string]any]().Decode(enc)
		require.NoError(t, err)
		require.ElementsMatch(t, []string{"user", "page_url", "millis", "score", "tags", "payload", "attrs"}, slices.Collect(maps.Keys(m)))
		require.Equal(t, "/a", m["page_url"])
	})

	t.Run("compatible struct changes", func(t *testing.T) {
		// A reader with reordered, missing and extra fields decodes by name.
		type eventV2 struct {
			Country string `json:"country"`
			Millis  int32  `json:"millis"`
			User    string `json:"user"`
		}
		v2, err := codec.Msgpack[eventV2]().Decode(enc)
		require.NoError(t, err)
		require.Equal(t, eventV2{User: "ann", Millis: -7}, v2)
	})

	t.Run("deterministic", func(t *testing.T) {
		attrs := map[string]string{}
		for i := range 50 {
			attrs[fmt.Sprint("k", i)] = fmt.Sprint(i)
		}
		first, err := c.Append(nil, event{Attrs: attrs})
		require.NoError(t, err)
		for range 20 {
			again, err := c.Append(nil, event{Attrs: attrs})
			require.NoError(t, err)
			require.Equal(t, first, again)
		}
	})

	t.Run("compact ints", func(t *testing.T) {
		b, err := codec.Msgpack[int64]().Append(nil, 5)
		require.NoError(t, err)
		require.Equal(t, []byte{5}, b)
	})

	t.Run("other types", func(t *testing.T) {
		b, err := codec.Msgpack[string]().Append(nil, "hi")
		require.NoError(t, err)
		s, err := codec.Msgpack[string]().Decode(b)
		require.NoError(t, err)
		require.Equal(t, "hi", s)

		p, err := codec.Msgpack[*event]().Decode(enc)
		require.NoError(t, err)
		require.Equal(t, "ann", p.User)
	})
}

func TestOrderPreserving(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    interface{ OrderPreserving() bool }
		want bool
	}{
		{"String", codec.String(), true},
		{"Bytes", codec.Bytes(), true},
		{"Int64", codec.Int64(), true},
		{"Uint64", codec.Uint64(), true},
		{"Float64", codec.Float64(), true},
		{"Bool", codec.Bool(), true},
		{"JSON", codec.JSON[int64](), false},
		{"Msgpack", codec.Msgpack[int64](), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.c.OrderPreserving())
		})
	}
}

// checkAscending checks that the encodings of vs, which are in strictly
// ascending order, are in strictly ascending byte order.
func checkAscending[T any](t *testing.T, c codec.Codec[T], vs ...T) {
	t.Helper()
	var prev []byte
	for i, v := range vs {
		enc, err := c.Append(nil, v)
		require.NoError(t, err)
		if i > 0 {
			require.Equalf(t, -1, bytes.Compare(prev, enc), "encoding of %v (%x) does not sort before %v (%x)", vs[i-1], prev, v, enc)
		}
		prev = enc
	}
}

func TestOrder(t *testing.T) {
	t.Run("String", func(t *testing.T) {
		checkAscending(t, codec.String(), "", "\x00", "A", "a", "a\x00", "ab", "b", "é", "\xff")
	})
	t.Run("Bytes", func(t *testing.T) {
		checkAscending(t, codec.Bytes(), []byte{}, []byte{0}, []byte{0, 0}, []byte{1}, []byte{0xff})
	})
	t.Run("Int64", func(t *testing.T) {
		checkAscending(t, codec.Int64(), math.MinInt64, -1<<32, -256, -255, -1, 0, 1, 255, 256, 1<<32, math.MaxInt64)
	})
	t.Run("Uint64", func(t *testing.T) {
		checkAscending(t, codec.Uint64(), 0, 1, 255, 256, 1<<32, 1<<63, math.MaxUint64)
	})
	t.Run("Float64", func(t *testing.T) {
		checkAscending(t, codec.Float64(),
			math.Float64frombits(0xfff8000000000001), // negative NaN
			math.Inf(-1), -math.MaxFloat64, -1e10, -1.5, -1, -math.SmallestNonzeroFloat64,
			math.Copysign(0, -1), 0,
			math.SmallestNonzeroFloat64, 1, 1.5, 1e10, math.MaxFloat64, math.Inf(1),
			math.NaN())
	})
	t.Run("Bool", func(t *testing.T) {
		checkAscending(t, codec.Bool(), false, true)
	})
}

func TestDecodeErrors(t *testing.T) {
	decode := func(f func([]byte) error) func([]byte) error { return f }
	int64Dec := decode(func(b []byte) error { _, err := codec.Int64().Decode(b); return err })
	uint64Dec := decode(func(b []byte) error { _, err := codec.Uint64().Decode(b); return err })
	float64Dec := decode(func(b []byte) error { _, err := codec.Float64().Decode(b); return err })
	boolDec := decode(func(b []byte) error { _, err := codec.Bool().Decode(b); return err })
	jsonDec := decode(func(b []byte) error { _, err := codec.JSON[event]().Decode(b); return err })
	msgpackDec := decode(func(b []byte) error { _, err := codec.Msgpack[event]().Decode(b); return err })
	msgpackIntDec := decode(func(b []byte) error { _, err := codec.Msgpack[int64]().Decode(b); return err })

	validEvent, err := codec.Msgpack[event]().Append(nil, event{User: "ann"})
	require.NoError(t, err)
	aString, err := codec.Msgpack[string]().Append(nil, "not a struct")
	require.NoError(t, err)

	for _, tc := range []struct {
		name   string
		decode func([]byte) error
		in     []byte
		want   string
	}{
		{"int64 nil", int64Dec, nil, "codec: invalid encoding: int64 needs 8 bytes, got 0"},
		{"int64 short", int64Dec, []byte{1, 2, 3}, "codec: invalid encoding: int64 needs 8 bytes, got 3"},
		{"int64 long", int64Dec, make([]byte, 9), "codec: invalid encoding: int64 needs 8 bytes, got 9"},
		{"uint64 short", uint64Dec, make([]byte, 7), "codec: invalid encoding: uint64 needs 8 bytes, got 7"},
		{"float64 empty", float64Dec, []byte{}, "codec: invalid encoding: float64 needs 8 bytes, got 0"},
		{"bool empty", boolDec, nil, "codec: invalid encoding: bool needs 1 bytes, got 0"},
		{"bool long", boolDec, []byte{0, 0}, "codec: invalid encoding: bool needs 1 bytes, got 2"},
		{"bool bad byte", boolDec, []byte{2}, "codec: invalid encoding: bool needs byte 0x00 or 0x01, got 0x02"},
		{"json empty", jsonDec, nil, "codec: invalid encoding: json: unexpected end of JSON input"},
		{"json truncated", jsonDec, []byte(`{"user":"a`), "codec: invalid encoding: json: unexpected end of JSON input"},
		{"json trailing", jsonDec, []byte(`{} x`), "codec: invalid encoding: json: invalid character 'x' after top-level value"},
		{"json wrong type", jsonDec, []byte(`{"millis":"soon"}`), "codec: invalid encoding: json: json: cannot unmarshal string into Go struct field event.millis of type int64"},
		{"msgpack empty", msgpackDec, nil, "codec: invalid encoding: msgpack: unexpected EOF at offset 0"},
		{"msgpack truncated", msgpackDec, validEvent[:len(validEvent)-3], "codec: invalid encoding: msgpack: fixstr at offset 43 needs 5 bytes, only 3 left"},
		{"msgpack truncated in map", msgpackDec, validEvent[:1], "codec: invalid encoding: msgpack: unexpected EOF at offset 1"},
		{"msgpack truncated length", msgpackDec, []byte{0xdb, 0, 1}, "codec: invalid encoding: msgpack: bin32/str32 at offset 0 has a truncated length: unexpected EOF"},
		{"msgpack huge bin32", msgpackDec, []byte{0x81, 0xa7, 'p', 'a', 'y', 'l', 'o', 'a', 'd', 0xc6, 0xff, 0xff, 0xff, 0xff},
			"codec: invalid encoding: msgpack: bin32/str32 at offset 9 needs 4294967295 bytes, only 0 left"},
		{"msgpack huge array32", msgpackDec, []byte{0x81, 0xa4, 't', 'a', 'g', 's', 0xdd, 0, 0, 0, 3, 0xa0, 0xa0},
			"codec: invalid encoding: msgpack: array32 at offset 6 claims 3 entries, only 2 bytes left"},
		{"msgpack huge map16", msgpackDec, []byte{0xde, 0, 2, 0xa0, 0xa0, 0xa0},
			"codec: invalid encoding: msgpack: map16 at offset 0 claims 2 entries, only 3 bytes left"},
		{"msgpack short ext8", msgpackDec, []byte{0xc7, 4, 1, 0, 0}, "codec: invalid encoding: msgpack: ext at offset 0 needs 5 bytes, only 3 left"},
		{"msgpack short fixext4", msgpackDec, []byte{0xd6, 1, 0}, "codec: invalid encoding: msgpack: fixext at offset 0 needs 5 bytes, only 2 left"},
		{"msgpack short float64", msgpackDec, []byte{0xcb, 0}, "codec: invalid encoding: msgpack: 64-bit number at offset 0 needs 8 bytes, only 1 left"},
		{"msgpack too deep", msgpackDec, append(bytes.Repeat([]byte{0x91}, 10001), 0xc0),
			"codec: invalid encoding: msgpack: nesting deeper than 10000 at offset 10000"},
		{"msgpack trailing", msgpackDec, append(slices.Clip(validEvent), 0xc0, 0xc0), "codec: invalid encoding: msgpack: 2 trailing bytes after the value"},
		{"msgpack wrong type", msgpackDec, aString, "codec: invalid encoding: msgpack: unexpected code=ac decoding map length"},
		{"msgpack int from string", msgpackIntDec, aString, "codec: invalid encoding: msgpack: invalid code=ac decoding int64"},
		{"msgpack reserved code", msgpackIntDec, []byte{0xc1}, "codec: invalid encoding: msgpack: reserved code 0xc1 at offset 0"},
		{"msgpack trailing after int", msgpackIntDec, []byte{1, 2}, "codec: invalid encoding: msgpack: 1 trailing bytes after the value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.decode(tc.in)
			require.ErrorIs(t, err, codec.ErrInvalid)
			require.EqualError(t, err, tc.want)
		})
	}
}

// TestMsgpackDecodeBoundedByInput checks that length headers cannot make
// the decoder allocate more than the input justifies.
func TestMsgpackDecodeBoundedByInput(t *testing.T) {
	for _, in := range [][]byte{
		{0xc6, 0xff, 0xff, 0xff, 0xff},                          // bin32 of 4 GiB
		{0xdb, 0xff, 0xff, 0xff, 0xff},                          // str32 of 4 GiB
		{0xdd, 0xff, 0xff, 0xff, 0xff},                          // array32 of 4G elements
		{0xdf, 0xff, 0xff, 0xff, 0xff},                          // map32 of 4G entries
		{0x81, 0xa5, 'a', 't', 't', 'r', 's', 0xde, 0xff, 0xff}, // map16 in a field
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := codec.Msgpack[any]().Decode(in)
		runtime.ReadMemStats(&after)
		require.ErrorIs(t, err, codec.ErrInvalid)
		require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(1<<20), "decoding %x", in)
	}

	// Nesting up to the limit decodes.
	deep := append(bytes.Repeat([]byte{0x91}, 1000), 0xc0)
	v, err := codec.Msgpack[any]().Decode(deep)
	require.NoError(t, err)
	for range 1000 {
		s, ok := v.([]any)
		require.True(t, ok)
		require.Len(t, s, 1)
		v = s[0]
	}
	require.Nil(t, v)
}

func TestDecodeDoesNotRetainInput(t *testing.T) {
	t.Run("String", func(t *testing.T) {
		src := []byte("hello")
		v, err := codec.String().Decode(src)
		require.NoError(t, err)
		src[0] = 'j'
		require.Equal(t, "hello", v)
	})
	t.Run("Bytes", func(t *testing.T) {
		src := []byte("hello")
		v, err := codec.Bytes().Decode(src)
		require.NoError(t, err)
		src[0] = 'j'
		require.Equal(t, []byte("hello"), v)
	})
	t.Run("JSON", func(t *testing.T) {
		src := []byte(`{"user":"ann","payload":"AAE=","tags":["t"]}`)
		v, err := codec.JSON[event]().Decode(src)
		require.NoError(t, err)
		clear(src)
		require.Equal(t, event{User: "ann", Payload: []byte{0, 1}, Tags: []string{"t"}}, v)
	})
	t.Run("Msgpack", func(t *testing.T) {
		want := event{User: "ann", Payload: []byte("payload"), Tags: []string{"t"}, Attrs: map[string]string{"k": "v"}}
		src, err := codec.Msgpack[event]().Append(nil, want)
		require.NoError(t, err)
		v, err := codec.Msgpack[event]().Decode(src)
		require.NoError(t, err)
		clear(src)
		require.Equal(t, want, v)
	})
}

func TestEncodeErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		append func(dst []byte) ([]byte, error)
		want   string
	}{
		{"json channel", func(dst []byte) ([]byte, error) { return codec.JSON[any]().Append(dst, make(chan int)) },
			"codec: json encode chan int: json: unsupported type: chan int"},
		{"json NaN", func(dst []byte) ([]byte, error) { return codec.JSON[float64]().Append(dst, math.NaN()) },
			"codec: json encode float64: json: unsupported value: NaN"},
		{"msgpack channel", func(dst []byte) ([]byte, error) { return codec.Msgpack[any]().Append(dst, make(chan int)) },
			"codec: msgpack encode chan int: msgpack: Encode(unsupported chan int)"},
		{"msgpack func in struct", func(dst []byte) ([]byte, error) {
			type withFunc struct {
				A string
				F func()
			}
			return codec.Msgpack[withFunc]().Append(dst, withFunc{A: "a", F: func() {}})
		}, "codec: msgpack encode codec_test.withFunc: msgpack: Encode(unsupported func())"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := make([]byte, 3, 64)
			copy(dst, "abc")
			out, err := tc.append(dst)
			require.EqualError(t, err, tc.want)
			require.Equal(t, []byte("abc"), out, "dst must come back with its length unchanged")
		})
	}
}

func TestAppendAllocs(t *testing.T) {
	buf := make([]byte, 0, 64)
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"String.Append", func() { buf, _ = codec.String().Append(buf[:0], "a string of some length") }},
		{"Bytes.Append", func() { buf, _ = codec.Bytes().Append(buf[:0], []byte("some bytes")) }},
		{"Int64.Append", func() { buf, _ = codec.Int64().Append(buf[:0], -42) }},
		{"Uint64.Append", func() { buf, _ = codec.Uint64().Append(buf[:0], 42) }},
		{"Float64.Append", func() { buf, _ = codec.Float64().Append(buf[:0], -4.2) }},
		{"Bool.Append", func() { buf, _ = codec.Bool().Append(buf[:0], true) }},
		{"Int64.Decode", func() { _, _ = codec.Int64().Decode([]byte{1, 2, 3, 4, 5, 6, 7, 8}) }},
		{"Uint64.Decode", func() { _, _ = codec.Uint64().Decode([]byte{1, 2, 3, 4, 5, 6, 7, 8}) }},
		{"Float64.Decode", func() { _, _ = codec.Float64().Decode([]byte{1, 2, 3, 4, 5, 6, 7, 8}) }},
		{"Bool.Decode", func() { _, _ = codec.Bool().Decode([]byte{1}) }},
		{"String.Append empty nil dst", func() { _, _ = codec.String().Append(nil, "") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Zero(t, testing.AllocsPerRun(100, tc.f))
		})
	}
}

// TestConcurrentPooledCodecs shares the pooled encoders and decoders of
// Msgpack and JSON between goroutines; run it with -race.
func TestConcurrentPooledCodecs(t *testing.T) {
	for name, c := range map[string]codec.Codec[event]{"Msgpack": codec.Msgpack[event](), "JSON": codec.JSON[event]()} {
		t.Run(name, func(t *testing.T) {
			const workers, rounds = 4, 500
			errs := make(chan error, workers)
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					var buf []byte
					for i := range rounds {
						want := event{User: fmt.Sprint("user-", w), Millis: int64(i), Tags: []string{fmt.Sprint(i)}}
						var err error
						buf, err = c.Append(buf[:0], want)
						if err != nil {
							errs <- err
							return
						}
						got, err := c.Decode(buf)
						if err != nil {
							errs <- err
							return
						}
						if got.User != want.User || got.Millis != want.Millis || !slices.Equal(got.Tags, want.Tags) {
							errs <- fmt.Errorf("worker %d round %d: got %+v, want %+v", w, i, got, want)
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
		})
	}
}

func TestDecodeError(t *testing.T) {
	_, cause := codec.Int64().Decode([]byte{1})
	err := error(&codec.DecodeError{Topic: "clicks", Partition: 3, Offset: 42, Part: "key", Err: cause})
	require.EqualError(t, err, `decode key of record at topic "clicks" partition 3 offset 42: codec: invalid encoding: int64 needs 8 bytes, got 1`)
	require.ErrorIs(t, err, codec.ErrInvalid)
	var de *codec.DecodeError
	require.ErrorAs(t, fmt.Errorf("task 0_3: %w", err), &de)
	require.Equal(t, int64(42), de.Offset)
	// Without a topic an outer error names the record: this one does not.
	err = &codec.DecodeError{Part: "value", Err: cause}
	require.EqualError(t, err, `decode value: codec: invalid encoding: int64 needs 8 bytes, got 1`)
}

func TestEncodeError(t *testing.T) {
	_, cause := codec.JSON[any]().Append(nil, func() {})
	require.Error(t, cause)
	err := error(&codec.EncodeError{Topic: "out", Part: "value", Err: cause})
	require.EqualError(t, err, `encode value for topic "out": codec: json encode func(): json: unsupported type: func()`)
	require.Same(t, cause, errors.Unwrap(err))
}

// TestDecodeOwned checks that Bytes and String take over a buffer handed
// to DecodeOwned instead of copying it, with Decode's nil and empty rules.
func TestDecodeOwned(t *testing.T) {
	src := []byte("handed over")
	b, err := codec.Bytes().(codec.OwningDecoder[[]byte]).DecodeOwned(src)
	require.NoError(t, err)
	require.Equal(t, src, b)
	require.Same(t, &src[0], &b[0], "no copy")
	b, err = codec.Bytes().(codec.OwningDecoder[[]byte]).DecodeOwned(nil)
	require.NoError(t, err)
	require.Nil(t, b)
	b, err = codec.Bytes().(codec.OwningDecoder[[]byte]).DecodeOwned([]byte{})
	require.NoError(t, err)
	require.NotNil(t, b)

	s, err := codec.String().(codec.OwningDecoder[string]).DecodeOwned(src)
	require.NoError(t, err)
	require.Equal(t, "handed over", s)
	require.Same(t, &src[0], unsafe.StringData(s), "no copy")
	s, err = codec.String().(codec.OwningDecoder[string]).DecodeOwned(nil)
	require.NoError(t, err)
	require.Equal(t, "", s)
}
