package runtime

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// TestBackoff: the waits double from 10 ms up to a second, start over
// after reset, and end with ctx.
func TestBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var bo backoff
		var got []time.Duration
		step := func(ctx context.Context) {
			start := time.Now()
			bo.wait(ctx)
			got = append(got, time.Since(start))
		}
		for range 9 {
			step(t.Context())
		}
		bo.reset()
		step(t.Context())
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		step(ctx)
		ms := time.Millisecond
		require.Equal(t, []time.Duration{10 * ms, 20 * ms, 40 * ms, 80 * ms, 160 * ms, 320 * ms, 640 * ms, time.Second, time.Second,
			10 * ms, 0}, got)
	})
}
