package window

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
)

// joinRec is an input record of a join model: its side, key, value (an
// id) and time (ms).
type joinRec struct {
	Left bool
	Key  string
	ID   string
	TS   int64
}

// joinModel returns the results of a join of recs by the definition:
// every left-right pair of a key with the right time in [l - before,
// l + after], then (left and outer joins) every left record without a
// pair as "L+-", (outer joins) every right record without one as "-+R".
func joinModel(kind joinKind, before, after int64, recs []joinRec) []string {
	var out []string
	matched := map[string]bool{}
	for _, l := range recs {
		if !l.Left {
			continue
		}
		for _, r := range recs {
			if !r.Left && r.Key == l.Key && r.TS >= l.TS-before && r.TS <= l.TS+after {
				out = append(out, l.Key+":"+l.ID+"+"+r.ID)
				matched[l.ID], matched[r.ID] = true, true
			}
		}
	}
	for _, r := range recs {
		if matched[r.ID] || (kind == innerJoin) || (kind == leftJoin && !r.Left) {
			continue
		}
		if r.Left {
			out = append(out, r.Key+":"+r.ID+"+-")
		} else {
			out = append(out, r.Key+":-+"+r.ID)
		}
	}
	slices.Sort(out)
	return out
}

func runJoin(t *testing.T, kind joinKind, w JoinWindows, recs []joinRec) []string {
	b := stream.NewBuilder()
	str := codec.String()
	l := stream.GroupByKey(stream.From(b, "l", str, str))
	r := stream.GroupByKey(stream.From(b, "r", str, str))
	stats := new(Stats)
	joiner := func(_ string, v1 string, ok1 bool, v2 string, ok2 bool) string {
		if !ok1 {
			v1 = "-"
		}
		if !ok2 {
			v2 = "-"
		}
		return v1 + "+" + v2
	}
	var out stream.Stream[string, string]
	switch kind {
	case innerJoin:
		out = Join(l, r, w, func(k, v1, v2 string) string { return joiner(k, v1, true, v2, true) }, "join", WithStats(stats))
	case leftJoin:
		out = LeftJoin(l, r, w, func(k, v1, v2 string, ok bool) string { return joiner(k, v1, true, v2, ok) }, "join", WithStats(stats))
	case outerJoin:
		out = OuterJoin(l, r, w, joiner, "join", WithStats(stats))
	}
	out.To("out")
	topo, err := b.Build()
	require.NoError(t, err)
	d, err := streamtest.New(topo, streamtest.DefaultPartitions(2))
	require.NoError(t, err)
	defer func() { require.NoError(t, d.Close()) }()
	li, ri := streamtest.Input(d, "l", str, str), streamtest.Input(d, "r", str, str)
	for _, rec := range recs {
		in := ri
		if rec.Left {
			in = li
		}
		require.NoError(t, in.PipeAt(t.Context(), rec.Key, rec.ID, time.UnixMilli(rec.TS)))
	}
	// The end of time closes every window on every partition.
	require.NoError(t, d.AdvanceToEnd(t.Context()))
	require.Zero(t, stats.LateRecords())
	kvs, err := streamtest.Output(d, "out", str, str).ReadKeyValues()
	require.NoError(t, err)
	var got []string
	for _, kv := range kvs {
		got = append(got, kv.Key+":"+kv.Value)
	}
	slices.Sort(got)
	return got
}

// TestJoinModel checks inner, left and outer joins against the model for
// input in timestamp order and out of order within the grace period.
func TestJoinModel(t *testing.T) {
	const grace = 20
	w := JoinTimeDifference(0, grace*time.Millisecond).Before(7 * time.Millisecond).After(4 * time.Millisecond)
	for _, kind := range []joinKind{innerJoin, leftJoin, outerJoin} {
		for seed := range uint64(6) {
			t.Run(fmt.Sprintf("kind=%d/seed=%d", kind, seed), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(seed, 9))
				var ordered []joinRec
				ts := int64(100)
				for i := range 150 {
					ts += int64(rng.IntN(4))
					left := rng.IntN(2) == 0
					id := fmt.Sprint("R", i)
					if left {
						id = fmt.Sprint("L", i)
					}
					ordered = append(ordered, joinRec{Left: left, Key: fmt.Sprint("k", rng.IntN(4)), ID: id, TS: ts})
				}
				shuffled := slices.Clone(ordered)
				for i := range shuffled {
					if j := i + rng.IntN(12); j < len(shuffled) {
						shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
					}
				}
				// Keep the records that are not late: their own window
				// (up to after for left records, before for right ones)
				// plus grace reaches stream time.
				var maxTs int64
				kept := shuffled[:0]
				for _, r := range shuffled {
					reach := int64(7)
					if r.Left {
						reach = 4
					}
					if r.TS+reach+grace >= maxTs {
						kept = append(kept, r)
						maxTs = max(maxTs, r.TS)
					}
				}
				ordered = slices.Clone(kept)
				slices.SortStableFunc(ordered, func(a, b joinRec) int { return cmp.Compare(a.TS, b.TS) })
				want := joinModel(kind, 7, 4, ordered)
				require.NotEmpty(t, want)
				require.Equal(t, want, runJoin(t, kind, w, ordered), "ordered")
				require.Equal(t, want, runJoin(t, kind, w, kept), "shuffled")
			})
		}
	}
}
