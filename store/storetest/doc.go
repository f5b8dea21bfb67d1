// Package storetest is the conformance suite of store.DB implementations:
// one body of tests that every implementation (Pebble on disk, Pebble on
// an in-memory file system, the memory store) must pass.
//
// # Usage
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, storetest.Config{
//			Open: func(t *testing.T) store.DB { return store.NewMemoryDB() },
//		})
//	}
//
// # Checks
//
// Get, Put and Delete (empty keys and values, copies in and out, order of
// operations within a batch), DeleteRange, key order by bytes.Compare
// (keys with 0x00 and 0xff bytes), Range bounds, RangeReverse, Prefix
// (including prefixes of 0xff bytes), cursor snapshots, Close and All,
// batch atomicity under concurrent readers, offsets written atomically
// with data, Drop and isolation between stores of one DB, counts, closed
// handles and DBs, invalid names, stores opened concurrently, a random sequence of operations checked
// against a model, and, when Config.Reopen is set, that data, offsets and
// the catalog survive a reopen.
package storetest
