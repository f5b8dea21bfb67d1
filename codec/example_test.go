package codec_test

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/duality-streams/duality/codec"
)

// Int64 encodings sort like the numbers, so a store sorted by bytes scans
// int64 keys in numeric order.
func ExampleInt64() {
	c := codec.Int64()
	var keys [][]byte
	for _, v := range []int64{42, -7, 0, -1000, 1 << 40} {
		k, err := c.Append(nil, v)
		if err != nil {
			panic(err)
		}
		keys = append(keys, k)
	}
	slices.SortFunc(keys, bytes.Compare)
	for _, k := range keys {
		v, err := c.Decode(k)
		if err != nil {
			panic(err)
		}
		fmt.Printf("%x %d\n", k, v)
	}
	// Output:
	// 7ffffffffffffc18 -1000
	// 7ffffffffffffff9 -7
	// 8000000000000000 0
	// 800000000000002a 42
	// 8000010000000000 1099511627776
}

// Float64 encodings sort in IEEE 754 total order: -0 before +0, and
// math.NaN() after +Inf.
func ExampleFloat64() {
	c := codec.Float64()
	var keys [][]byte
	for _, v := range []float64{math.NaN(), 2.5, math.Inf(-1), 0, -1.5, math.Copysign(0, -1), math.Inf(1)} {
		k, _ := c.Append(nil, v)
		keys = append(keys, k)
	}
	slices.SortFunc(keys, bytes.Compare)
	for _, k := range keys {
		v, _ := c.Decode(k)
		fmt.Print(v, " ")
	}
	fmt.Println()
	// Output:
	// -Inf -1.5 -0 0 2.5 +Inf NaN
}

// Append reuses the caller's buffer; Decode copies, so the buffer can be
// reused right away.
func ExampleString() {
	c := codec.String()
	var buf []byte
	var decoded []string
	for _, word := range []string{"stream", "table", "window"} {
		buf, _ = c.Append(buf[:0], word)
		s, _ := c.Decode(buf)
		decoded = append(decoded, s)
	}
	fmt.Println(decoded, cap(buf) >= len("window"))
	// Output:
	// [stream table window] true
}

// Bytes keeps nil (a tombstone's value) apart from an empty value.
func ExampleBytes() {
	c := codec.Bytes()
	fromNil, _ := c.Decode(nil)
	fromEmpty, _ := c.Decode([]byte{})
	fmt.Println(fromNil == nil, fromEmpty == nil, len(fromEmpty))
	// Output:
	// true false 0
}

// Msgpack encodes structs as maps keyed by field name, so readers and
// writers may differ by fields.
func ExampleMsgpack() {
	type PageView struct {
		User   string `json:"user"`
		URL    string `json:"url"`
		Millis int64  `json:"millis"`
	}
	// An older reader that knows fewer fields, in another order.
	type PageViewV1 struct {
		Millis int64  `json:"millis"`
		User   string `json:"user"`
	}
	b, err := codec.Msgpack[PageView]().Append(nil, PageView{User: "ann", URL: "/pricing", Millis: 1700000000000})
	if err != nil {
		panic(err)
	}
	old, err := codec.Msgpack[PageViewV1]().Decode(b)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%d bytes, %+v\n", len(b), old)
	// Output:
	// 39 bytes, {Millis:1700000000000 User:ann}
}

func ExampleJSON() {
	type Click struct {
		User string   `json:"user"`
		Tags []string `json:"tags,omitempty"`
	}
	c := codec.JSON[Click]()
	b, _ := c.Append(nil, Click{User: "ann", Tags: []string{"promo"}})
	fmt.Println(string(b))
	v, _ := c.Decode([]byte(`{"user":"bob"}`))
	fmt.Printf("%+v\n", v)
	// Output:
	// {"user":"ann","tags":["promo"]}
	// {User:bob Tags:[]}
}

// Decode failures match ErrInvalid. A DecodeError says which part of a
// record failed and, when it stands alone (a test reading an output
// topic), which record; in the runtime the error wrapping it names the
// record.
func ExampleDecodeError() {
	_, err := codec.Int64().Decode([]byte("abc"))
	err = &codec.DecodeError{Topic: "clicks", Partition: 2, Offset: 17, Part: "key", Err: err}
	fmt.Println(err)
	fmt.Println(errors.Is(err, codec.ErrInvalid))
	// Output:
	// decode key of record at topic "clicks" partition 2 offset 17: codec: invalid encoding: int64 needs 8 bytes, got 3
	// true
}

// For picks a codec by type: the order-preserving scalar codecs for
// string, []byte, int64, uint64, float64 and bool, Msgpack for the rest.
func ExampleFor() {
	type Order struct {
		ID    string
		Total float64
	}
	fmt.Println(codec.For[string]().OrderPreserving(), codec.For[int64]().OrderPreserving())

	c := codec.For[Order]()
	b, err := c.Append(nil, Order{ID: "o-1", Total: 9.5})
	if err != nil {
		panic(err)
	}
	o, err := c.Decode(b)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%+v %v\n", o, c.OrderPreserving())
	// Output:
	// true true
	// {ID:o-1 Total:9.5} false
}
