package codec_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/codec"
)

type forPoint struct {
	X, Y int
}

type forName string

// checkFor checks that For[T] is want, and that it round-trips v.
func checkFor[T any](t *testing.T, want codec.Codec[T], orderPreserving bool, v T) {
	t.Helper()
	got := codec.For[T]()
	require.Equal(t, want, got)
	require.Equal(t, orderPreserving, got.OrderPreserving())
	b, err := got.Append(nil, v)
	require.NoError(t, err)
	back, err := got.Decode(b)
	require.NoError(t, err)
	require.Equal(t, v, back)
}

func TestFor(t *testing.T) {
	t.Run("string", func(t *testing.T) { checkFor(t, codec.String(), true, "héllo") })
	t.Run("bytes", func(t *testing.T) { checkFor(t, codec.Bytes(), true, []byte{0, 1, 2}) })
	t.Run("int64", func(t *testing.T) { checkFor(t, codec.Int64(), true, int64(-42)) })
	t.Run("uint64", func(t *testing.T) { checkFor(t, codec.Uint64(), true, uint64(42)) })
	t.Run("float64", func(t *testing.T) { checkFor(t, codec.Float64(), true, 2.5) })
	t.Run("bool", func(t *testing.T) { checkFor(t, codec.Bool(), true, true) })
	t.Run("struct", func(t *testing.T) { checkFor(t, codec.Msgpack[forPoint](), false, forPoint{X: 1, Y: -2}) })
	t.Run("pointer", func(t *testing.T) { checkFor(t, codec.Msgpack[*forPoint](), false, &forPoint{X: 3}) })
	t.Run("map", func(t *testing.T) { checkFor(t, codec.Msgpack[map[string]int64](), false, map[string]int64{"a": 1}) })
	t.Run("slice", func(t *testing.T) { checkFor(t, codec.Msgpack[[]string](), false, []string{"a", "b"}) })
	// Chosen by exact type: defined types and other widths get Msgpack.
	t.Run("int", func(t *testing.T) { checkFor(t, codec.Msgpack[int](), false, 7) })
	t.Run("int32", func(t *testing.T) { checkFor(t, codec.Msgpack[int32](), false, int32(7)) })
	t.Run("defined string", func(t *testing.T) { checkFor(t, codec.Msgpack[forName](), false, forName("x")) })
	t.Run("duration", func(t *testing.T) { checkFor(t, codec.Msgpack[time.Duration](), false, time.Second) })
}
