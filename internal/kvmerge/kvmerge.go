// Package kvmerge merges a task's uncommitted writes with a scan of its
// store, for streamtest's state stores. (The runtime's task stores merge
// their B-tree overlays with the store themselves: internal/runtime's
// taskstore.go. Once streamtest drives the runtime, this package has no
// user left.)
package kvmerge

import (
	"strings"

	"github.com/duality-streams/duality/store"
)

// Merge yields, in key order, the pairs of c overlaid with uncommitted
// writes: keys are the written keys in the scanned range, sorted; get
// returns a key's write (its value, or deleted). A written key replaces the
// stored one and a deleted key hides it. Merge stops when yield returns
// false; it does not close c, and c's error is the caller's to check.
func Merge(c store.Cursor, keys []string, get func(k string) (value []byte, deleted bool), yield func(k, v []byte) bool) {
	ok := c.Next()
	i := 0
	for ok || i < len(keys) {
		if i < len(keys) && (!ok || strings.Compare(keys[i], string(c.Key())) <= 0) {
			k := keys[i]
			if ok && k == string(c.Key()) {
				ok = c.Next() // replaced by the write
			}
			i++
			if v, del := get(k); !del {
				if !yield([]byte(k), v) {
					return
				}
			}
			continue
		}
		if !yield(c.Key(), c.Value()) {
			return
		}
		ok = c.Next()
	}
}
