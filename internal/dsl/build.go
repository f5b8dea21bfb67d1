package dsl

import (
	"errors"
	"fmt"
	"slices"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/topology"
)

type topicKey struct {
	name     string
	internal bool
}

func (k topicKey) String() string {
	if k.internal {
		return fmt.Sprintf("internal topic %q", k.name)
	}
	return fmt.Sprintf("topic %q", k.name)
}

// Build validates g and splits it into sub-topologies: the connected
// components of its in-process edges (internal topics separate them),
// numbered in the order of their first node. It returns every wiring
// error at once, joined with errors.Join: errors recorded with AddError,
// a graph without sources, duplicate names, invalid topic names, a topic
// read by two sources, and a sub-topology that reads a topic it writes
// (unless it is an internal topic declared with ReadByWriter). These
// name the steps. A graph without them makes a topology that the checks
// of [Wrap] then hold to the contract of package topology, as they hold
// a topology written by hand: the one validation every topology passes
// before a runtime runs it.
//
// The result is a snapshot: nodes added to g later are not part of it.
func Build(g *Graph) (*Topology, error) {
	errs := slices.Clone(g.errs)
	nodes := slices.Clone(g.nodes)
	children := make([][]*Node, len(nodes))
	for i, n := range nodes {
		children[i] = slices.Clone(n.Children)
	}

	byName := make(map[string]*Node, len(nodes))
	for _, n := range nodes {
		if prev, ok := byName[n.Name]; ok {
			errs = append(errs, fmt.Errorf("%w: %q names both a %s step and a %s step", ErrDuplicateName, n.Name, prev.Op, n.Op))
			continue
		}
		byName[n.Name] = n
	}
	globalTables := map[string]bool{}
	for _, gs := range g.globals {
		if gs.Table == "" {
			continue
		}
		if prev, ok := byName[gs.Table]; ok {
			errs = append(errs, fmt.Errorf("%w: %q names both a %s step and global table of store %q", ErrDuplicateName, gs.Table, prev.Op, gs.Name))
		} else if globalTables[gs.Table] {
			errs = append(errs, fmt.Errorf("%w: %q names two global tables", ErrDuplicateName, gs.Table))
		}
		globalTables[gs.Table] = true
	}

	readers := make(map[topicKey]*Node)
	nSources := 0
	for _, n := range nodes {
		switch n.Kind {
		case KindSource:
			nSources++
			for _, topic := range n.Topics {
				k := topicKey{topic, n.Internal}
				// Internal topic names are checked once, with the list of
				// internal topics below.
				if err := broker.ValidateTopicName(topic); err != nil {
					if !n.Internal {
						errs = append(errs, fmt.Errorf("source %q: %w", n.Name, err))
					}
					continue
				}
				if prev, ok := readers[k]; ok {
					errs = append(errs, fmt.Errorf("%w: %s is read by sources %q and %q; read it once and reuse the stream", ErrTopicConflict, k, prev.Name, n.Name))
					continue
				}
				readers[k] = n
			}
		case KindSink:
			for _, topic := range n.Topics {
				if err := broker.ValidateTopicName(topic); err != nil && !n.Internal {
					errs = append(errs, fmt.Errorf("sink %q: %w", n.Name, err))
				}
			}
		}
	}
	for _, it := range g.internal {
		if err := broker.ValidateTopicName(it.Name); err != nil {
			errs = append(errs, fmt.Errorf("internal topic of %q: %w", it.Writer.Name, err))
		}
	}
	if nSources == 0 {
		errs = append(errs, ErrNoSources)
	}
	globalNames := map[string]bool{}
	for _, gs := range g.globals {
		if err := broker.ValidateTopicName(gs.Name); err != nil || gs.Name == "" {
			errs = append(errs, fmt.Errorf("%w: %s: global store name %q: it must be a valid topic name (ASCII letters, digits, '.', '_', '-')", ErrInvalidOption, gs.Step, gs.Name))
		}
		if globalNames[gs.Name] {
			errs = append(errs, fmt.Errorf("%w: %s: global store %q is declared twice", ErrStoreConflict, gs.Step, gs.Name))
		}
		globalNames[gs.Name] = true
		if err := broker.ValidateTopicName(gs.Topic); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", gs.Step, err))
			continue
		}
		k := topicKey{gs.Topic, false}
		if prev, ok := readers[k]; ok {
			errs = append(errs, fmt.Errorf("%w: %s is read by source %q and global store %q; a global table's topic feeds only its store", ErrTopicConflict, k, prev.Name, gs.Name))
		}
		for _, o := range g.globals {
			if o.Name < gs.Name && o.Topic == gs.Topic {
				errs = append(errs, fmt.Errorf("%w: %s feeds global stores %q and %q; read it once and reuse the global table", ErrTopicConflict, k, o.Name, gs.Name))
			}
		}
	}
	for _, n := range nodes {
		for _, name := range n.Stores {
			if globalNames[name] {
				errs = append(errs, fmt.Errorf("%w: %s %q: store %q is also a global store", ErrStoreConflict, n.Op, n.Name, name))
			}
		}
	}
	for _, n := range nodes {
		for _, name := range n.Stores {
			// The name becomes the changelog topic "<app>-<name>-changelog".
			if err := broker.ValidateTopicName(topology.ChangelogTopic(name)); err != nil || name == "" {
				errs = append(errs, fmt.Errorf("%w: %s %q: store name %q: it must be a valid topic name (ASCII letters, digits, '.', '_', '-')", ErrInvalidOption, n.Op, n.Name, name))
			}
		}
	}

	readByWriter := map[string]bool{}
	for _, it := range g.internal {
		readByWriter[it.Name] = it.ReadByWriter
	}
	comps, compOf := components(nodes)
	// stepOf is each node's index among the steps of its sub-topology.
	stepOf := make([]int, len(nodes))
	for _, comp := range comps {
		for i, n := range comp {
			stepOf[n.ID] = i
		}
	}
	storeOwner := map[string]int{} // store name -> sub-topology
	topo := &topology.Topology{}
	for id, comp := range comps {
		st := &topology.SubTopology{ID: id}
		var sources []*Node
		read := make(map[topicKey]bool)
		written := make(map[topicKey]bool)
		for _, n := range comp {
			switch n.Kind {
			case KindSource:
				sources = append(sources, n)
				for _, topic := range n.Topics {
					k := topicKey{topic, n.Internal}
					if !read[k] {
						read[k] = true
						st.Sources = append(st.Sources, topology.Source{Topic: topic, Internal: n.Internal})
					}
				}
			}
			for _, name := range n.Stores {
				if owner, ok := storeOwner[name]; ok {
					if owner != id {
						errs = append(errs, fmt.Errorf("%w: store %q is used by sub-topologies %d and %d (step %q); a store belongs to one sub-topology", ErrStoreConflict, name, owner, id, n.Name))
					} else if d, ok := n.StoreSpecs[name]; ok {
						cur := &st.Stores[slices.IndexFunc(st.Stores, func(ss topology.StoreSpec) bool { return ss.Name == name })]
						switch {
						case cur.Kind == topology.StoreKeyValue && cur.Segment == 0:
							cur.Kind, cur.Segment = d.Kind, d.Segment
						case cur.Kind != d.Kind || cur.Segment != d.Segment:
							errs = append(errs, fmt.Errorf("%w: store %q is declared as a %s store with segments of %v and as a %s store with segments of %v (step %q)", ErrStoreConflict, name, cur.Kind, cur.Segment, d.Kind, d.Segment, n.Name))
						}
						cur.Retention = max(cur.Retention, d.Retention)
					}
					continue
				}
				storeOwner[name] = id
				spec := n.StoreSpecs[name]
				spec.Name = name
				st.Stores = append(st.Stores, spec)
			}
			switch n.Kind {
			case KindSink:
				for _, topic := range n.Topics {
					k := topicKey{topic, n.Internal}
					if !written[k] {
						written[k] = true
						st.Sinks = append(st.Sinks, topology.Sink{Topic: topic, Internal: n.Internal})
					}
				}
			}
		}
		for _, s := range st.Sinks {
			if k := (topicKey{s.Topic, s.Internal}); read[k] && !(s.Internal && readByWriter[s.Topic]) {
				errs = append(errs, fmt.Errorf("%w: sub-topology %d reads and writes %s; a sub-topology must not read its own output", ErrTopicConflict, id, k))
			}
		}
		st.NewTask = func(env topology.TaskEnv) (topology.Processor, error) {
			return newTask(env, children, sources, stepOf)
		}
		for _, n := range comp {
			st.Steps = append(st.Steps, topology.Step{Name: n.Name, Op: n.Op, Sink: n.Kind == KindSink})
		}
		topo.SubTopologies = append(topo.SubTopologies, st)
	}
	for _, it := range g.internal {
		var like *topology.Source
		if it.PartitionsLike != nil {
			l := *it.PartitionsLike
			like = &l
		}
		topo.InternalTopics = append(topo.InternalTopics, topology.InternalTopic{
			Name:           it.Name,
			Partitions:     it.Partitions,
			PartitionsLike: like,
			WrittenBy:      compOf[it.Writer.ID],
			Cleanup:        broker.CleanupDelete,
		})
	}
	for _, gs := range g.globals {
		topo.GlobalStores = append(topo.GlobalStores, topology.GlobalStore{Name: gs.Name, Topic: gs.Topic})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	t, err := Wrap(topo)
	if err != nil {
		return nil, err
	}
	t.steps = comps
	t.children = children
	for _, gs := range g.globals {
		if gs.Table != "" {
			if t.globalTables == nil {
				t.globalTables = map[string]string{}
			}
			t.globalTables[gs.Name] = gs.Table
		}
	}
	return t, nil
}

// components returns the connected components of nodes (by in-process
// edges), each sorted by node ID, ordered by their first node, and the
// component index of every node.
func components(nodes []*Node) ([][]*Node, []int) {
	parent := make([]int, len(nodes))
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	for _, n := range nodes {
		for _, p := range n.Parents {
			a, b := find(n.ID), find(p.ID)
			if a != b {
				parent[max(a, b)] = min(a, b)
			}
		}
	}
	compOf := make([]int, len(nodes))
	index := make(map[int]int)
	var comps [][]*Node
	for _, n := range nodes {
		r := find(n.ID)
		c, ok := index[r]
		if !ok {
			c = len(comps)
			index[r] = c
			comps = append(comps, nil)
		}
		comps[c] = append(comps[c], n)
		compOf[n.ID] = c
	}
	return comps, compOf
}
