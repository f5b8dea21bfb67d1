package window

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/internal/windowstore"
)

// TestReadMeta decodes the stored stream time of an aggregation: with the
// stream time expiry has reached, or alone (a store written before that
// field, expired up to its stream time), and fails on bad values.
func TestReadMeta(t *testing.T) {
	tm := func(ts ...int64) []byte {
		var b []byte
		for _, v := range ts {
			b = windowstore.AppendTime(b, v)
		}
		return b
	}
	for _, tc := range []struct {
		name    string
		b       []byte
		st, exp int64
		bad     bool
	}{
		{name: "both", b: tm(100, 40), st: 100, exp: 40},
		{name: "no expiry yet", b: tm(100, noTime), st: 100, exp: noTime},
		{name: "stream time alone", b: tm(100), st: 100, exp: 100},
		{name: "short", b: tm(100)[:7], bad: true},
		{name: "expiry after stream time", b: tm(100, 101), bad: true},
		{name: "stream time after MaxTimestamp", b: tm(MaxTimestamp+1, 0), bad: true},
		{name: "expiry before -MaxTimestamp", b: tm(0, -MaxTimestamp-1), bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, exp, err := readMeta(tc.b)
			if tc.bad {
				require.ErrorIs(t, err, codec.ErrInvalid)
				return
			}
			require.NoError(t, err)
			require.Equal(t, [2]int64{tc.st, tc.exp}, [2]int64{st, exp})
		})
	}
}
