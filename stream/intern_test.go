package stream_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/internal/intern"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
)

// TestInternReleasedOnClose: the string sources of a topology's tasks
// intern their keys and values in tables of the process's budget
// (intern.MaxTotal), and give them back when the tasks close.
func TestInternReleasedOnClose(t *testing.T) {
	const parts, n = 8, 800
	b := stream.NewBuilder()
	stream.From(b, "in", str, str).To("out")
	topo, err := b.Build()
	require.NoError(t, err)
	before := intern.Held()
	d, err := streamtest.New(topo, streamtest.Partitions("in", parts), streamtest.Partitions("out", parts))
	require.NoError(t, err)
	closed := false
	t.Cleanup(func() {
		if !closed {
			require.NoError(t, d.Close())
		}
	})
	in := streamtest.Input(d, "in", str, str)
	for i := range n {
		require.NoError(t, in.Pipe(t.Context(), fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i%10)))
	}
	require.Len(t, readKVs(t, d, "out"), n)
	// Every key once, and the ten values in each task that got some.
	held := intern.Held() - before
	require.GreaterOrEqual(t, held, int64(n+10))
	require.LessOrEqual(t, held, int64(n+10*parts))
	closed = true
	require.NoError(t, d.Close())
	require.Equal(t, before, intern.Held(), "the closed tasks gave their strings back")
}
