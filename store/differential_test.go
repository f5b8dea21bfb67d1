package store_test

import (
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/store"
)

// FuzzDifferential interprets the input as batches of operations, applies
// them to a Pebble store and to a memory store, and requires the same
// answers from both: scans forward and backward, prefix scans, Gets,
// counts and offsets.
func FuzzDifferential(f *testing.F) {
	f.Add([]byte("\x00a\x01b\x02\x03\x00\xff\x01\x05"))
	f.Add([]byte("\x00\x00\x00\x01\x00\x02\x04\x00\xff\xff\x05\x03\x06"))
	f.Fuzz(func(t *testing.T, prog []byte) {
		pdb, err := store.OpenPebble("db", store.WithFS(vfs.NewMem()), store.WithMemTableSize(64<<10))
		require.NoError(t, err)
		defer pdb.Close()
		mdb := store.NewMemoryDB()
		defer mdb.Close()
		var stores [2][2]store.Store // [impl][store]
		for i, db := range []store.DB{pdb, mdb} {
			for j := range 2 {
				stores[i][j], err = db.Store("s", int32(j))
				require.NoError(t, err)
			}
		}
		// next returns the next short byte string of prog: a length
		// (0-3) then that many bytes.
		next := func() []byte {
			if len(prog) == 0 {
				return nil
			}
			n := int(prog[0] % 4)
			prog = prog[1:]
			n = min(n, len(prog))
			s := prog[:n]
			prog = prog[n:]
			return s
		}
		var batch store.Batch
		for len(prog) > 0 {
			op := prog[0]
			prog = prog[1:]
			target := int(op>>7) & 1
			switch op % 8 {
			case 0, 1:
				batch.Put(next(), next())
			case 2:
				batch.Delete(next())
			case 3:
				start, end := next(), next()
				if op&0x40 != 0 {
					end = nil
				}
				batch.DeleteRange(start, end)
			case 4:
				batch.SetOffset(int64(len(prog)))
			case 5:
				for i := range 2 {
					require.NoError(t, stores[i][target].Apply(&batch))
				}
				batch.Reset()
			case 6:
				require.NoError(t, pdb.Flush())
			case 7:
				require.NoError(t, stores[0][target].Drop())
				require.NoError(t, stores[1][target].Drop())
			}
			for j := range 2 {
				p, m := stores[0][j], stores[1][j]
				k := next()
				pv, pok, perr := p.Get(k)
				mv, mok, merr := m.Get(k)
				require.NoError(t, perr)
				require.NoError(t, merr)
				require.Equal(t, mok, pok)
				require.Equal(t, mv, pv)
				require.Equal(t, scan(t, m.Range(nil, nil)), scan(t, p.Range(nil, nil)))
				start, end := next(), next()
				if len(end) == 0 {
					end = nil
				}
				require.Equal(t, scan(t, m.RangeReverse(start, end)), scan(t, p.RangeReverse(start, end)))
				require.Equal(t, scan(t, m.Prefix(start)), scan(t, p.Prefix(start)))
				pn, err := p.ApproximateCount()
				require.NoError(t, err)
				mn, err := m.ApproximateCount()
				require.NoError(t, err)
				require.Equal(t, mn, pn)
				po, pok, err := p.Offset()
				require.NoError(t, err)
				mo, mok, err := m.Offset()
				require.NoError(t, err)
				require.Equal(t, mok, pok)
				require.Equal(t, mo, po)
			}
		}
	})
}

type pair struct{ k, v string }

func scan(t *testing.T, c store.Cursor) []pair {
	t.Helper()
	var out []pair
	for k, v := range c.All() {
		out = append(out, pair{string(k), string(v)})
	}
	require.NoError(t, c.Err())
	require.NoError(t, c.Close())
	return out
}
