package codec_test

import (
	"bytes"
	"strconv"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/duality-streams/duality/codec"
)

// Run with: go test ./codec -run='^$' -bench=. -benchmem

// Decoded values go to sinks so the compiler cannot drop the work.
var (
	sinkInt64  int64
	sinkString string
)

func BenchmarkInt64(b *testing.B) {
	c := codec.Int64()
	b.Run("Append", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 8)
		var v int64
		for b.Loop() {
			buf, _ = c.Append(buf[:0], v)
			v++
		}
	})
	b.Run("Decode", func(b *testing.B) {
		b.ReportAllocs()
		src, _ := c.Append(nil, -12345)
		for b.Loop() {
			v, err := c.Decode(src)
			if err != nil {
				b.Fatal(err)
			}
			sinkInt64 = v
		}
	})
}

func BenchmarkString(b *testing.B) {
	c := codec.String()
	for _, size := range []int{16, 100} {
		s := strings.Repeat("x", size)
		b.Run("Append/"+strconv.Itoa(size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			buf := make([]byte, 0, size)
			for b.Loop() {
				buf, _ = c.Append(buf[:0], s)
			}
		})
		b.Run("Decode/"+strconv.Itoa(size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			src := []byte(s)
			for b.Loop() {
				v, err := c.Decode(src)
				if err != nil {
					b.Fatal(err)
				}
				sinkString = v
			}
		})
	}
}

// benchEvent is a typical small event value. It has msgpack tags so that
// the msgpack package's own entry points, which ignore json tags, decode
// the same fields as the codec.
type benchEvent struct {
	User     string   `msgpack:"user" json:"user"`
	Page     string   `msgpack:"page" json:"page"`
	Referrer string   `msgpack:"referrer" json:"referrer"`
	Millis   int64    `msgpack:"millis" json:"millis"`
	Duration int32    `msgpack:"duration" json:"duration"`
	Score    float64  `msgpack:"score" json:"score"`
	Tags     []string `msgpack:"tags" json:"tags"`
}

var benchValue = benchEvent{
	User: "user-4821", Page: "/products/42", Referrer: "https://example.com/",
	Millis: 1700000000123, Duration: 350, Score: 0.75, Tags: []string{"mobile", "promo"},
}

// BenchmarkMsgpack compares the pooled codec with the msgpack package's
// own entry points: Marshal/Unmarshal, and a new Encoder/Decoder per call.
func BenchmarkMsgpack(b *testing.B) {
	c := codec.Msgpack[benchEvent]()
	src, err := c.Append(nil, benchValue)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("Append/codec", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(src)))
		buf := make([]byte, 0, 256)
		for b.Loop() {
			buf, _ = c.Append(buf[:0], benchValue)
		}
	})
	b.Run("Append/Marshal", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(src)))
		buf := make([]byte, 0, 256)
		for b.Loop() {
			out, _ := msgpack.Marshal(benchValue)
			buf = append(buf[:0], out...)
		}
	})
	b.Run("Append/NewEncoder", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(src)))
		var buf bytes.Buffer
		for b.Loop() {
			buf.Reset()
			enc := msgpack.NewEncoder(&buf)
			enc.UseCompactInts(true)
			_ = enc.Encode(benchValue)
		}
	})
	b.Run("Decode/codec", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(src)))
		for b.Loop() {
			if _, err := c.Decode(src); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Decode/Unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(src)))
		for b.Loop() {
			var v benchEvent
			if err := msgpack.Unmarshal(src, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Decode/NewDecoder", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(src)))
		for b.Loop() {
			var v benchEvent
			if err := msgpack.NewDecoder(bytes.NewReader(src)).Decode(&v); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkJSON(b *testing.B) {
	c := codec.JSON[benchEvent]()
	src, err := c.Append(nil, benchValue)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("Append", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(src)))
		buf := make([]byte, 0, 256)
		for b.Loop() {
			buf, _ = c.Append(buf[:0], benchValue)
		}
	})
	b.Run("Decode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(src)))
		for b.Loop() {
			if _, err := c.Decode(src); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchBid is a flat struct (a Nexmark bid), which Msgpack encodes and
// decodes without reflection per value.
type benchBid struct {
	Auction  int64  `json:"auction"`
	Bidder   int64  `json:"bidder"`
	Price    int64  `json:"price"`
	Channel  string `json:"channel"`
	URL      string `json:"url"`
	DateTime int64  `json:"dateTime"`
	Extra    string `json:"extra"`
}

var bidValue = benchBid{Auction: 1007, Bidder: 1042, Price: 1_234_567, Channel: "Google",
	URL: "https://www.nexmark.com/abc/def/item.htm?query=1", DateTime: 1_436_918_400_123, Extra: strings.Repeat("x", 40)}

// BenchmarkMsgpackFlat compares Msgpack on a flat struct with the msgpack
// library's reflection, configured as Msgpack configures it (the path
// Msgpack takes for other structs), on one reused encoder and decoder.
func BenchmarkMsgpackFlat(b *testing.B) {
	c := codec.Msgpack[benchBid]()
	src, err := c.Append(nil, bidValue)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("Append/codec", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(src)))
		buf := make([]byte, 0, 256)
		for b.Loop() {
			buf, _ = c.Append(buf[:0], bidValue)
		}
	})
	b.Run("Append/library", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(src)))
		var buf bytes.Buffer
		enc := msgpack.NewEncoder(&buf)
		enc.UseCompactInts(true)
		enc.SetSortMapKeys(true)
		enc.SetCustomStructTag("json")
		for b.Loop() {
			buf.Reset()
			_ = enc.Encode(bidValue)
		}
	})
	b.Run("Decode/codec", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(src)))
		for b.Loop() {
			if _, err := c.Decode(src); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Decode/library", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(src)))
		var r bytes.Reader
		dec := msgpack.NewDecoder(&r)
		dec.SetCustomStructTag("json")
		for b.Loop() {
			r.Reset(src)
			var v benchBid
			if err := dec.Decode(&v); err != nil {
				b.Fatal(err)
			}
		}
	})
}
