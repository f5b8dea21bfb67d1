package stream

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/codec"
)

// TestOwnedValues checks that a source hands values of ownedMin bytes or
// more to a codec that can take them over, and copies smaller ones (and
// every value for other codecs).
func TestOwnedValues(t *testing.T) {
	big := bytes.Repeat([]byte("x"), ownedMin)
	small := []byte("small")

	dec := ownedValues(nil, codec.Bytes())
	v, err := dec(big)
	require.NoError(t, err)
	require.Same(t, &big[0], &v[0], "a large value is taken over")
	v, err = dec(small)
	require.NoError(t, err)
	require.Equal(t, small, v)
	require.NotSame(t, &small[0], &v[0], "a small value is copied")

	js := ownedValues(nil, codec.JSON[string]())
	s, err := js([]byte(`"a"`))
	require.NoError(t, err)
	require.Equal(t, "a", s)
}
