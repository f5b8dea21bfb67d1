package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCases runs each case once on a small store: the case itself fails
// unless B's restore read all of A's changelog records without standby
// and none with it.
func TestCases(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a table on the embedded broker and on kfake")
	}
	*keys = 5000
	for _, s := range []spec{{"embedded", false}, {"embedded", true}, {"kafka", false}, {"kafka", true}} {
		t.Run(s.String(), func(t *testing.T) {
			r, err := runCase(s)
			require.NoError(t, err)
			require.Equal(t, int64(*keys), r.Logged)
			require.Positive(t, r.Takeover)
			require.GreaterOrEqual(t, r.Takeover, r.StopA)
			if s.standby {
				require.Zero(t, r.Restored)
				require.Positive(t, r.Warm)
			} else {
				require.Equal(t, r.Logged, r.Restored)
			}
		})
	}
}
