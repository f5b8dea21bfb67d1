package runtime

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/require"
)

// TestCommitFence: a released fence lets a query through at once; a held
// one makes it wait until release, or until its ctx ends.
func TestCommitFence(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var f commitFence
		require.NoError(t, f.wait(t.Context()), "the zero fence is released")

		f.hold()
		waited := make(chan error, 1)
		go func() { waited <- f.wait(t.Context()) }()
		synctest.Wait()
		require.Empty(t, waited, "a query passed a held fence")
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		require.ErrorIs(t, f.wait(ctx), context.Canceled)

		f.release()
		synctest.Wait()
		require.NoError(t, <-waited)
		require.NoError(t, f.wait(t.Context()))
		f.release() // twice: no effect
		require.NoError(t, f.wait(t.Context()))
	})
}
