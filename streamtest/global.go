package streamtest

import (
	"fmt"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/topology"
	"github.com/duality-streams/duality/store"
)

// openGlobals opens the topology's global stores (see
// topology.GlobalStore) and attaches each to its topic, whose records
// then update the store as they are written.
func (d *Driver) openGlobals() error {
	for _, gs := range d.topo.GlobalStores {
		st, err := d.db.Store(gs.Name, 0)
		if err != nil {
			return fmt.Errorf("streamtest: open global store %s: %w", gs.Name, err)
		}
		d.stores[gs.Name] = storeInfo{global: st, changelog: gs.Topic, partitions: 1}
		d.log(gs.Topic, 0).global = st
	}
	return nil
}

// applyGlobal writes rec to the global store fed by its topic: its key
// and value as they are, a nil value deleting the key; a record without
// key is ignored, as the runtime does.
func applyGlobal(st store.Store, rec *broker.Record) error {
	if rec.Key == nil {
		return nil
	}
	var b store.Batch
	if rec.Value == nil {
		b.Delete(rec.Key)
	} else {
		b.Put(rec.Key, rec.Value)
	}
	return st.Apply(&b)
}

// GlobalStore returns a reader of the global store name.
func (e *taskEnv) GlobalStore(name string) (topology.GlobalKV, error) {
	if info, ok := e.d.stores[name]; ok && info.global != nil {
		return globalKV{e.d, info.global}, nil
	}
	return nil, fmt.Errorf("streamtest: no global store %q", name)
}

// globalKV reads a global store (topology.GlobalKV).
type globalKV struct {
	d  *Driver
	st store.Store
}

func (g globalKV) Get(key []byte) ([]byte, bool, error) {
	if g.d.storesClosed {
		return nil, false, fmt.Errorf("streamtest: global store %s: %w", g.st.Name(), ErrClosed)
	}
	return g.st.Get(key)
}
