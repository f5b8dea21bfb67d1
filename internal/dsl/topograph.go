package dsl

import (
	"fmt"

	"github.com/duality-streams/duality/internal/topology"
)

// TopologyGraph is a topology as nodes and edges: the structure that
// [Topology.Mermaid] draws, for programs that draw or inspect a topology
// themselves (package debughttp serves it as JSON to its page).
// stream.Graph is this type.
type TopologyGraph struct {
	// Nodes are the steps and stores of each sub-topology, in order (a
	// step, then the stores it is the first to use), then the global
	// stores, then the topics in the order the edges first name them.
	Nodes []GraphNode `json:"nodes"`
	// Edges link the nodes by their ids.
	Edges []GraphEdge `json:"edges"`
}

// GraphNode is a node of a [TopologyGraph].
type GraphNode struct {
	// ID identifies the node in its graph, as in the Mermaid flowchart:
	// "n<i>" for a step, "s<i>" for a store, "g<i>" for a global store,
	// "t<i>" for a topic.
	ID string `json:"id"`
	// Kind is "source", "processor" or "sink" for a step, "store",
	// "global-store", "topic" for an external topic and "internal-topic"
	// for one the app creates (repartition, foreign-key join, changelog).
	Kind string `json:"kind"`
	// Name is the step's, store's or topic's name; a topic is named as
	// the app names it on the broker.
	Name string `json:"name"`
	// Op is a step's operation ("filter", "count", "sink", ...).
	Op string `json:"op,omitempty"`
	// Detail is a step's settings that matter (a windowed aggregation's
	// windows and grace), or a global store's global table, when it was
	// named.
	Detail string `json:"detail,omitempty"`
	// SubTopology is the sub-topology of a step or store, -1 for a
	// topic or global store.
	SubTopology int `json:"subTopology"`
}

// GraphEdge is an edge of a [TopologyGraph], from the node with id From
// to the node with id To.
type GraphEdge struct {
	From string `json:"from"`
	To   string `json:"to"`
	// Kind is "records" for records flowing (a topic to the source that
	// reads it, a step to its children, a sink to its topic), "store"
	// for a step and a store it uses (from the step, or from a global
	// store to a step that reads it), "changelog" from a store to its
	// changelog topic and "feeds" from a topic to the global store it
	// feeds.
	Kind string `json:"kind"`
}

// Kinds of the nodes and edges of a TopologyGraph.
const (
	GraphSource        = "source"
	GraphProcessor     = "processor"
	GraphSink          = "sink"
	GraphStore         = "store"
	GraphGlobalStore   = "global-store"
	GraphTopic         = "topic"
	GraphInternalTopic = "internal-topic"

	EdgeRecords   = "records"
	EdgeStore     = "store"
	EdgeChangelog = "changelog"
	EdgeFeeds     = "feeds"
)

// Graph returns the topology as nodes and edges, with topics named as
// the runtime of the app appID names them ([AppIDPlaceholder] for ""). It
// returns the zero TopologyGraph when [Topology.Describe] returns "" (a
// nil or zero Topology, or one written by hand).
func (t *Topology) Graph(appID string) TopologyGraph {
	if t == nil || t.t == nil || t.steps == nil {
		return TopologyGraph{}
	}
	if appID == "" {
		appID = AppIDPlaceholder
	}
	var g TopologyGraph
	var topicNodes []GraphNode
	topics := map[string]string{} // broker name -> node id
	topic := func(name string, internal bool) string {
		if internal {
			name = topology.InternalTopicName(appID, name)
		}
		id, ok := topics[name]
		if !ok {
			id = fmt.Sprintf("t%d", len(topics))
			topics[name] = id
			kind := GraphTopic
			if internal {
				kind = GraphInternalTopic
			}
			topicNodes = append(topicNodes, GraphNode{ID: id, Kind: kind, Name: name, SubTopology: -1})
		}
		return id
	}
	edge := func(from, to, kind string) {
		g.Edges = append(g.Edges, GraphEdge{From: from, To: to, Kind: kind})
	}
	stepID := func(n *Node) string { return fmt.Sprintf("n%d", n.ID) }
	stores := map[string]string{} // store name -> node id
	for sub, steps := range t.steps {
		for _, n := range steps {
			kind := GraphProcessor
			switch n.Kind {
			case KindSource:
				kind = GraphSource
			case KindSink:
				kind = GraphSink
			}
			g.Nodes = append(g.Nodes, GraphNode{ID: stepID(n), Kind: kind, Name: n.Name, Op: n.Op, Detail: n.Detail, SubTopology: sub})
			for _, s := range n.Stores {
				if _, ok := stores[s]; !ok {
					stores[s] = fmt.Sprintf("s%d", len(stores))
					g.Nodes = append(g.Nodes, GraphNode{ID: stores[s], Kind: GraphStore, Name: s, SubTopology: sub})
				}
				edge(stepID(n), stores[s], EdgeStore)
			}
		}
	}
	for _, steps := range t.steps {
		for _, n := range steps {
			switch n.Kind {
			case KindSource:
				for _, tp := range n.Topics {
					edge(topic(tp, n.Internal), stepID(n), EdgeRecords)
				}
			case KindSink:
				for _, tp := range n.Topics {
					edge(stepID(n), topic(tp, n.Internal), EdgeRecords)
				}
			}
			for _, c := range t.children[n.ID] {
				edge(stepID(n), stepID(c), EdgeRecords)
			}
		}
	}
	for _, st := range t.t.SubTopologies {
		for _, ss := range st.Stores {
			if id, ok := stores[ss.Name]; ok {
				edge(id, topic(topology.ChangelogTopic(ss.Name), true), EdgeChangelog)
			}
		}
	}
	for i, gs := range t.t.GlobalStores {
		id := fmt.Sprintf("g%d", i)
		g.Nodes = append(g.Nodes, GraphNode{ID: id, Kind: GraphGlobalStore, Name: gs.Name, Detail: t.globalTables[gs.Name], SubTopology: -1})
		edge(topic(gs.Topic, false), id, EdgeFeeds)
		for _, steps := range t.steps {
			for _, n := range steps {
				for _, name := range n.GlobalStores {
					if name == gs.Name {
						edge(id, stepID(n), EdgeStore)
					}
				}
			}
		}
	}
	g.Nodes = append(g.Nodes, topicNodes...)
	return g
}
