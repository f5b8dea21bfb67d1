package store_test

import (
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/store"
	"github.com/duality-streams/duality/store/storetest"
)

func TestConformance(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		storetest.Run(t, storetest.Config{
			Open: func(t *testing.T) store.DB { return store.NewMemoryDB() },
		})
	})
	t.Run("pebble-disk", func(t *testing.T) {
		storetest.Run(t, storetest.Config{
			Open: func(t *testing.T) store.DB {
				db, err := store.OpenPebble(t.TempDir())
				require.NoError(t, err)
				return db
			},
			Reopen: func(t *testing.T, db store.DB) store.DB {
				dir := db.(*store.PebbleDB).Dir()
				require.NoError(t, db.Close())
				db2, err := store.OpenPebble(dir)
				require.NoError(t, err)
				return db2
			},
		})
	})
	t.Run("pebble-mem", func(t *testing.T) {
		fss := map[store.DB]vfs.FS{}
		storetest.Run(t, storetest.Config{
			Open: func(t *testing.T) store.DB {
				fs := vfs.NewMem()
				db, err := store.OpenPebble("db", store.WithFS(fs), store.WithMemTableSize(256<<10))
				require.NoError(t, err)
				fss[db] = fs
				return db
			},
			Reopen: func(t *testing.T, db store.DB) store.DB {
				require.NoError(t, db.Close())
				db2, err := store.OpenPebble("db", store.WithFS(fss[db]))
				require.NoError(t, err)
				return db2
			},
		})
	})
}
