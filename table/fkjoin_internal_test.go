package table

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzFKDecode feeds arbitrary bytes to the decoders of the foreign-key
// join's internal records: they never panic, and what they accept
// re-encodes to the same bytes.
func FuzzFKDecode(f *testing.F) {
	h := hashOf([]byte("v"))
	f.Add(appendSubscription(nil, fkSubscription{instr: fkSubscribeAlwaysRespond, hash: &h, partition: 3, pk: []byte("o1")}))
	f.Add(appendSubscription(nil, fkSubscription{instr: fkUnsubscribeAndRespond, partition: 0, pk: []byte{}}))
	f.Add(appendResponse(nil, fkResponse{hash: &h, hasRight: true, right: []byte("Ann")}))
	f.Add(appendResponse(nil, fkResponse{}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if s, err := decodeSubscription(b); err == nil {
			require.Equal(t, b, appendSubscription(nil, s))
		}
		if r, err := decodeResponse(b); err == nil {
			require.Equal(t, b, appendResponse(nil, r))
		}
	})
}

func TestFKFormats(t *testing.T) {
	h := hashOf([]byte("v"))
	for _, s := range []fkSubscription{
		{instr: fkUnsubscribe, partition: 7, pk: []byte("key")},
		{instr: fkSubscribeRespondIfFound, hash: &h, partition: 1<<31 - 1, pk: []byte{}},
	} {
		got, err := decodeSubscription(appendSubscription(nil, s))
		require.NoError(t, err)
		require.Equal(t, s, got)
	}
	for _, r := range []fkResponse{{}, {hash: &h}, {hasRight: true, right: []byte{}}, {hash: &h, hasRight: true, right: []byte("x")}} {
		got, err := decodeResponse(appendResponse(nil, r))
		require.NoError(t, err)
		require.Equal(t, r.hash, got.hash)
		require.Equal(t, r.hasRight, got.hasRight)
		require.True(t, bytes.Equal(r.right, got.right))
	}
	// Subscription keys of one foreign key form one prefix range, which
	// holds no key of another foreign key.
	a := appendSubscriptionKey(nil, []byte("c1"), []byte("o1"))
	b := appendSubscriptionKey(nil, []byte("c10"), []byte("o"))
	p := appendSubscriptionPrefix(nil, []byte("c1"))
	require.True(t, bytes.HasPrefix(a, p))
	require.False(t, bytes.HasPrefix(b, p))
	require.Equal(t, []byte{1, 3}, prefixEnd([]byte{1, 2, 0xff}))
	require.Nil(t, prefixEnd([]byte{0xff, 0xff}))
	require.Nil(t, prefixEnd(nil))
}
