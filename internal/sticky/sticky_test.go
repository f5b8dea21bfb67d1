package sticky

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDeal(t *testing.T) {
	tests := []struct {
		name  string
		owned [][]int32
		n     int32
		want  [][]int32
	}{
		{"no member", nil, 4, [][]int32{}},
		{"no number", [][]int32{nil, nil}, 0, [][]int32{nil, nil}},
		{"round-robin", [][]int32{nil, nil, nil}, 7, [][]int32{{0, 3, 6}, {1, 4}, {2, 5}}},
		{"more members than numbers", [][]int32{nil, nil, nil}, 2, [][]int32{{0}, {1}, nil}},
		{"keeps its numbers", [][]int32{{1, 3}, {0, 2}}, 4, [][]int32{{1, 3}, {0, 2}}},
		{"a joiner takes the excess", [][]int32{{0, 1, 2, 3}, nil}, 4, [][]int32{{0, 1}, {2, 3}}},
		{"a leaver's numbers spread", [][]int32{{0, 1}, {4, 5}}, 6, [][]int32{{0, 1, 2}, {3, 4, 5}}},
		{"one more only while extra shares last", [][]int32{{0, 1}, {2, 3}, {4}}, 5, [][]int32{{0, 1}, {2, 3}, {4}}},
		{"extra shares used up", [][]int32{{0, 1}, {2, 3}, nil}, 5, [][]int32{{0, 1}, {2, 3}, {4}}},
		{"the earlier member wins a number claimed twice", [][]int32{{0}, {0, 1}}, 2, [][]int32{{0}, {1}}},
		{"numbers out of range are ignored", [][]int32{{-1, 7, 1}, {9}}, 2, [][]int32{{1}, {0}}},
		{"owned out of order", [][]int32{{3, 0}, nil}, 4, [][]int32{{0, 3}, {1, 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			owned := slices.Clone(tt.owned)
			for i := range owned {
				owned[i] = slices.Clone(owned[i])
			}
			require.Equal(t, tt.want, Deal(tt.owned, tt.n))
			require.Equal(t, owned, tt.owned, "owned is not changed")
		})
	}
}

// TestDealReplay replays random generations, members joining and leaving,
// each reporting the numbers it got last: every number goes to exactly
// one member, the shares differ by at most one, and a member that stays
// keeps as many of its numbers as its share allows.
func TestDealReplay(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		n := int32(1 + rng.IntN(24))
		var members []string
		owned := map[string][]int32{}
		next := 0
		for gen := range 30 {
			switch {
			case len(members) == 0 || rng.IntN(3) == 0:
				members = append(members, fmt.Sprintf("m%d", next))
				next++
			case len(members) > 1 && rng.IntN(2) == 0:
				i := rng.IntN(len(members))
				delete(owned, members[i])
				members = slices.Delete(members, i, i+1)
			}
			in := make([][]int32, len(members))
			for i, m := range members {
				in[i] = owned[m]
			}
			out := Deal(in, n)
			require.Len(t, out, len(members))
			seen := make([]bool, n)
			lo, hi := int(n), 0
			for i, nums := range out {
				require.True(t, slices.IsSorted(nums))
				for _, p := range nums {
					require.False(t, seen[p], "round %d gen %d: number %d dealt twice", round, gen, p)
					seen[p] = true
				}
				lo, hi = min(lo, len(nums)), max(hi, len(nums))
				kept := 0
				for _, p := range in[i] {
					if slices.Contains(nums, p) {
						kept++
					}
				}
				require.Equal(t, min(len(in[i]), len(nums)), kept, "round %d gen %d: member %s keeps what its share allows", round, gen, members[i])
			}
			require.NotContains(t, seen, false, "round %d gen %d: every number dealt", round, gen)
			require.LessOrEqual(t, hi-lo, 1, "round %d gen %d: balanced", round, gen)
			for i, m := range members {
				owned[m] = out[i]
			}
		}
	}
}
