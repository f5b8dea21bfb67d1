package runtime

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/topology"
)

// oneTaskPer is the stateful tasks of a topology with one stateful
// sub-topology (id 0) on numbers partitions.
func oneTaskPer(numbers int32) [][]topology.TaskID {
	out := make([][]topology.TaskID, numbers)
	for p := range numbers {
		out[p] = []topology.TaskID{{SubTopology: 0, Partition: p}}
	}
	return out
}

// at returns copies of sub-topology 0's tasks at positions pos[p].
func at(pos map[int32]int64) map[topology.TaskID]int64 {
	out := map[topology.TaskID]int64{}
	for p, v := range pos {
		out[topology.TaskID{Partition: p}] = v
	}
	return out
}

func TestPlaceScenarios(t *testing.T) {
	full := map[int32]int64{0: 50_000, 1: 50_000, 2: 50_000, 3: 50_000}
	tests := []struct {
		name    string
		in      placeInput
		want    placement
		wantErr bool
	}{
		{
			name: "scale out: the new member warms up, the owner keeps its tasks",
			in: placeInput{numbers: 4, stateful: oneTaskPer(4), acceptableLag: 100, maxWarmups: 2, members: []placeMember{
				{id: "a", owned: []int32{0, 1, 2, 3}, copies: at(full)},
				{id: "b"},
			}},
			want: placement{
				active:   [][]int32{{0, 1, 2, 3}, nil},
				warmups:  [][]int32{nil, {2, 3}},
				standbys: [][]int32{nil, nil},
			},
		},
		{
			name: "scale out: at most maxWarmups warm-ups",
			in: placeInput{numbers: 4, stateful: oneTaskPer(4), acceptableLag: 100, maxWarmups: 1, members: []placeMember{
				{id: "a", owned: []int32{0, 1, 2, 3}, copies: at(full)},
				{id: "b"},
			}},
			want: placement{
				active:   [][]int32{{0, 1, 2, 3}, nil},
				warmups:  [][]int32{nil, {2}},
				standbys: [][]int32{nil, nil},
			},
		},
		{
			name: "probe: the warm-ups caught up, the tasks move",
			in: placeInput{numbers: 4, stateful: oneTaskPer(4), acceptableLag: 100, maxWarmups: 2, members: []placeMember{
				{id: "a", owned: []int32{0, 1, 2, 3}, copies: at(full)},
				{id: "b", copies: at(map[int32]int64{2: 49_950, 3: 50_000})},
			}},
			want: placement{
				active:   [][]int32{{0, 1}, {2, 3}},
				warmups:  [][]int32{nil, nil},
				standbys: [][]int32{nil, nil},
			},
		},
		{
			name: "probe: one warm-up still behind keeps its task",
			in: placeInput{numbers: 4, stateful: oneTaskPer(4), acceptableLag: 100, maxWarmups: 2, members: []placeMember{
				{id: "a", owned: []int32{0, 1, 2, 3}, copies: at(full)},
				{id: "b", copies: at(map[int32]int64{2: 49_950, 3: 40_000})},
			}},
			want: placement{
				active:   [][]int32{{0, 1, 3}, {2}},
				warmups:  [][]int32{nil, {3}},
				standbys: [][]int32{nil, nil},
			},
		},
		{
			name: "stateless tasks move at once",
			in: placeInput{numbers: 4, acceptableLag: 100, maxWarmups: 2, members: []placeMember{
				{id: "a", owned: []int32{0, 1, 2, 3}},
				{id: "b"},
			}},
			want: placement{
				active:   [][]int32{{0, 1}, {2, 3}},
				warmups:  [][]int32{nil, nil},
				standbys: [][]int32{nil, nil},
			},
		},
		{
			name: "failover: the standby's member takes the tasks, the other warms up",
			in: placeInput{numbers: 2, stateful: oneTaskPer(2), acceptableLag: 100, maxWarmups: 2, standbys: 1, members: []placeMember{
				{id: "b", owned: []int32{0}, copies: at(map[int32]int64{0: 1000, 1: 1000})},
				{id: "c", owned: []int32{}},
			}},
			want: placement{
				active:   [][]int32{{0, 1}, nil},
				warmups:  [][]int32{nil, {1}},
				standbys: [][]int32{nil, {0}},
			},
		},
		{
			name: "no copies anywhere: balance alone, standbys spread",
			in: placeInput{numbers: 3, stateful: oneTaskPer(3), acceptableLag: 100, maxWarmups: 2, standbys: 1, members: []placeMember{
				{id: "a"}, {id: "b"}, {id: "c"},
			}},
			want: placement{
				active:   [][]int32{{0}, {1}, {2}},
				warmups:  [][]int32{nil, nil, nil},
				standbys: [][]int32{{2}, {0}, {1}},
			},
		},
		{
			name: "standbys stay where the copies are",
			in: placeInput{numbers: 2, stateful: oneTaskPer(2), acceptableLag: 100, maxWarmups: 2, standbys: 1, members: []placeMember{
				{id: "a", owned: []int32{0}, copies: at(map[int32]int64{0: 500})},
				{id: "b", owned: []int32{1}, copies: at(map[int32]int64{1: 500})},
				{id: "c", copies: at(map[int32]int64{0: 500, 1: 500})},
			}},
			want: placement{
				active:   [][]int32{{0}, {1}, nil},
				warmups:  [][]int32{nil, nil, nil},
				standbys: [][]int32{nil, nil, {0, 1}},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := place(tc.in)
			require.Equal(t, tc.want, got)
			checkPlacement(t, tc.in, got)
		})
	}
}

// TestPlaceProperties checks place's rules on random groups: members
// joining and leaving with random copies, owned numbers from the
// previous generation, random limits.
func TestPlaceProperties(t *testing.T) {
	for seed := range uint64(2000) {
		rng := rand.New(rand.NewPCG(seed, 7))
		in := randomInput(rng)
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			pl := place(in)
			checkPlacement(t, in, pl)
			// Deterministic: every member computing it gets the same.
			require.Equal(t, pl, place(in))
		})
	}
}

func randomInput(rng *rand.Rand) placeInput {
	n := 1 + rng.IntN(6)
	numbers := int32(rng.IntN(13))
	in := placeInput{numbers: numbers, acceptableLag: int64(rng.IntN(3)) * 50, maxWarmups: 1 + rng.IntN(4), standbys: rng.IntN(3)}
	in.stateful = make([][]topology.TaskID, numbers)
	for p := range numbers {
		for sub := range rng.IntN(3) { // 0 to 2 stateful sub-topologies
			in.stateful[p] = append(in.stateful[p], topology.TaskID{SubTopology: sub, Partition: p})
		}
	}
	// Previous owners: a random earlier assignment, some members gone.
	prev := make([]int, numbers)
	for p := range prev {
		prev[p] = rng.IntN(n + 2) // >= n: a member that left
	}
	for i := range n {
		m := placeMember{id: fmt.Sprintf("m%02d", i), copies: map[topology.TaskID]int64{}}
		for p := range numbers {
			if prev[p] == i {
				m.owned = append(m.owned, p)
			}
			for _, task := range in.stateful[p] {
				if rng.IntN(2) == 0 {
					m.copies[task] = rng.Int64N(300)
				}
			}
		}
		if rng.IntN(5) == 0 {
			// A stale claim: a number another member owned too, or one
			// out of range (the partitions were fewer or more).
			m.owned = append(m.owned, rng.Int32N(numbers+3)-1)
		}
		in.members = append(in.members, m)
	}
	return in
}

// checkPlacement checks the rules of place on its result pl for in.
func checkPlacement(t *testing.T, in placeInput, pl placement) {
	t.Helper()
	n := len(in.members)
	require.Len(t, pl.active, n)
	require.Len(t, pl.warmups, n)
	require.Len(t, pl.standbys, n)
	require.NoError(t, broker.CheckBalance(pl.active, n, in.numbers), "every number to exactly one member")
	stateful := func(p int32) bool { return int(p) < len(in.stateful) && len(in.stateful[p]) > 0 }
	// Recompute who is caught up, as place defines it.
	owner := map[int32]int{}
	for i, m := range in.members {
		for _, p := range m.owned {
			if _, ok := owner[p]; !ok {
				owner[p] = i
			}
		}
	}
	caughtUp := func(i int, p int32) bool {
		if o, ok := owner[p]; ok && o == i {
			return true
		}
		if !stateful(p) {
			return true
		}
		var lag int64
		for _, task := range in.stateful[p] {
			var ref int64
			for _, m := range in.members {
				ref = max(ref, m.copies[task])
			}
			lag += ref - in.members[i].copies[task]
		}
		return lag <= in.acceptableLag
	}
	activeOf := map[int32]int{}
	for i, ps := range pl.active {
		require.True(t, slices.IsSorted(ps))
		for _, p := range ps {
			activeOf[p] = i
		}
	}
	warmupOf := map[int32]int{}
	var warmups int
	for i, ps := range pl.warmups {
		require.True(t, slices.IsSorted(ps))
		for _, p := range ps {
			require.True(t, stateful(p), "warm-up of stateless number %d", p)
			require.NotEqual(t, activeOf[p], i, "warm-up of %d on its active member", p)
			_, dup := warmupOf[p]
			require.False(t, dup, "two warm-ups of %d", p)
			require.False(t, caughtUp(i, p), "warm-up of %d on a caught-up member", p)
			require.True(t, caughtUp(activeOf[p], p), "%d kept away from its warm-up's member on a member not caught up", p)
			warmupOf[p] = i
			warmups++
		}
	}
	require.LessOrEqual(t, warmups, in.maxWarmups)
	for p := range in.numbers {
		if caughtUp(activeOf[p], p) {
			continue
		}
		for i := range in.members {
			require.False(t, caughtUp(i, p), "number %d on member %d, not caught up, while member %d is", p, activeOf[p], i)
		}
	}
	// Balance: while the budget of warm-ups is not used up, every member
	// has its share, apart from the numbers it keeps for another
	// member's warm-up, or warms them up.
	if in.numbers > 0 && warmups < in.maxWarmups {
		lo, hi := int(in.numbers)/n, (int(in.numbers)+n-1)/n
		for i := range in.members {
			kept := 0
			for _, p := range pl.active[i] {
				if w, ok := warmupOf[p]; ok && w != i {
					kept++
				}
			}
			require.LessOrEqual(t, len(pl.active[i])-kept, hi, "member %d over its share", i)
			require.GreaterOrEqual(t, len(pl.active[i])+len(pl.warmups[i]), lo, "member %d under its share", i)
		}
	}
	// Stickiness: with every member caught up on everything and the
	// previous assignment balanced and complete, nothing moves.
	if allCaughtUp(in, caughtUp) && balancedOwned(in) {
		for i, m := range in.members {
			require.Equal(t, slices.Sorted(slices.Values(m.owned)), slices.Clip(pl.active[i]), "member %d moved", i)
		}
	}
	// Standbys.
	for p := range in.numbers {
		var holders []int
		for i, ps := range pl.standbys {
			if slices.Contains(ps, p) {
				holders = append(holders, i)
			}
		}
		if !stateful(p) {
			require.Empty(t, holders, "standby of stateless number %d", p)
			continue
		}
		free := n - 1
		if _, ok := warmupOf[p]; ok {
			free--
		}
		require.Len(t, holders, min(in.standbys, free), "standbys of %d", p)
		for _, i := range holders {
			require.NotEqual(t, activeOf[p], i)
			if w, ok := warmupOf[p]; ok {
				require.NotEqual(t, w, i)
			}
		}
	}
}

func allCaughtUp(in placeInput, caughtUp func(int, int32) bool) bool {
	for i := range in.members {
		for p := range in.numbers {
			if !caughtUp(i, p) {
				return false
			}
		}
	}
	return true
}

// balancedOwned says every number is owned by exactly one member and the
// counts differ by at most one.
func balancedOwned(in placeInput) bool {
	owned := make([][]int32, len(in.members))
	lo, hi := int(in.numbers), 0
	for i, m := range in.members {
		owned[i] = m.owned
		lo, hi = min(lo, len(m.owned)), max(hi, len(m.owned))
	}
	return broker.CheckBalance(owned, len(in.members), in.numbers) == nil && hi-lo <= 1
}

// TestPlaceStickyRounds replays generations of a growing and shrinking
// group whose members are all caught up (stateless): each keeps what it
// had as far as balance allows.
func TestPlaceStickyRounds(t *testing.T) {
	const numbers = 12
	owned := map[string][]int32{}
	step := func(ids ...string) (moved int) {
		in := placeInput{numbers: numbers, maxWarmups: 2}
		for _, id := range ids {
			in.members = append(in.members, placeMember{id: id, owned: owned[id]})
		}
		pl := place(in)
		checkPlacement(t, in, pl)
		prev := map[int32]string{}
		for id, ps := range owned {
			for _, p := range ps {
				prev[p] = id
			}
		}
		clear(owned)
		for i, id := range ids {
			owned[id] = pl.active[i]
			for _, p := range pl.active[i] {
				if o, ok := prev[p]; ok && o != id {
					moved++
				}
			}
		}
		return moved
	}
	require.Zero(t, step("a"))
	require.Equal(t, 6, step("a", "b"), "half moves to the new member")
	require.Equal(t, 4, step("a", "b", "c"), "a third moves to the new member")
	require.Zero(t, step("a", "b", "c"), "a stable group moves nothing")
	require.Equal(t, 4, step("a", "c"), "a member leaves: only its numbers move")
}

func TestPlacementEncoding(t *testing.T) {
	ids := []string{"a", "member-2", ""}
	pl := placement{
		active:   [][]int32{{0}, {1}, {2}},
		warmups:  [][]int32{nil, {2, 7}, nil},
		standbys: [][]int32{{1, 2}, {0}, nil},
	}
	got, err := decodePlacement(encodePlacement(ids, pl))
	require.NoError(t, err)
	require.Equal(t, map[string]replicas{
		"a":        {warmups: []int32{}, standbys: []int32{1, 2}},
		"member-2": {warmups: []int32{2, 7}, standbys: []int32{0}},
	}, got)
	b := encodePlacement(ids, pl)
	for i := range len(b) {
		// A cut is an error, or (at a member's end) fewer members.
		part, err := decodePlacement(b[:i])
		if err != nil {
			require.ErrorIs(t, err, errPlacement, "cut at %d", i)
			continue
		}
		require.Less(t, len(part), len(got), "cut at %d", i)
	}
	_, err = decodePlacement([]byte{placementMagic, placementVersion + 1})
	require.ErrorIs(t, err, errPlacement)
	dup := append(encodePlacement(ids, pl), encodePlacement(ids, pl)[2:]...)
	_, err = decodePlacement(dup)
	require.ErrorIs(t, err, errPlacement)
}

// FuzzPlacement: decoding never panics, and what decodes re-encodes to the
// same replicas.
//
//	go test ./internal/runtime -run='^$' -fuzz='^FuzzPlacement$' -fuzztime=10s
func FuzzPlacement(f *testing.F) {
	f.Add(encodePlacement([]string{"a", "b"}, placement{active: [][]int32{{0}, {1}}, warmups: [][]int32{{1}, nil}, standbys: [][]int32{nil, {0}}}))
	f.Add([]byte{placementMagic, placementVersion, 1, 'x', 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodePlacement(b)
		if err != nil {
			return
		}
		var ids []string
		var pl placement
		for id, r := range got {
			ids = append(ids, id)
			pl.active = append(pl.active, nil)
			pl.warmups = append(pl.warmups, r.warmups)
			pl.standbys = append(pl.standbys, r.standbys)
		}
		again, err := decodePlacement(encodePlacement(ids, pl))
		require.NoError(t, err)
		for id, r := range got {
			if len(r.warmups)+len(r.standbys) == 0 {
				delete(got, id) // members without replicas are left out
			}
		}
		require.Equal(t, got, again)
	})
}
