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

// rec is an input record of a model: a key at a time (ms).
type rec struct {
	Key string
	TS  int64
}

// wkey is a window of a key (ms) in a model's results.
type wkey struct {
	Key        string
	Start, End int64
}

// model returns the count per window of recs under w, from the
// definitions (no incremental state): what a windowed count must hold
// once every window has closed, when no record was late.
func model(w Windows, recs []rec) map[wkey]int64 {
	out := map[wkey]int64{}
	size, adv := w.size.Milliseconds(), w.advance.Milliseconds()
	byKey := map[string][]int64{}
	for _, r := range recs {
		byKey[r.Key] = append(byKey[r.Key], r.TS)
	}
	for k, tss := range byKey {
		slices.Sort(tss)
		count := func(lo, hi int64) int64 { // records in [lo, hi]
			n := int64(0)
			for _, t := range tss {
				if t >= lo && t <= hi {
					n++
				}
			}
			return n
		}
		switch w.kind {
		case KindTumbling, KindHopping:
			for _, t := range tss {
				for _, sp := range timeWindowsFor(t, size, adv) {
					out[wkey{k, sp.start, sp.end}]++
				}
			}
		case KindSliding:
			for _, t := range tss {
				out[wkey{k, t - size, t + 1}] = count(t-size, t)
				if n := count(t+1, t+1+size); n > 0 {
					out[wkey{k, t + 1, t + size + 2}] = n
				}
			}
		case KindSession:
			first, last, n := tss[0], tss[0], int64(1)
			for _, t := range tss[1:] {
				if t-last > size {
					out[wkey{k, first, last + 1}] = n
					first, n = t, 0
				}
				last = t
				n++
			}
			out[wkey{k, first, last + 1}] = n
		}
	}
	return out
}

// runCount pipes recs through a windowed count and returns the final
// results (checking each window is emitted once) and, from a second
// aggregation emitting every update, the newest value per window.
func runCount(t *testing.T, w Windows, recs []rec) (final, updates map[wkey]int64) {
	b := stream.NewBuilder()
	g := stream.GroupByKey(stream.From(b, "in", codec.String(), codec.String()))
	wc := WindowedCodec(codec.String())
	stats := new(Stats)
	Count(g, w, "final", EmitOnWindowClose(), WithStats(stats)).ToStream().To("final")
	Count(g, w, "updates", WithStats(stats)).ToStream().To("updates")
	topo, err := b.Build()
	require.NoError(t, err)
	d, err := streamtest.New(topo)
	require.NoError(t, err)
	defer func() { require.NoError(t, d.Close()) }()
	in := streamtest.Input(d, "in", codec.String(), codec.String())
	for _, r := range recs {
		require.NoError(t, in.PipeAt(t.Context(), r.Key, "v", time.UnixMilli(r.TS)))
	}
	// The end of time closes every window.
	require.NoError(t, d.AdvanceToEnd(t.Context()))
	require.Zero(t, stats.LateRecords())

	final = map[wkey]int64{}
	fo, err := streamtest.Output(d, "final", wc, codec.Int64()).ReadAll()
	require.NoError(t, err)
	for _, r := range fo {
		k := wkey{r.Key.Key, r.Key.Start.UnixMilli(), r.Key.End.UnixMilli()}
		require.False(t, r.Tombstone)
		_, dup := final[k]
		require.False(t, dup, "final result of %v emitted twice", k)
		final[k] = r.Value
	}
	updates = map[wkey]int64{}
	uo, err := streamtest.Output(d, "updates", wc, codec.Int64()).ReadAll()
	require.NoError(t, err)
	for _, r := range uo {
		k := wkey{r.Key.Key, r.Key.Start.UnixMilli(), r.Key.End.UnixMilli()}
		if r.Tombstone {
			delete(updates, k)
			continue
		}
		updates[k] = r.Value
	}
	return final, updates
}

// TestModel checks, for every window kind, that the final results and the
// newest updates of a windowed count equal the model's counts, for input
// in timestamp order and for the same records out of order within the
// grace period.
func TestModel(t *testing.T) {
	const grace = 40 * time.Millisecond
	kinds := []Windows{
		Tumbling(10*time.Millisecond, grace),
		Hopping(10*time.Millisecond, 3*time.Millisecond, grace),
		Sliding(10*time.Millisecond, grace),
		Session(7*time.Millisecond, grace),
	}
	for _, w := range kinds {
		for seed := range uint64(8) {
			t.Run(fmt.Sprintf("%s/seed=%d", w.kind, seed), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(seed, 42))
				var ordered []rec
				ts := int64(rng.IntN(30))
				for range 120 {
					ts += int64(rng.IntN(6))
					ordered = append(ordered, rec{Key: fmt.Sprint("k", rng.IntN(3)), TS: ts})
				}
				// Shuffle: every record is at most grace behind the
				// largest timestamp before it.
				shuffled := slices.Clone(ordered)
				for i := range shuffled {
					j := i + rng.IntN(8)
					if j < len(shuffled) && shuffled[j].TS-shuffled[i].TS < grace.Milliseconds() {
						shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
					}
				}
				// Drop the records a chain of swaps moved too far.
				var maxTs int64
				kept := shuffled[:0]
				for _, r := range shuffled {
					if r.TS >= maxTs-grace.Milliseconds() {
						kept = append(kept, r)
						maxTs = max(maxTs, r.TS)
					}
				}
				shuffled = kept
				ordered = slices.Clone(kept)
				slices.SortStableFunc(ordered, func(a, b rec) int { return cmp.Compare(a.TS, b.TS) })
				inversions := 0
				for i := 1; i < len(shuffled); i++ {
					if shuffled[i].TS < shuffled[i-1].TS {
						inversions++
					}
				}
				require.Greater(t, inversions, 10, "the shuffled input is out of order")
				require.Greater(t, len(shuffled), 100)
				want := model(w, ordered)
				for name, input := range map[string][]rec{"ordered": ordered, "shuffled": shuffled} {
					final, updates := runCount(t, w, input)
					require.Equal(t, want, final, "%s final results", name)
					require.Equal(t, want, updates, "%s newest updates", name)
				}
			})
		}
	}
}
