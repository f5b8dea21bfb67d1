package kvmerge

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/store"
)

func TestMerge(t *testing.T) {
	st := store.NewMemory("s", 0)
	defer st.Close()
	var b store.Batch
	for _, kv := range [][2]string{{"a", "1"}, {"c", "3"}, {"e", "5"}, {"g", "7"}} {
		b.Put([]byte(kv[0]), []byte(kv[1]))
	}
	require.NoError(t, st.Apply(&b))
	type write struct {
		v   string
		del bool
	}
	writes := map[string]write{"b": {v: "2"}, "c": {del: true}, "d": {v: "4"}, "e": {v: "55"}, "h": {del: true}, "i": {v: "9"}}
	keys := make([]string, 0, len(writes))
	for k := range writes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	get := func(k string) ([]byte, bool) { w := writes[k]; return []byte(w.v), w.del }

	for _, tc := range []struct {
		name string
		stop int // stop after this many pairs; 0 means never
		want []string
	}{
		{"all", 0, []string{"a=1", "b=2", "d=4", "e=55", "g=7", "i=9"}},
		{"stop early", 3, []string{"a=1", "b=2", "d=4"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := st.Range(nil, nil)
			defer c.Close()
			var got []string
			Merge(c, keys, get, func(k, v []byte) bool {
				got = append(got, string(k)+"="+string(v))
				return tc.stop == 0 || len(got) < tc.stop
			})
			require.NoError(t, c.Err())
			require.Equal(t, tc.want, got)
		})
	}
}
