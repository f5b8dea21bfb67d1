package runtime

import (
	"cmp"
	"slices"
	"sync"

	"github.com/duality-streams/duality/internal/topology"
	"github.com/duality-streams/duality/store"
)

// localCopies knows which stateful tasks this instance holds a local copy
// of, and reads how far each copy goes (taskPosition), for the metadata
// the instance advertises when it joins the group (membermeta.go), which
// the placement of tasks uses (placement.go). A copy is a task's stores
// as an active task, a standby or a warm-up replica of this run left
// them, or as the state directory held them when Run started. It is safe
// for concurrent use: the broker reads the positions on a goroutine of
// its own (broker.JoinOptions.UserDataFunc).
type localCopies struct {
	mu struct {
		sync.Mutex
		// db is the app's state; nil while it is being replaced (heal).
		db store.DB
		// stores are the store names of each task with a copy.
		stores map[topology.TaskID][]string
	}
}

// reset makes db the state the copies are in, and forgets the copies:
// db is new (Run starts, or the state was rebuilt after corruption).
// A nil db stops reading positions until the next reset.
func (c *localCopies) reset(db store.DB) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.db = db
	c.mu.stores = map[topology.TaskID][]string{}
}

// add records that the instance holds a copy of task t, whose stores are
// stores.
func (c *localCopies) add(t topology.TaskID, stores []storePlan) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.stores == nil || c.mu.stores[t] != nil {
		return
	}
	names := make([]string, len(stores))
	for i, s := range stores {
		names[i] = s.name
	}
	c.mu.stores[t] = names
}

// found records the copies the state already holds (a state directory
// kept across runs): each task of p, at each partition number below the
// partition count of its sources (topics), whose stores db has.
func (c *localCopies) found(p *plan, topics map[string]int32) {
	pdb, ok := func() (*store.PebbleDB, bool) {
		c.mu.Lock()
		defer c.mu.Unlock()
		pdb, ok := c.mu.db.(*store.PebbleDB)
		return pdb, ok
	}()
	if !ok {
		return
	}
	for _, sp := range p.subs {
		if len(sp.stores) == 0 {
			continue
		}
		var n int32
		for _, src := range sp.sources {
			n = max(n, topics[src])
		}
		for part := range n {
			if slices.ContainsFunc(sp.stores, func(s storePlan) bool { return pdb.Has(s.name, part) }) {
				c.add(topology.TaskID{SubTopology: sp.st.ID, Partition: part}, sp.stores)
			}
		}
	}
}

// positions returns the positions of the copies, sorted by partition,
// then sub-topology: for each task, the sum over its stores of the
// offset after the one the store recorded. Copies whose stores recorded
// no offset, or whose offsets cannot be read, are left out.
func (c *localCopies) positions() []taskPosition {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.db == nil {
		return nil
	}
	var out []taskPosition
	for t, names := range c.mu.stores {
		var pos int64
		ok := true
		for _, name := range names {
			off, has, err := storeOffset(c.mu.db, name, t.Partition)
			if err != nil {
				ok = false
				break
			}
			if has {
				pos = satAdd(pos, off+1)
			}
		}
		if ok && pos > 0 {
			out = append(out, taskPosition{Task: t, Position: pos})
		}
	}
	slices.SortFunc(out, func(x, y taskPosition) int {
		return cmp.Or(cmp.Compare(x.Task.Partition, y.Task.Partition), cmp.Compare(x.Task.SubTopology, y.Task.SubTopology))
	})
	return out
}

// storeOffset returns the offset store name/partition of db recorded,
// through a handle of its own.
func storeOffset(db store.DB, name string, partition int32) (int64, bool, error) {
	st, err := db.Store(name, partition)
	if err != nil {
		return 0, false, err
	}
	defer st.Close()
	return st.Offset()
}

// userData returns the metadata the instance advertises when it joins:
// its endpoint and the positions of its local copies.
func (a *App) userData() []byte {
	return memberMeta{Endpoint: a.cfg.Endpoint, Copies: a.copies.positions()}.encode()
}
