package codec

import (
	"bytes"
	"encoding/binary"
	"math"
	"reflect"
	"strings"
	"sync"
	"unsafe"

	"github.com/vmihailenco/msgpack/v5"
)

// A structPlan encodes and decodes one struct type the way the msgpack
// library does by reflection, without reflection per value: the struct's
// fields, their encoded names and their offsets are worked out once per
// type (planFor), and Append and Decode then read and write the fields
// through their offsets.
//
// Only structs of plain data have a plan: every field msgpack encodes is
// exported or embedded, of a predeclared boolean, integer, float or
// string type, a struct with a plan, a slice of those (not []byte), or an
// embedded struct with a plan (whose fields msgpack inlines), tagged with
// at most a name and omitempty (see buildPlan). A type's plan is checked against the
// library when it is made; a type that fails the check, or has no plan, is
// encoded by the library.
type structPlan struct {
	fields    []planField
	omitEmpty bool // some field is omitted when zero
}

type planField struct {
	name      string
	key       []byte // name, encoded as a MessagePack string
	off       uintptr
	typ       reflect.Type
	kind      reflect.Kind
	omitEmpty bool
	// Slices: the elements' kind and size, and their plan when they are
	// structs.
	elemKind reflect.Kind
	elemSize uintptr
	elem     *structPlan
}

// plans caches planFor's answers: reflect.Type -> *structPlan, nil for a
// type without one.
var plans sync.Map

// planFor returns t's plan, or nil when t has none.
func planFor(t reflect.Type) *structPlan {
	if t.Kind() != reflect.Struct {
		return nil
	}
	if p, ok := plans.Load(t); ok {
		return p.(*structPlan)
	}
	return planOf(t, map[reflect.Type]bool{})
}

// planOf is planFor for a type met while building the plans of the types
// in building, which contain it: a type that contains itself (a cycle
// through building) has no plan.
func planOf(t reflect.Type, building map[reflect.Type]bool) *structPlan {
	if t.Kind() != reflect.Struct || building[t] {
		return nil
	}
	if p, ok := plans.Load(t); ok {
		return p.(*structPlan)
	}
	building[t] = true
	p := buildPlan(t, building)
	delete(building, t)
	if p != nil && !p.agrees(t) {
		p = nil
	}
	plans.Store(t, p)
	return p
}

var (
	customEncoderType   = reflect.TypeFor[msgpack.CustomEncoder]()
	customDecoderType   = reflect.TypeFor[msgpack.CustomDecoder]()
	marshalerType       = reflect.TypeFor[msgpack.Marshaler]()
	unmarshalerType     = reflect.TypeFor[msgpack.Unmarshaler]()
	binaryMarshalerType = reflect.TypeFor[interface{ MarshalBinary() ([]byte, error) }]()
	binaryUnmarshalType = reflect.TypeFor[interface{ UnmarshalBinary([]byte) error }]()
	textMarshalerType   = reflect.TypeFor[interface{ MarshalText() ([]byte, error) }]()
	textUnmarshalerType = reflect.TypeFor[interface{ UnmarshalText([]byte) error }]()
)

// isScalar reports whether t is a predeclared type of a kind a plan
// encodes itself. A named type may have an encoder of its own
// (msgpack.Register, or one of the interfaces above), so only predeclared
// types qualify.
func isScalar(t reflect.Type) bool {
	if t.PkgPath() != "" || t.Name() == "" {
		return false
	}
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64, reflect.String:
		return true
	}
	return false
}

// buildPlan returns the plan of struct type t, or nil when the msgpack
// library would encode t otherwise than as a map of the fields a plan
// handles.
func buildPlan(t reflect.Type, building map[reflect.Type]bool) *structPlan {
	for _, it := range []reflect.Type{customEncoderType, customDecoderType, marshalerType, unmarshalerType,
		binaryMarshalerType, binaryUnmarshalType, textMarshalerType, textUnmarshalerType} {
		if t.Implements(it) || reflect.PointerTo(t).Implements(it) {
			return nil
		}
	}
	p := new(structPlan)
	names := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Name == "_msgpack" {
			return nil // struct options: as_array, omitempty for all
		}
		tag, ok := f.Tag.Lookup("msgpack")
		if !ok || tag == "" {
			tag = f.Tag.Get("json")
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if f.Anonymous {
			// msgpack inlines an embedded struct's fields when none is
			// named like a field before it.
			sub := planOf(f.Type, building)
			if tag != "" || sub == nil {
				return nil
			}
			for _, sf := range sub.fields {
				if names[sf.name] {
					return nil
				}
				names[sf.name] = true
				sf.off += f.Offset
				p.fields = append(p.fields, sf)
				p.omitEmpty = p.omitEmpty || sf.omitEmpty
			}
			// msgpack also decodes a key named like the embedded type
			// into it.
			if names[f.Name] {
				return nil
			}
			names[f.Name] = true
			continue
		}
		if !f.IsExported() {
			continue
		}
		omit := false
		switch opts {
		case "":
		case "omitempty":
			omit = true
		default:
			return nil // intern, alias, inline, ... : the library's business
		}
		if strings.ContainsAny(name, "\"'\\ ") {
			return nil // the library's tag parser unquotes
		}
		if name == "" {
			name = f.Name
		}
		if names[name] {
			return nil
		}
		names[name] = true
		pf := planField{name: name, key: appendStrHeader(nil, name, len(name)),
			off: f.Offset, typ: f.Type, kind: f.Type.Kind(), omitEmpty: omit}
		switch {
		case isScalar(f.Type):
		case f.Type.Kind() == reflect.Struct && !omit:
			if pf.elem = planOf(f.Type, building); pf.elem == nil {
				return nil
			}
		case f.Type.Kind() == reflect.Slice && f.Type.Name() == "":
			et := f.Type.Elem()
			pf.elemKind, pf.elemSize = et.Kind(), et.Size()
			switch {
			case isScalar(et) && et.Kind() != reflect.Uint8: // []byte is binary
			case et.Kind() == reflect.Struct:
				if pf.elem = planOf(et, building); pf.elem == nil {
					return nil
				}
			default:
				return nil
			}
		default:
			return nil
		}
		p.fields = append(p.fields, pf)
		p.omitEmpty = p.omitEmpty || omit
	}
	return p
}

// agrees checks p against the library on two values of t, the zero value
// and one with every field set (slices of one element): both must encode
// to the same bytes, and the plan must decode the library's encoding to
// the value encoded.
func (p *structPlan) agrees(t reflect.Type) bool {
	filled := reflect.New(t)
	for i, f := range p.fields {
		v := reflect.NewAt(f.typ, unsafe.Add(filled.UnsafePointer(), f.off)).Elem()
		if f.kind == reflect.Slice {
			v.Set(reflect.MakeSlice(f.typ, 1, 1))
			v = v.Index(0) // a struct element stays zero
		}
		switch v.Kind() {
		case reflect.Bool:
			v.SetBool(true)
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			v.SetInt(-40 - int64(i))
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			v.SetUint(200 + uint64(i))
		case reflect.Float32, reflect.Float64:
			v.SetFloat(1.5 + float64(i))
		case reflect.String:
			v.SetString(strings.Repeat("s", i+1))
		}
	}
	for _, v := range []reflect.Value{reflect.New(t), filled} {
		e := msgpackEncoders.Get().(*msgpackEncoder)
		e.w.b = nil
		err := e.enc.Encode(v.Interface())
		want := e.w.b
		e.w.b = nil
		if err != nil {
			return false
		}
		msgpackEncoders.Put(e)
		if !bytes.Equal(p.append(nil, v.UnsafePointer()), want) {
			return false
		}
		got := reflect.New(t)
		if !p.decode(want, got.UnsafePointer()) || !reflect.DeepEqual(got.Elem().Interface(), v.Elem().Interface()) {
			return false
		}
	}
	return true
}

// isZero reports whether the field of kind k at fp is its zero value.
func isZero(k reflect.Kind, fp unsafe.Pointer) bool {
	switch k {
	case reflect.Bool:
		return !*(*bool)(fp)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return loadInt(k, fp) == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return loadUint(k, fp) == 0
	case reflect.Float32:
		return *(*float32)(fp) == 0
	case reflect.Float64:
		return *(*float64)(fp) == 0
	case reflect.Slice:
		return len(*(*[]byte)(fp)) == 0 // any slice header's length
	}
	return len(*(*string)(fp)) == 0
}

func loadInt(k reflect.Kind, fp unsafe.Pointer) int64 {
	switch k {
	case reflect.Int:
		return int64(*(*int)(fp))
	case reflect.Int8:
		return int64(*(*int8)(fp))
	case reflect.Int16:
		return int64(*(*int16)(fp))
	case reflect.Int32:
		return int64(*(*int32)(fp))
	}
	return *(*int64)(fp)
}

func loadUint(k reflect.Kind, fp unsafe.Pointer) uint64 {
	switch k {
	case reflect.Uint:
		return uint64(*(*uint)(fp))
	case reflect.Uint8:
		return uint64(*(*uint8)(fp))
	case reflect.Uint16:
		return uint64(*(*uint16)(fp))
	case reflect.Uint32:
		return uint64(*(*uint32)(fp))
	}
	return *(*uint64)(fp)
}

// append appends the encoding of the struct at base, as the library
// writes it with the options of the pooled encoders: a map of the fields
// in declaration order, integers in their smallest form.
func (p *structPlan) append(dst []byte, base unsafe.Pointer) []byte {
	n := len(p.fields)
	if p.omitEmpty {
		for _, f := range p.fields {
			if f.omitEmpty && isZero(f.kind, unsafe.Add(base, f.off)) {
				n--
			}
		}
	}
	switch {
	case n < 16:
		dst = append(dst, 0x80|byte(n))
	case n <= math.MaxUint16:
		dst = binary.BigEndian.AppendUint16(append(dst, 0xde), uint16(n))
	default:
		dst = binary.BigEndian.AppendUint32(append(dst, 0xdf), uint32(n))
	}
	for i := range p.fields {
		f := &p.fields[i]
		fp := unsafe.Add(base, f.off)
		if f.omitEmpty && isZero(f.kind, fp) {
			continue
		}
		dst = append(dst, f.key...)
		switch f.kind {
		case reflect.Struct:
			dst = f.elem.append(dst, fp)
			continue
		case reflect.Slice:
		default:
			dst = appendScalar(dst, f.kind, fp)
			continue
		}
		data, l := *(*unsafe.Pointer)(fp), len(*(*[]byte)(fp))
		switch {
		case data == nil:
			dst = append(dst, 0xc0)
			continue
		case l < 16:
			dst = append(dst, 0x90|byte(l))
		case l <= math.MaxUint16:
			dst = binary.BigEndian.AppendUint16(append(dst, 0xdc), uint16(l))
		default:
			dst = binary.BigEndian.AppendUint32(append(dst, 0xdd), uint32(l))
		}
		for j := range l {
			ep := unsafe.Add(data, uintptr(j)*f.elemSize)
			if f.elem != nil {
				dst = f.elem.append(dst, ep)
			} else {
				dst = appendScalar(dst, f.elemKind, ep)
			}
		}
	}
	return dst
}

// appendScalar appends the value of kind k at fp.
func appendScalar(dst []byte, k reflect.Kind, fp unsafe.Pointer) []byte {
	switch k {
	case reflect.Bool:
		if *(*bool)(fp) {
			return append(dst, 0xc3)
		}
		return append(dst, 0xc2)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return appendMsgpackInt(dst, loadInt(k, fp))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return appendMsgpackUint(dst, loadUint(k, fp))
	case reflect.Float32:
		return binary.BigEndian.AppendUint32(append(dst, 0xca), math.Float32bits(*(*float32)(fp)))
	case reflect.Float64:
		return binary.BigEndian.AppendUint64(append(dst, 0xcb), math.Float64bits(*(*float64)(fp)))
	}
	s := *(*string)(fp)
	return append(appendStrHeader(dst, "", len(s)), s...)
}

// appendStrHeader appends the header of a MessagePack string of n bytes,
// then s.
func appendStrHeader(dst []byte, s string, n int) []byte {
	switch {
	case n < 32:
		dst = append(dst, 0xa0|byte(n))
	case n <= math.MaxUint8:
		dst = append(dst, 0xd9, byte(n))
	case n <= math.MaxUint16:
		dst = binary.BigEndian.AppendUint16(append(dst, 0xda), uint16(n))
	default:
		dst = binary.BigEndian.AppendUint32(append(dst, 0xdb), uint32(n))
	}
	return append(dst, s...)
}

// appendMsgpackUint appends n as the library's EncodeUint does.
func appendMsgpackUint(dst []byte, n uint64) []byte {
	switch {
	case n <= math.MaxInt8:
		return append(dst, byte(n))
	case n <= math.MaxUint8:
		return append(dst, 0xcc, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, 0xcd), uint16(n))
	case n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(dst, 0xce), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(dst, 0xcf), n)
}

// appendMsgpackInt appends n as the library's EncodeInt does.
func appendMsgpackInt(dst []byte, n int64) []byte {
	switch {
	case n >= 0:
		return appendMsgpackUint(dst, uint64(n))
	case n >= -32:
		return append(dst, byte(n))
	case n >= math.MinInt8:
		return append(dst, 0xd0, byte(n))
	case n >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(dst, 0xd1), uint16(n))
	case n >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(dst, 0xd2), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(dst, 0xd3), uint64(n))
}

// planReader reads src for decode; a read past the end sets bad.
type planReader struct {
	src []byte
	off int
	bad bool
	all string // one copy of src, made for the first string, for them all
}

func (r *planReader) byte() byte {
	if r.off >= len(r.src) {
		r.bad = true
		return 0
	}
	c := r.src[r.off]
	r.off++
	return c
}

// uint reads a big-endian unsigned integer of n bytes.
func (r *planReader) uint(n int) uint64 {
	if len(r.src)-r.off < n {
		r.bad = true
		return 0
	}
	var v uint64
	for _, c := range r.src[r.off : r.off+n] {
		v = v<<8 | uint64(c)
	}
	r.off += n
	return v
}

// integer reads any MessagePack integer (or nil, as 0) as the library's
// DecodeInt64 and DecodeUint64 do: the 64 bits, sign-extended from
// signed encodings. ok is false for any other code.
func (r *planReader) integer() (v uint64, ok bool) {
	c := r.byte()
	switch {
	case c <= 0x7f || c >= 0xe0:
		return uint64(int64(int8(c))), true
	case c == 0xc0:
		return 0, true
	case c == 0xcc:
		return r.uint(1), true
	case c == 0xcd:
		return r.uint(2), true
	case c == 0xce:
		return r.uint(4), true
	case c == 0xcf, c == 0xd3:
		return r.uint(8), true
	case c == 0xd0:
		return uint64(int64(int8(r.uint(1)))), true
	case c == 0xd1:
		return uint64(int64(int16(r.uint(2)))), true
	case c == 0xd2:
		return uint64(int64(int32(r.uint(4)))), true
	}
	return 0, false
}

// float reads a float, or an integer or nil converted, into the field
// of kind k (Float32 or Float64) at fp, as the library's DecodeFloat32 and
// DecodeFloat64 do (a float32 field does not take a 64-bit float). ok is
// false for any other code.
func (r *planReader) float(k reflect.Kind, fp unsafe.Pointer) (ok bool) {
	if r.off >= len(r.src) {
		return false
	}
	switch c := r.src[r.off]; {
	case c == 0xca:
		r.off++
		f := math.Float32frombits(uint32(r.uint(4)))
		if k == reflect.Float32 {
			*(*float32)(fp) = f
		} else {
			*(*float64)(fp) = float64(f)
		}
		return true
	case c == 0xcb:
		if k == reflect.Float32 {
			return false
		}
		r.off++
		*(*float64)(fp) = math.Float64frombits(r.uint(8))
		return true
	}
	v, ok := r.integer()
	if k == reflect.Float32 {
		*(*float32)(fp) = float32(int64(v))
	} else {
		*(*float64)(fp) = float64(int64(v))
	}
	return ok
}

// strLen reads the header of a string or binary value (nil as -1), as
// the library's string decoding accepts them. ok is false for any other
// code.
func (r *planReader) strLen() (n int, ok bool) {
	c := r.byte()
	switch {
	case c >= 0xa0 && c <= 0xbf:
		return int(c & 0x1f), true
	case c == 0xc0:
		return -1, true
	case c == 0xd9 || c == 0xc4:
		return int(r.uint(1)), true
	case c == 0xda || c == 0xc5:
		return int(r.uint(2)), true
	case c == 0xdb || c == 0xc6:
		return int(r.uint(4)), true
	}
	return 0, false
}

// decode decodes src into the zeroed struct at base. It reports false,
// leaving the struct partly written, for input that is not a map of known
// field names to values of the fields' kinds (an array-encoded struct, an
// unknown field, a value of another type, malformed input): the library
// decides what those mean.
func (p *structPlan) decode(src []byte, base unsafe.Pointer) bool {
	r := planReader{src: src}
	return p.decodeFrom(&r, base) && r.off == len(src)
}

// decodeFrom decodes the map at r's offset into the zeroed struct at
// base, as decode does.
func (p *structPlan) decodeFrom(r *planReader, base unsafe.Pointer) bool {
	var n int
	switch c := r.byte(); {
	case c >= 0x80 && c <= 0x8f:
		n = int(c & 0x0f)
	case c == 0xde:
		n = int(r.uint(2))
	case c == 0xdf:
		n = int(r.uint(4))
	default:
		return false
	}
	next := 0 // the field expected next: fields come in declaration order
	for range n {
		kl, ok := r.strLen()
		if !ok || r.bad || kl < 0 || len(r.src)-r.off < kl {
			return false
		}
		key := r.src[r.off : r.off+kl]
		r.off += kl
		f := p.field(key, next)
		if f < 0 {
			return false
		}
		next = f + 1
		pf := &p.fields[f]
		fp := unsafe.Add(base, pf.off)
		switch pf.kind {
		case reflect.Struct:
			if !pf.elem.decodeFrom(r, fp) {
				return false
			}
			continue
		case reflect.Slice:
		default:
			if !r.scalar(pf.kind, fp) {
				return false
			}
			continue
		}
		var l int
		switch c := r.byte(); {
		case c == 0xc0:
			*(*[]byte)(fp) = nil // any slice header
			continue
		case c >= 0x90 && c <= 0x9f:
			l = int(c & 0x0f)
		case c == 0xdc:
			l = int(r.uint(2))
		case c == 0xdd:
			l = int(r.uint(4))
		default:
			return false
		}
		if r.bad || l > len(r.src)-r.off { // every element takes a byte
			return false
		}
		s := reflect.MakeSlice(pf.typ, l, l)
		data := s.UnsafePointer()
		// Any slice header: data, length and capacity.
		*(*[]byte)(fp) = unsafe.Slice((*byte)(data), l)
		for j := range l {
			ep := unsafe.Add(data, uintptr(j)*pf.elemSize)
			if pf.elem != nil {
				if !pf.elem.decodeFrom(r, ep) {
					return false
				}
			} else if !r.scalar(pf.elemKind, ep) {
				return false
			}
		}
	}
	return !r.bad
}

// scalar reads a value into the field of kind k (not a slice) at fp,
// accepting what the library accepts for it. ok is false for any other
// code or a read past the end.
func (r *planReader) scalar(k reflect.Kind, fp unsafe.Pointer) (ok bool) {
	switch k {
	case reflect.Bool:
		switch r.byte() {
		case 0xc0, 0xc2:
			*(*bool)(fp) = false
		case 0xc3:
			*(*bool)(fp) = true
		default:
			return false
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v, ok := r.integer()
		if !ok {
			return false
		}
		storeInt(k, fp, v)
	case reflect.Float32, reflect.Float64:
		if !r.float(k, fp) {
			return false
		}
	case reflect.String:
		l, ok := r.strLen()
		if !ok || r.bad || len(r.src)-r.off < l {
			return false
		}
		if l > 0 {
			if r.all == "" {
				r.all = string(r.src)
			}
			*(*string)(fp) = r.all[r.off : r.off+l]
			r.off += l
		} else {
			*(*string)(fp) = ""
		}
	}
	return !r.bad
}

// field returns the index of the field named key, trying hint first, or
// -1.
func (p *structPlan) field(key []byte, hint int) int {
	if hint < len(p.fields) && p.fields[hint].name == string(key) {
		return hint
	}
	for i := range p.fields {
		if p.fields[i].name == string(key) {
			return i
		}
	}
	return -1
}

// storeInt stores v into the integer field of kind k at fp, truncated to
// its size as reflect's SetInt and SetUint do.
func storeInt(k reflect.Kind, fp unsafe.Pointer, v uint64) {
	switch k {
	case reflect.Int:
		*(*int)(fp) = int(v)
	case reflect.Int8:
		*(*int8)(fp) = int8(v)
	case reflect.Int16:
		*(*int16)(fp) = int16(v)
	case reflect.Int32:
		*(*int32)(fp) = int32(v)
	case reflect.Int64:
		*(*int64)(fp) = int64(v)
	case reflect.Uint:
		*(*uint)(fp) = uint(v)
	case reflect.Uint8:
		*(*uint8)(fp) = uint8(v)
	case reflect.Uint16:
		*(*uint16)(fp) = uint16(v)
	case reflect.Uint32:
		*(*uint32)(fp) = uint32(v)
	case reflect.Uint64:
		*(*uint64)(fp) = v
	}
}
