package main

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
)

// TestSameWork runs every workload at a tiny size on every system (goka,
// Duality on each backend and guarantee, the plain-Go ceilings), in
// this process (the benchmark runs each in a child process), and checks
// that each result's checksum is the one computed in plain Go from the
// input: the systems do identical work, so the benchmark's ratios
// compare like with like.
func TestSameWork(t *testing.T) {
	for _, st := range []string{"disk", "memory"} {
		t.Run(st, func(t *testing.T) {
			prev := stateKind
			stateKind = st
			t.Cleanup(func() { stateKind = prev })
			testSameWork(t)
		})
	}
}

func testSameWork(t *testing.T) {
	s := sizes{Records: 3000, Keys: 101, RestoreKeys: 2000, Partitions: 4}
	for _, w := range workloads {
		want, err := model(w, s)
		require.NoError(t, err)
		require.NotZero(t, want.Pairs, "the model of %s has a result", w)
		for _, sp := range systems {
			if !sp.runs(w) {
				continue // goka has no windows; only W1 and W2 have a ceiling
			}
			sp.Workload, sp.sizes = w, s
			t.Run(w+"/"+sp.name(), func(t *testing.T) {
				r, err := runOne(t.Context(), sp)
				require.NoError(t, err)
				require.Equal(t, want, r.Checksum, "checksum of %s on %s", w, sp.name())
				require.Positive(t, r.Dur)
				require.Positive(t, r.HWM)
			})
		}
	}
}

// TestKafkaHash checks that goka's partitioner with kafkaHash puts keys
// where Duality's backends do (broker.KeyPartition), so goka's group
// table writes land in the partition of their input, as Duality's
// changelog writes do.
func TestKafkaHash(t *testing.T) {
	h := newKafkaHash()
	for i := range 5000 {
		k := fmt.Appendf(nil, "key-%d", i)
		if i%7 == 0 {
			k = k[:i%len(k)] // every tail length, the empty key included
		}
		for _, n := range []int32{1, 4, 7} {
			h.Reset()
			_, _ = h.Write(k)
			require.Equal(t, broker.KeyPartition(k, n), int32(h.Sum32())%n, "key %q over %d partitions", k, n)
		}
	}
}
