package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/duality-streams/duality/codec"
)

// A valueCodec turns record keys and values into JSON (consume) and
// input into record bytes (produce), the way the codec of the same name
// in package codec encodes them, so that what duality produces an app
// decodes, and the other way round.
type valueCodec struct {
	name string
	// toJSON renders a non-nil key or value as a JSON value.
	toJSON func(b []byte) (json.RawMessage, error)
	// fromText encodes the text of a key<sep>value line.
	fromText func(s string) ([]byte, error)
	// fromJSON encodes a non-null JSON value of a json input line.
	fromJSON func(raw json.RawMessage) ([]byte, error)
}

// codecNames lists the codecs in the order --help shows them.
var codecNames = []string{"string", "bytes", "int64", "json", "msgpack"}

// codecHelp is the flag help shared by the codec flags.
const codecHelp = "string, bytes (as base64), int64, json or msgpack (as JSON)"

// lookupCodec returns the codec called name, for the flag flag.
func lookupCodec(flag, name string) (*valueCodec, error) {
	switch name {
	case "string":
		return &stringCodec, nil
	case "bytes", "base64":
		return &bytesCodec, nil
	case "int64":
		return &int64Codec, nil
	case "json":
		return &jsonCodec, nil
	case "msgpack":
		return &msgpackCodec, nil
	}
	return nil, usagef("--%s %q: use one of %s", flag, name, strings.Join(codecNames, ", "))
}

// jsonString unmarshals raw as a JSON string.
func jsonString(raw json.RawMessage, what string) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%s must be a JSON string, got %s", what, truncate(raw))
	}
	return s, nil
}

var stringCodec = valueCodec{
	name: "string",
	toJSON: func(b []byte) (json.RawMessage, error) {
		if !utf8.Valid(b) {
			return nil, errors.New("not valid UTF-8 (use the bytes codec to see it)")
		}
		return json.Marshal(string(b))
	},
	fromText: func(s string) ([]byte, error) { return []byte(s), nil },
	fromJSON: func(raw json.RawMessage) ([]byte, error) {
		s, err := jsonString(raw, "a string codec's input")
		return []byte(s), err
	},
}

var bytesCodec = valueCodec{
	name: "bytes",
	toJSON: func(b []byte) (json.RawMessage, error) {
		return json.Marshal(base64.StdEncoding.EncodeToString(b))
	},
	fromText: func(s string) ([]byte, error) {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("the bytes codec takes base64: %w", err)
		}
		return b, nil
	},
	fromJSON: func(raw json.RawMessage) ([]byte, error) {
		s, err := jsonString(raw, "the bytes codec's input (base64)")
		if err != nil {
			return nil, err
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("the bytes codec takes base64: %w", err)
		}
		return b, nil
	},
}

var int64Codec = valueCodec{
	name: "int64",
	toJSON: func(b []byte) (json.RawMessage, error) {
		v, err := codec.Int64().Decode(b)
		if err != nil {
			return nil, err
		}
		return json.RawMessage(strconv.FormatInt(v, 10)), nil
	},
	fromText: parseInt64,
	fromJSON: func(raw json.RawMessage) ([]byte, error) {
		s := string(raw)
		if strings.HasPrefix(s, `"`) {
			var err error
			if s, err = jsonString(raw, "an int64"); err != nil {
				return nil, err
			}
		}
		return parseInt64(s)
	},
}

func parseInt64(s string) ([]byte, error) {
	v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("the int64 codec takes a decimal integer: %q", s)
	}
	return codec.Int64().Append(nil, v)
}

var jsonCodec = valueCodec{
	name: "json",
	toJSON: func(b []byte) (json.RawMessage, error) {
		var buf bytes.Buffer
		if err := json.Compact(&buf, b); err != nil {
			return nil, fmt.Errorf("not JSON: %w", err)
		}
		return buf.Bytes(), nil
	},
	fromText: func(s string) ([]byte, error) {
		var buf bytes.Buffer
		if err := json.Compact(&buf, []byte(s)); err != nil {
			return nil, fmt.Errorf("the json codec takes JSON: %w", err)
		}
		return buf.Bytes(), nil
	},
	fromJSON: func(raw json.RawMessage) ([]byte, error) {
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	},
}

var msgpackCodec = valueCodec{
	name:     "msgpack",
	toJSON:   msgpackToJSON,
	fromText: func(s string) ([]byte, error) { return jsonToMsgpack([]byte(s)) },
	fromJSON: func(raw json.RawMessage) ([]byte, error) { return jsonToMsgpack(raw) },
}

// msgpackToJSON renders a MessagePack value as JSON. codec.Msgpack checks
// the input first (truncation, hostile lengths, nesting); then maps with
// keys of any type are decoded, their keys shown as strings, as JSON
// needs.
func msgpackToJSON(b []byte) (json.RawMessage, error) {
	raw, err := codec.Msgpack[msgpack.RawMessage]().Decode(b)
	if err != nil {
		return nil, err
	}
	dec := msgpack.NewDecoder(bytes.NewReader(raw))
	dec.SetMapDecoder(decodeStringKeyedMap)
	v, err := dec.DecodeInterface()
	if err != nil {
		return nil, fmt.Errorf("msgpack: %w", err)
	}
	return json.Marshal(jsonable(v))
}

// decodeStringKeyedMap decodes a MessagePack map whose keys may be of any
// type (an array too, which no Go map could hold) into a map keyed by the
// keys' JSON text, strings as they are.
func decodeStringKeyedMap(d *msgpack.Decoder) (any, error) {
	n, err := d.DecodeMapLen()
	if err != nil || n < 0 {
		return nil, err
	}
	m := make(map[string]any, min(n, 1024))
	for range n {
		k, err := d.DecodeInterface()
		if err != nil {
			return nil, err
		}
		v, err := d.DecodeInterface()
		if err != nil {
			return nil, err
		}
		var key string
		switch k := k.(type) {
		case string:
			key = k
		case []byte:
			key = string(k)
		default:
			b, err := json.Marshal(jsonable(k))
			if err != nil {
				return nil, fmt.Errorf("map key %v: %w", k, err)
			}
			key = string(b)
		}
		m[key] = v
	}
	return m, nil
}

// jsonable turns what the msgpack decoder returns into values
// encoding/json accepts: maps keyed by strings, no NaN or infinities.
func jsonable(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = jsonable(e)
		}
		return v
	case []any:
		for i, e := range v {
			v[i] = jsonable(e)
		}
		return v
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Sprint(v)
		}
	case float32:
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Sprint(v)
		}
	}
	return v
}

// jsonToMsgpack encodes a JSON value as codec.Msgpack[any] does: whole
// numbers as integers, others as floats, objects as maps with sorted keys.
func jsonToMsgpack(raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("the msgpack codec takes JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("the msgpack codec takes one JSON value")
	}
	return codec.Msgpack[any]().Append(nil, numbers(v))
}

// numbers replaces json.Numbers by int64 (or uint64) where whole, else
// float64.
func numbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		if u, err := strconv.ParseUint(string(v), 10, 64); err == nil {
			return u
		}
		f, _ := v.Float64()
		return f
	case map[string]any:
		for k, e := range v {
			v[k] = numbers(e)
		}
		return v
	case []any:
		for i, e := range v {
			v[i] = numbers(e)
		}
		return v
	}
	return v
}

// truncate shortens raw input quoted in an error.
func truncate(b []byte) string {
	const max = 60
	if len(b) <= max {
		return string(b)
	}
	return string(slices.Clip(b[:max])) + "..."
}
