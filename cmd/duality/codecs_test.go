package main

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzToJSON: whatever bytes a record holds, every codec either renders
// them as valid JSON or returns an error; it never panics.
func FuzzToJSON(f *testing.F) {
	for _, seed := range [][]byte{
		{}, []byte("text"), {0xff, 0xfe}, {0x80, 0, 0, 0, 0, 0, 0, 42},
		[]byte(`{"a":[1,2]}`), []byte(`{"a":`),
		{0x81, 0x91, 0x01, 0x02}, // msgpack {[1]: 2}: an array as a key
		{0x82, 0x01, 0xc0, 0xa1, 'x', 0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 1}, // {1: nil, "x": NaN}
		{0xc6, 0xff, 0xff, 0xff, 0xff},                                    // bin32 claiming 4 GiB
		{0xdd, 0x7f, 0xff, 0xff, 0xff},                                    // array32 claiming 2^31 entries
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, name := range codecNames {
			vc, err := lookupCodec("value-codec", name)
			require.NoError(t, err)
			out, err := vc.toJSON(b)
			if err == nil {
				require.True(t, json.Valid(out), "%s: %q gave %s", name, b, out)
			}
		}
	})
}

// TestMsgpackKeys: maps with keys of any type render as JSON objects.
func TestMsgpackKeys(t *testing.T) {
	out, err := msgpackCodec.toJSON([]byte{0x82, 0x01, 0xc0, 0x91, 0x02, 0xa1, 'y'})
	require.NoError(t, err)
	require.JSONEq(t, `{"1": null, "[2]": "y"}`, string(out))
}

// TestProduceCodecsRoundTrip: what a codec encodes from JSON input it
// renders back as the same JSON.
func TestProduceCodecsRoundTrip(t *testing.T) {
	for _, c := range []struct{ codec, in string }{
		{"string", `"a\tb"`}, {"bytes", `"AP8="`}, {"int64", `-7`}, {"json", `{"x":[1,"2"]}`},
		{"msgpack", `{"big":18446744073709551615,"neg":-3,"pi":3.25,"s":["a",null,true]}`},
	} {
		vc, err := lookupCodec("value-codec", c.codec)
		require.NoError(t, err)
		b, err := vc.fromJSON(json.RawMessage(c.in))
		require.NoError(t, err, c.codec)
		out, err := vc.toJSON(b)
		require.NoError(t, err, c.codec)
		require.JSONEq(t, c.in, string(out), c.codec)
	}
}
