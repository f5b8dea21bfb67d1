package runtime

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestScheduleAdvance: a punctuation's next due time skips the due times
// already passed, and saturates at math.MaxInt64 (never due again)
// instead of wrapping around to a negative time when a timestamp is near
// the end of int64.
func TestScheduleAdvance(t *testing.T) {
	for _, tc := range []struct {
		name           string
		next, interval int64
		now, want      int64
	}{
		{"next interval", 0, 10, 5, 10},
		{"skips passed", 0, 10, 35, 40},
		{"exactly due", 10, 10, 20, 30},
		{"now near max", 0, 10, math.MaxInt64 - 5, math.MaxInt64},
		{"now at max", 0, 1000, math.MaxInt64, math.MaxInt64},
		{"next near max", math.MaxInt64 - 3, 10, 0, math.MaxInt64},
		{"last before max", 0, 10, math.MaxInt64 - 20, math.MaxInt64 - 20 - (math.MaxInt64-20)%10 + 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &schedule{interval: tc.interval, next: tc.next}
			s.advance(tc.now)
			require.Equal(t, tc.want, s.next)
			require.Greater(t, s.next, int64(0))
		})
	}
}
