package duality_test

import (
	"fmt"
	"log"
	"os"
	"time"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/window"
)

// Describe a windowed count as the app "clicks" runs it: the repartition
// topic and the store's changelog carry the app id, the aggregation shows
// its windows, the retention of its store and when it emits, and the
// changelog drops expired windows by time (compact,delete).
func ExampleApp_Describe() {
	dir, err := os.MkdirTemp("", "duality-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	brk, err := embedded.Open(dir)
	if err != nil {
		log.Fatal(err)
	}
	defer brk.Close()

	b := stream.NewBuilder()
	views := stream.From(b, "page-views", codec.String(), codec.String())
	byPage := stream.GroupBy(views, func(_, page string) string { return page }, stream.Named("by-page"))
	window.Count(byPage, window.Tumbling(time.Minute, 10*time.Second), "views-1m",
		stream.Named("count-views"), window.EmitOnWindowClose()).
		ToStream().To("views-per-minute", stream.Named("write-views"))
	topo, err := b.Build()
	if err != nil {
		log.Fatal(err)
	}
	app, err := duality.New("clicks", topo, brk)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(app.Describe())
	// Output:
	// Topology
	//   Sub-topology 0
	//     Source: source-0 (topics: [page-views])
	//       --> by-page-key
	//     Processor: by-page-key (select-key)
	//       --> by-page-sink
	//       <-- source-0
	//     Sink: by-page-sink (topic: clicks-by-page-repartition)
	//       <-- by-page-key
	//   Sub-topology 1
	//     Source: by-page-source (topics: [clicks-by-page-repartition])
	//       --> count-views
	//     Processor: count-views (windowed-count, stores: [views-1m])
	//       windows: tumbling(size 1m0s, grace 10s), retention 1m10s, emit: on window close
	//       --> write-views
	//       <-- by-page-source
	//     Sink: write-views (topic: views-per-minute)
	//       <-- count-views
	//   Internal topics
	//     clicks-by-page-repartition (partitions: as many as its writer's sources, cleanup: delete, written by sub-topology 0)
	//   Stores
	//     views-1m (sub-topology 1, changelog: clicks-views-1m-changelog, cleanup: compact,delete, retention: 24h1m10s)
}

// Draw a windowed count as a Mermaid flowchart (paste it into a
// ```mermaid block on GitHub): the sub-topologies with their steps, the
// repartition topic between them, the store and its changelog, and the
// windows' size and grace.
func ExampleApp_Mermaid() {
	dir, err := os.MkdirTemp("", "duality-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	brk, err := embedded.Open(dir)
	if err != nil {
		log.Fatal(err)
	}
	defer brk.Close()

	b := stream.NewBuilder()
	views := stream.From(b, "page-views", codec.String(), codec.String())
	byPage := stream.GroupBy(views, func(_, page string) string { return page }, stream.Named("by-page"))
	window.Count(byPage, window.Tumbling(time.Minute, 10*time.Second), "views-1m",
		stream.Named("count-views"), window.EmitOnWindowClose()).
		ToStream().To("views-per-minute", stream.Named("write-views"))
	topo, err := b.Build()
	if err != nil {
		log.Fatal(err)
	}
	app, err := duality.New("clicks", topo, brk)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(app.Mermaid())
	// Output:
	// flowchart TD
	//   subgraph sub0["Sub-topology 0"]
	//     n0["source-0<br/><i>source</i>"]
	//     n1["by-page-key<br/><i>select-key</i>"]
	//     n2["by-page-sink<br/><i>sink</i>"]
	//   end
	//   subgraph sub1["Sub-topology 1"]
	//     n3["by-page-source<br/><i>source</i>"]
	//     n4["count-views<br/><i>windowed-count</i><br/>windows: tumbling(size 1m0s, grace 10s), retention 1m10s, emit: on window close"]
	//     s0[("views-1m")]:::store
	//     n5["write-views<br/><i>sink</i>"]
	//   end
	//   t0[/"page-views"/]:::topic
	//   t1[/"clicks-by-page-repartition"/]:::internal
	//   t2[/"views-per-minute"/]:::topic
	//   t3[/"clicks-views-1m-changelog"/]:::internal
	//   n4 -.- s0
	//   t0 --> n0
	//   n0 --> n1
	//   n1 --> n2
	//   n2 --> t1
	//   t1 --> n3
	//   n3 --> n4
	//   n4 --> n5
	//   n5 --> t2
	//   s0 -. changelog .-> t3
	//   classDef topic fill:#eef,stroke:#669
	//   classDef internal fill:#eee,stroke:#999,stroke-dasharray:3 3
	//   classDef store fill:#efe,stroke:#696
}

// The same windowed count as nodes and edges, for a program that draws
// or checks a topology itself (package debughttp's page draws it): the
// ids are those of the Mermaid flowchart.
func ExampleApp_Graph() {
	dir, err := os.MkdirTemp("", "duality-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	brk, err := embedded.Open(dir)
	if err != nil {
		log.Fatal(err)
	}
	defer brk.Close()

	b := stream.NewBuilder()
	views := stream.From(b, "page-views", codec.String(), codec.String())
	byPage := stream.GroupBy(views, func(_, page string) string { return page }, stream.Named("by-page"))
	window.Count(byPage, window.Tumbling(time.Minute, 10*time.Second), "views-1m",
		stream.Named("count-views"), window.EmitOnWindowClose()).
		ToStream().To("views-per-minute", stream.Named("write-views"))
	topo, err := b.Build()
	if err != nil {
		log.Fatal(err)
	}
	app, err := duality.New("clicks", topo, brk)
	if err != nil {
		log.Fatal(err)
	}
	g := app.Graph()
	for _, n := range g.Nodes {
		fmt.Printf("%s %s %q sub-topology %d\n", n.ID, n.Kind, n.Name, n.SubTopology)
	}
	for _, e := range g.Edges {
		fmt.Printf("%s -%s-> %s\n", e.From, e.Kind, e.To)
	}
	// Output:
	// n0 source "source-0" sub-topology 0
	// n1 processor "by-page-key" sub-topology 0
	// n2 sink "by-page-sink" sub-topology 0
	// n3 source "by-page-source" sub-topology 1
	// n4 processor "count-views" sub-topology 1
	// s0 store "views-1m" sub-topology 1
	// n5 sink "write-views" sub-topology 1
	// t0 topic "page-views" sub-topology -1
	// t1 internal-topic "clicks-by-page-repartition" sub-topology -1
	// t2 topic "views-per-minute" sub-topology -1
	// t3 internal-topic "clicks-views-1m-changelog" sub-topology -1
	// n4 -store-> s0
	// t0 -records-> n0
	// n0 -records-> n1
	// n1 -records-> n2
	// n2 -records-> t1
	// t1 -records-> n3
	// n3 -records-> n4
	// n4 -records-> n5
	// n5 -records-> t2
	// s0 -changelog-> t3
}
