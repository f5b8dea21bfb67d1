package codec

// For returns the codec chosen by type for T, the one the DSL packages use
// where a step makes values of a new type and no codec is given:
//
//   - string: [String]
//   - []byte: [Bytes]
//   - int64: [Int64]
//   - uint64: [Uint64]
//   - float64: [Float64]
//   - bool: [Bool]
//   - any other type: [Msgpack][T]
//
// The choice is by exact type: a defined type such as time.Duration
// (int64) or a string-based enum, and int, int32 or float32, get
// [Msgpack]; give such a type its codec explicitly where it matters.
//
// The first six are order-preserving, so range scans over keys of those
// types return them in value order; [Msgpack] is not, so a store keyed by
// a struct scans in the order of its encodings. As for the codecs
// themselves, the result is safe for concurrent use and costs next to
// nothing to create.
func For[T any]() Codec[T] {
	var c any
	switch any((*T)(nil)).(type) {
	case *string:
		c = String()
	case *[]byte:
		c = Bytes()
	case *int64:
		c = Int64()
	case *uint64:
		c = Uint64()
	case *float64:
		c = Float64()
	case *bool:
		c = Bool()
	default:
		return Msgpack[T]()
	}
	return c.(Codec[T])
}
