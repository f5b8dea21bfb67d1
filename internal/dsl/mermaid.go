package dsl

import (
	"fmt"
	"strings"
)

// Mermaid returns the topology as a Mermaid flowchart (GitHub renders it
// in a ```mermaid block), drawn from [Topology.Graph]: one subgraph per sub-topology with its steps
// (name, operation and, on a second line, the step's [Node.Detail], such
// as a window's size and grace) and their edges; the topics as
// parallelograms, external ones as read and written, internal ones
// (repartition, foreign-key join, changelog; class internal) named as
// the runtime of the app appID names them ([AppIDPlaceholder] for "");
// the stores as cylinders, linked to the steps that use them and to
// their changelogs; the global stores fed by their topics and linked to
// the steps that read them. It returns "" when [Topology.Describe] does.
func (t *Topology) Mermaid(appID string) string {
	g := t.Graph(appID)
	if g.Nodes == nil {
		return ""
	}
	toTopic := map[string]bool{} // steps with an edge to a topic
	topics := map[string]bool{}
	for _, n := range g.Nodes {
		topics[n.ID] = n.Kind == GraphTopic || n.Kind == GraphInternalTopic
	}
	for _, e := range g.Edges {
		if e.Kind == EdgeRecords && topics[e.To] {
			toTopic[e.From] = true
		}
	}
	var b strings.Builder
	b.WriteString("flowchart TD\n")
	sub := -1
	for _, n := range g.Nodes {
		if n.SubTopology != sub {
			if sub >= 0 {
				b.WriteString("  end\n")
			}
			if sub = n.SubTopology; sub >= 0 {
				fmt.Fprintf(&b, "  subgraph sub%d[\"Sub-topology %d\"]\n", sub, sub)
			}
		}
		indent := "  "
		if sub >= 0 {
			indent = "    "
		}
		switch n.Kind {
		case GraphTopic, GraphInternalTopic:
			class := "topic"
			if n.Kind == GraphInternalTopic {
				class = "internal"
			}
			fmt.Fprintf(&b, "%s%s[/\"%s\"/]:::%s\n", indent, n.ID, mermaidText(n.Name), class)
		case GraphStore:
			fmt.Fprintf(&b, "%s%s[(\"%s\")]:::store\n", indent, n.ID, mermaidText(n.Name))
		case GraphGlobalStore:
			label := mermaidText(n.Name) + "<br/><i>global store</i>"
			if n.Detail != "" {
				label += "<br/>" + mermaidText(n.Detail)
			}
			fmt.Fprintf(&b, "%s%s[(\"%s\")]:::store\n", indent, n.ID, label)
		default:
			label := mermaidText(n.Name)
			if n.Op != "" && n.Op != n.Name {
				label += "<br/><i>" + mermaidText(n.Op) + "</i>"
			}
			if n.Kind == GraphSink && !toTopic[n.ID] {
				label += "<br/>topic chosen per record"
			}
			if n.Detail != "" {
				label += "<br/>" + mermaidText(n.Detail)
			}
			fmt.Fprintf(&b, "%s%s[\"%s\"]\n", indent, n.ID, label)
		}
	}
	if sub >= 0 {
		b.WriteString("  end\n")
	}
	for _, e := range g.Edges {
		link := "-->"
		switch e.Kind {
		case EdgeStore:
			link = "-.-"
		case EdgeChangelog:
			link = "-. changelog .->"
		case EdgeFeeds:
			link = "-.->"
		}
		fmt.Fprintf(&b, "  %s %s %s\n", e.From, link, e.To)
	}
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
