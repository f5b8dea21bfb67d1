package dsl

import (
	"fmt"
	"strings"

	"github.com/duality-streams/duality/internal/topology"
)

// AppIDPlaceholder stands for the app id in a description made without
// one (see [Topology.Describe]): "<app-id>-counts-changelog". It cannot
// be part of a topic name, so it is never mistaken for one.
const AppIDPlaceholder = "<app-id>"

// Describe returns the text description of a topology Build made, in the
// shape of Kafka Streams' TopologyDescription: every sub-topology with
// its sources, processors and sinks in creation order, each with its
// children ("-->") and parents ("<--"), a processor with its operation
// (when it was named) and stores, and a step's [Node.Detail] on a line of
// its own; then the internal topics, the stores with their changelog
// topics and the global stores with their topics (and the name of their
// global table, when it was named).
//
// Topics are named as the runtime of the app appID names them on the
// broker: an internal topic (repartition, foreign-key join, changelog)
// "<appID>-<name>", an external topic by its name. With appID "" the
// placeholder [AppIDPlaceholder] stands for the app id. It returns "" for
// a nil or zero Topology and for one written by hand (see [Wrap]), which
// has no steps to describe.
func (t *Topology) Describe(appID string) string {
	if t == nil || t.t == nil || t.steps == nil {
		return ""
	}
	if appID == "" {
		appID = AppIDPlaceholder
	}
	topic := func(name string, internal bool) string {
		if internal {
			return topology.InternalTopicName(appID, name)
		}
		return name
	}
	var b strings.Builder
	b.WriteString("Topology\n")
	for id, steps := range t.steps {
		fmt.Fprintf(&b, "  Sub-topology %d\n", id)
		for _, n := range steps {
			topics := make([]string, len(n.Topics))
			for i, tp := range n.Topics {
				topics[i] = topic(tp, n.Internal)
			}
			switch n.Kind {
			case KindSource:
				fmt.Fprintf(&b, "    Source: %s (topics: [%s])\n", n.Name, strings.Join(topics, ", "))
			case KindSink:
				if len(topics) == 0 {
					fmt.Fprintf(&b, "    Sink: %s (topic chosen per record)\n", n.Name)
				} else {
					fmt.Fprintf(&b, "    Sink: %s (topic: %s)\n", n.Name, strings.Join(topics, ", "))
				}
			default:
				var attrs []string
				if n.Named {
					attrs = append(attrs, n.Op)
				}
				if len(n.Stores) > 0 {
					attrs = append(attrs, "stores: ["+strings.Join(n.Stores, ", ")+"]")
				}
				if len(n.GlobalStores) > 0 {
					attrs = append(attrs, "global stores: ["+strings.Join(n.GlobalStores, ", ")+"]")
				}
				fmt.Fprintf(&b, "    Processor: %s", n.Name)
				if len(attrs) > 0 {
					fmt.Fprintf(&b, " (%s)", strings.Join(attrs, ", "))
				}
				b.WriteByte('\n')
			}
			if n.Detail != "" {
				fmt.Fprintf(&b, "      %s\n", n.Detail)
			}
			if kids := t.children[n.ID]; len(kids) > 0 {
				fmt.Fprintf(&b, "      --> %s\n", names(kids))
			}
			if len(n.Parents) > 0 {
				fmt.Fprintf(&b, "      <-- %s\n", names(n.Parents))
			}
		}
	}
	if its := t.t.InternalTopics; len(its) > 0 {
		b.WriteString("  Internal topics\n")
		for _, it := range its {
			parts := "as many as its writer's sources"
			switch {
			case it.Partitions > 0:
				parts = fmt.Sprint(it.Partitions)
			case it.PartitionsLike != nil:
				parts = fmt.Sprintf("as many as topic %q", topic(it.PartitionsLike.Topic, it.PartitionsLike.Internal))
			}
			fmt.Fprintf(&b, "    %s (partitions: %s, cleanup: %s, written by sub-topology %d)\n", topic(it.Name, true), parts, it.Cleanup, it.WrittenBy)
		}
	}
	header := false
	for _, st := range t.t.SubTopologies {
		for _, ss := range st.Stores {
			if !header {
				b.WriteString("  Stores\n")
				header = true
			}
			cleanup, retention := ss.Changelog()
			fmt.Fprintf(&b, "    %s (sub-topology %d, changelog: %s, cleanup: %s", ss.Name, st.ID, topic(topology.ChangelogTopic(ss.Name), true), cleanup)
			if retention > 0 {
				fmt.Fprintf(&b, ", retention: %s", retention)
			}
			b.WriteString(")\n")
		}
	}
	if gss := t.t.GlobalStores; len(gss) > 0 {
		b.WriteString("  Global stores\n")
		for _, gs := range gss {
			fmt.Fprintf(&b, "    %s (", gs.Name)
			if name, ok := t.globalTables[gs.Name]; ok {
				fmt.Fprintf(&b, "global table: %s, ", name)
			}
			fmt.Fprintf(&b, "topic: %s, every partition on every instance)\n", gs.Topic)
		}
	}
	return b.String()
}

func names(ns []*Node) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = n.Name
	}
	return strings.Join(s, ", ")
}
