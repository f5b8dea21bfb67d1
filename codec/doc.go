// Package codec turns typed keys and values into bytes and back.
//
// A [Codec] sits at every edge of a topology where typed data meets the
// log or a state store: sources decode record keys and values, sinks and
// stores encode them. Codecs are captured when the topology is built; the
// runtime, the log and the stores see only []byte.
//
// # Built-in codecs
//
//   - [String] and [Bytes]: the bytes themselves.
//   - [Int64], [Uint64], [Float64]: 8 bytes, big-endian, arranged so that
//     byte order is numeric order.
//   - [Bool]: one byte, 0x00 or 0x01.
//   - [JSON]: encoding/json, for any T it supports.
//   - [Msgpack]: MessagePack, the default for structs: compact, and
//     tolerant of fields being added or removed.
//
// Each constructor returns a value that is safe for concurrent use and
// costs next to nothing to create ([Msgpack] looks its type up in a
// cache); store it or call the constructor again.
//
// # Fast paths for structs
//
// [Msgpack] encodes most types by reflection, through the msgpack
// library. Structs of plain data (predeclared booleans, integers, floats
// and strings, structs of plain data and slices of those, see [Msgpack])
// take a direct path instead, worked out once per type: the same bytes,
// without reflection per value, and no allocation to encode. Nothing is
// asked of the struct beyond its shape, so keeping the structs that flow
// through a topology plain is the way to use it. For any other type on a
// hot path, any value implementing [Codec] plugs in where a codec is
// accepted (a source, a sink, a step's codec option): a hand-written
// Append and Decode is the fastest encoding there is, at the price of a
// format of one's own (see the Nexmark benchmark's event codec).
//
// # Codecs by type
//
// [For] returns the codec chosen by type: [String] for string, [Bytes]
// for []byte, [Int64], [Uint64], [Float64] and [Bool] for those types,
// and [Msgpack] for every other type. The DSL packages use it where a
// step makes values of a new type (a Map, an aggregation, a join) and no
// codec is given, so codecs are named only where a type enters a
// topology (a source) or where an encoding other than the default
// matters (a topic other programs read as JSON).
//
// # Order preservation
//
// A codec is order-preserving when bytes.Compare on two encodings orders
// them the way the values order. Pebble, and every store here, sorts keys
// by their bytes, so only an order-preserving key codec makes a range scan
// from a to b return the keys between a and b, in order. Window stores
// key entries by record key and window start; with an order-preserving
// time encoding ([Int64]) the windows of a key are contiguous and scan in
// time order, so fetching a time range or expiring closed windows is one
// range scan. [Codec.OrderPreserving] says which codecs can be used there;
// [String], [Bytes], [Int64], [Uint64], [Float64] and [Bool] are
// order-preserving, [JSON] and [Msgpack] are not.
//
// Order preservation is about whole encodings. A composite key made by
// appending two encodings one after the other is ordered by its first part
// only if that part has a fixed size ([Int64], [Uint64], [Float64],
// [Bool]); a variable-size [String] or [Bytes] first part needs a length
// prefix or terminator, which the composing code adds.
//
// [Float64] orders by IEEE 754 totalOrder: -0 sorts before +0, and NaNs
// sort after +Inf (sign bit clear) or before -Inf (sign bit set).
//
// # Buffers and ownership
//
// Append appends to the caller's dst and returns the extended slice, like
// the standard library's strconv.AppendInt: pass a reused buffer
// (buf[:0]) to encode without allocating. The fixed-size codecs and
// [String] and [Bytes] do not allocate when dst has room. On an encode
// error Append returns dst with its length unchanged; bytes past that
// length may have been written.
//
// Decode never retains src: the value it returns shares no memory with it,
// so callers may reuse or modify src right after. Decode never panics,
// whatever src holds: bad input gives an error matching [ErrInvalid] that
// says what was expected.
//
// # Empty input and tombstones
//
// A record with a nil value is a tombstone. The built-in codecs never turn
// a value into a nil encoding, except [Bytes] for a nil slice: Append with
// a nil dst returns a non-nil slice even when it appends nothing, so an
// empty string is never mistaken for a tombstone. Decoding nil or empty
// input:
//
//   - [String]: "" for both.
//   - [Bytes]: nil for nil, an empty non-nil slice for an empty one.
//   - [Int64], [Uint64], [Float64], [Bool], [JSON], [Msgpack]: an error
//     matching [ErrInvalid]; a tombstone has no value to decode, so the
//     runtime checks for nil before decoding.
//
// # Errors
//
// Built-in decode failures match [ErrInvalid] (errors.Is). The runtime wraps
// them in a [DecodeError] naming the part (key or value) of the record,
// inside an error that names the record once (duality.ProcessingError),
// and encode failures in an [EncodeError] naming the topic.
package codec
