package runtime

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
)

// TestGrowOut: the output buffer (and owner beside it) grows by append
// up to busyOut records, then takes the capacity of a whole commit at
// once (MaxUncommittedRecords+1, at most jumpOut) and keeps its array
// until that is full; past it, append grows it again. A worker that
// never passes busyOut records keeps a small buffer.
func TestGrowOut(t *testing.T) {
	for _, c := range []struct {
		name     string
		max      int
		wantJump int // capacity after the jump; 0: no jump
	}{
		{"default", DefaultMaxUncommittedRecords, DefaultMaxUncommittedRecords + 1},
		{"bounded", 1 << 20, jumpOut},
		{"small", 100, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.MaxUncommittedRecords = c.max
			w := &worker{app: &App{cfg: cfg}, topics: map[string]int32{"out": 2}}
			e := &taskEnv{w: w, t: &task{idx: 1}}
			send := func(n int) {
				for range n {
					require.NoError(t, e.Send(t.Context(), broker.Record{Topic: "out", Partition: 1, Value: []byte("v")}))
				}
			}
			send(busyOut)
			require.Less(t, cap(w.out), 2*busyOut, "append's growth up to busyOut")
			if c.wantJump == 0 {
				require.LessOrEqual(t, cap(w.out), 2*busyOut, "append's growth, no jump")
				return
			}
			for cap(w.out) < busyOut || len(w.out) < cap(w.out) {
				send(1) // to a full buffer of busyOut records or more
			}
			send(1)
			jumped := cap(w.out) // rounded up to the allocator's size class
			require.GreaterOrEqual(t, jumped, c.wantJump)
			require.Less(t, jumped, c.wantJump+c.wantJump/100)
			require.GreaterOrEqual(t, cap(w.owner), c.wantJump)
			first := &w.out[0]
			send(jumped - len(w.out))
			require.Same(t, first, &w.out[0], "no reallocation until the jump's capacity is full")
			send(1)
			require.Greater(t, cap(w.out), jumped)
			require.Len(t, w.owner, len(w.out))
			for i := range w.out {
				require.Equal(t, int32(1), w.owner[i])
				require.Equal(t, "v", string(w.out[i].Value))
			}
		})
	}
}
