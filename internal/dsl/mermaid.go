package dsl

import (
	"fmt"
	"strings"

	"github.com/duality-streams/duality/internal/topology"
)

// Mermaid returns the topology as a Mermaid flowchart (GitHub renders it
// in a ```mermaid block): one subgraph per sub-topology with its steps
// (name, operation and, on a second line, the step's [Node.Detail], such
// as a window's size and grace) and their edges; the topics as
// parallelograms, external ones as read and written, internal ones
// (repartition, foreign-key join, changelog; class internal) named as
// the runtime of the app appID names them ([AppIDPlaceholder] for "");
// the stores as cylinders, linked to the steps that use them and to
// their changelogs; the global stores fed by their topics and linked to
// the steps that read them. It returns "" when [Topology.Describe] does.
func (t *Topology) Mermaid(appID string) string {
	if t == nil || t.t == nil || t.steps == nil {
		return ""
	}
	if appID == "" {
		appID = AppIDPlaceholder
	}
	var b strings.Builder
	b.WriteString("flowchart TD\n")
	topics := map[string]string{} // broker name -> node id
	var topicDefs strings.Builder
	topic := func(name string, internal bool) string {
		if internal {
			name = topology.InternalTopicName(appID, name)
		}
		id, ok := topics[name]
		if !ok {
			id = fmt.Sprintf("t%d", len(topics))
			topics[name] = id
			class := "topic"
			if internal {
				class = "internal"
			}
			fmt.Fprintf(&topicDefs, "  %s[/\"%s\"/]:::%s\n", id, mermaidText(name), class)
		}
		return id
	}
	stores := map[string]string{} // store name -> node id
	var edges strings.Builder
	for id, steps := range t.steps {
		fmt.Fprintf(&b, "  subgraph sub%d[\"Sub-topology %d\"]\n", id, id)
		for _, n := range steps {
			label := mermaidText(n.Name)
			if n.Op != "" && n.Op != n.Name {
				label += "<br/><i>" + mermaidText(n.Op) + "</i>"
			}
			if n.Kind == KindSink && len(n.Topics) == 0 {
				label += "<br/>topic chosen per record"
			}
			if n.Detail != "" {
				label += "<br/>" + mermaidText(n.Detail)
			}
			fmt.Fprintf(&b, "    n%d[\"%s\"]\n", n.ID, label)
			for _, s := range n.Stores {
				if _, ok := stores[s]; !ok {
					stores[s] = fmt.Sprintf("s%d", len(stores))
					fmt.Fprintf(&b, "    %s[(\"%s\")]:::store\n", stores[s], mermaidText(s))
				}
				fmt.Fprintf(&edges, "  n%d -.- %s\n", n.ID, stores[s])
			}
		}
		b.WriteString("  end\n")
	}
	for _, steps := range t.steps {
		for _, n := range steps {
			switch n.Kind {
			case KindSource:
				for _, tp := range n.Topics {
					fmt.Fprintf(&edges, "  %s --> n%d\n", topic(tp, n.Internal), n.ID)
				}
			case KindSink:
				for _, tp := range n.Topics {
					fmt.Fprintf(&edges, "  n%d --> %s\n", n.ID, topic(tp, n.Internal))
				}
			}
			for _, c := range t.children[n.ID] {
				fmt.Fprintf(&edges, "  n%d --> n%d\n", n.ID, c.ID)
			}
		}
	}
	for _, st := range t.t.SubTopologies {
		for _, ss := range st.Stores {
			id, ok := stores[ss.Name]
			if !ok {
				continue
			}
			fmt.Fprintf(&edges, "  %s -. changelog .-> %s\n", id, topic(topology.ChangelogTopic(ss.Name), true))
		}
	}
	for i, gs := range t.t.GlobalStores {
		id := fmt.Sprintf("g%d", i)
		label := mermaidText(gs.Name) + "<br/><i>global store</i>"
		if name, ok := t.globalTables[gs.Name]; ok {
			label += "<br/>" + mermaidText(name)
		}
		fmt.Fprintf(&b, "  %s[(\"%s\")]:::store\n", id, label)
		fmt.Fprintf(&edges, "  %s -.-> %s\n", topic(gs.Topic, false), id)
		for _, steps := range t.steps {
			for _, n := range steps {
				for _, name := range n.GlobalStores {
					if name == gs.Name {
						fmt.Fprintf(&edges, "  %s -.- n%d\n", id, n.ID)
					}
				}
			}
		}
	}
	b.WriteString(topicDefs.String())
	b.WriteString(edges.String())
	b.WriteString("  classDef topic fill:#eef,stroke:#669\n")
	b.WriteString("  classDef internal fill:#eee,stroke:#999,stroke-dasharray:3 3\n")
	b.WriteString("  classDef store fill:#efe,stroke:#696\n")
	return b.String()
}

// mermaidText escapes s for a quoted Mermaid label: quotes and angle
// brackets become entity codes, so that names (and the app id
// placeholder) show as written.
func mermaidText(s string) string {
	return strings.NewReplacer(`"`, "#quot;", "<", "#lt;", ">", "#gt;", "&", "#amp;").Replace(s)
}
