package table_test

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
	"github.com/duality-streams/duality/table"
)

// TestTablesModel drives random upserts and deletes into two tables and
// checks, after every record, that the change streams of an inner, a
// left and an outer join, and of a table GroupBy sum over the outer join,
// agree with a model computed from plain maps: the newest value per key of
// each change stream equals the model's table, a tombstone is emitted only
// for a key that had a row, and the sums match. The left side is a Filter
// of a table from a topic, so its old values are derived.
func TestTablesModel(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed-", seed), func(t *testing.T) {
			d := newDriver(t, func(b *stream.Builder) {
				l := table.From(b, "l", str, i64, "l").Filter(func(_ string, v int64) bool { return v%3 != 0 })
				r := table.From(b, "r", str, i64, "r")
				table.JoinTables(l, r, func(_ string, a, b int64) string { return fmt.Sprint(a, "|", b) }).
					ToStream().To("inner")
				table.LeftJoinTables(l, r, func(_ string, a, b int64, ok bool) string { return fmt.Sprint(a, "|", showInt(b, ok)) }).
					ToStream().To("left")
				outer := table.OuterJoinTables(l, r, func(_ string, a int64, okA bool, b int64, okB bool) string {
					return showInt(a, okA) + "|" + showInt(b, okB)
				})
				outer.ToStream().To("outer")
				// Sum of the left values per group (key length parity),
				// over the outer join's rows.
				table.GroupBy(outer, func(k string, v string) (string, string) { return strconv.Itoa(len(k) % 2), k + "=" + v }).
					Count("rows-per-group").ToStream().To("rows")
			}, streamtest.DefaultPartitions(3))
			rng := rand.New(rand.NewPCG(seed, 7))
			lm, rm := map[string]int64{}, map[string]int64{}
			newest := map[string]map[string]string{"inner": {}, "left": {}, "outer": {}}
			read := map[string]*streamtest.OutputTopic[string, string]{}
			for topic := range newest {
				read[topic] = streamtest.Output(d, topic, str, str)
			}
			rows := streamtest.Output(d, "rows", str, i64)
			newestRows := map[string]int64{}
			for step := range 300 {
				k := fmt.Sprintf("k%d", rng.IntN(12))
				topic, m := "l", lm
				if rng.IntN(2) == 0 {
					topic, m = "r", rm
				}
				if rng.IntN(4) == 0 {
					delete(m, k)
					pipe(t, d, topic, i64, []in[int64]{{Key: k, Tombstone: true}})
				} else {
					v := int64(rng.IntN(10))
					m[k] = v
					pipe(t, d, topic, i64, []in[int64]{{Key: k, Value: v}})
				}
				// The model, with the Filter applied to the left side.
				left := map[string]int64{}
				for k, v := range lm {
					if v%3 != 0 {
						left[k] = v
					}
				}
				want := map[string]map[string]string{"inner": {}, "left": {}, "outer": {}}
				groups := map[string]int64{}
				for k, a := range left {
					b, ok := rm[k]
					if ok {
						want["inner"][k] = fmt.Sprint(a, "|", b)
					}
					want["left"][k] = fmt.Sprint(a, "|", showInt(b, ok))
					want["outer"][k] = showInt(a, true) + "|" + showInt(b, ok)
				}
				for k, b := range rm {
					if _, ok := left[k]; !ok {
						want["outer"][k] = "-|" + showInt(b, true)
					}
				}
				for k := range want["outer"] {
					groups[strconv.Itoa(len(k)%2)]++
				}
				for topic, out := range read {
					recs, err := out.ReadAll()
					require.NoError(t, err)
					for _, r := range recs {
						if r.Tombstone {
							_, had := newest[topic][r.Key]
							require.True(t, had, "step %d: %s: a tombstone for %q, which had no row", step, topic, r.Key)
							delete(newest[topic], r.Key)
						} else {
							newest[topic][r.Key] = r.Value
						}
					}
					require.Equal(t, want[topic], newest[topic], "step %d: %s", step, topic)
				}
				kvs, err := rows.ReadKeyValues()
				require.NoError(t, err)
				for _, r := range kvs {
					newestRows[r.Key] = r.Value
				}
				for g, n := range groups {
					require.Equal(t, n, newestRows[g], "step %d: group %s", step, g)
				}
				for g, n := range newestRows {
					require.Equal(t, groups[g], n, "step %d: group %s", step, g)
				}
			}
		})
	}
}
