package duality_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
	"github.com/duality-streams/duality/window"
)

// TestAppDescribe: App.Describe is the topology's description with the
// app id in place of the placeholder, and it names the internal topics
// as the running app creates them on the broker, with the cleanup policy
// and retention it gives them.
func TestAppDescribe(t *testing.T) {
	b := stream.NewBuilder()
	clicks := stream.From(b, "clicks", codec.String(), codec.String())
	byPage := stream.GroupBy(clicks, func(_, page string) string { return page }, stream.Named("by-page"))
	table.Count(byPage, "page-counts").ToStream().To("page-counts")
	window.Count(byPage, window.Tumbling(time.Minute, 10*time.Second), "clicks-1m")
	topo, err := b.Build()
	require.NoError(t, err)

	brk := openBroker(t)
	createTopic(t, brk, "clicks", 2)
	createTopic(t, brk, "page-counts", 2)
	app, err := duality.New("shop", topo, brk)
	require.NoError(t, err)
	desc := app.Describe()
	require.Equal(t, strings.ReplaceAll(topo.Describe(), "<app-id>", "shop"), desc)
	require.NotContains(t, desc, "<app-id>")
	for _, line := range []string{
		"    Sink: by-page-sink (topic: shop-by-page-repartition)\n",
		"    Source: by-page-source (topics: [shop-by-page-repartition])\n",
		"  Internal topics\n    shop-by-page-repartition (partitions: as many as its writer's sources, cleanup: delete, written by sub-topology 0)\n",
		"    page-counts (sub-topology 1, changelog: shop-page-counts-changelog, cleanup: compact)\n",
		"    clicks-1m (sub-topology 1, changelog: shop-clicks-1m-changelog, cleanup: compact,delete, retention: 24h1m10s)\n",
	} {
		require.Contains(t, desc, line)
	}

	// Once a record went through, the app has created its internal topics:
	// each is on the broker under the name and with the configuration the
	// description gives.
	stop, _ := runApp(t, app)
	require.NoError(t, brk.Produce(t.Context(), []broker.Record{{Topic: "clicks", Partition: broker.PartitionByKey, Key: []byte("ann"), Value: []byte("/home")}}))
	awaitRecords(t, brk, "page-counts", 1)
	require.NoError(t, stop())
	topics := regexp.MustCompile(`(?m)^    (shop-[\w.-]+) \(partitions: .*, cleanup: (\w+),`).FindAllStringSubmatch(desc, -1)
	changelogs := regexp.MustCompile(`(?m)changelog: (shop-[\w.-]+), cleanup: ([\w,]+)(?:, retention: (\w+))?\)$`).FindAllStringSubmatch(desc, -1)
	require.Len(t, topics, 1)
	require.Len(t, changelogs, 2)
	for _, m := range append(topics, changelogs...) {
		info, err := brk.DescribeTopic(t.Context(), m[1])
		require.NoError(t, err, m[1])
		require.Equal(t, m[2], info.Config.Cleanup.String(), m[1])
		if len(m) > 3 && m[3] != "" {
			require.Equal(t, m[3], info.Config.RetentionTime.String(), m[1])
		}
	}
}

// TestTopologyTopic checks that Run publishes the app's descriptions to
// its topology topic, and that New refuses a topology that reads or
// writes that topic.
func TestTopologyTopic(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "in", 1)
	createTopic(t, b, "out", 1)
	sb := stream.NewBuilder()
	stream.From(sb, "in", codec.String(), codec.String()).To("out")
	topo, err := sb.Build()
	require.NoError(t, err)
	app, err := duality.New("pub", topo, b)
	require.NoError(t, err)
	require.NoError(t, app.RunToEnd(t.Context()))
	info, err := b.DescribeTopic(t.Context(), "pub-topology")
	require.NoError(t, err)
	require.Equal(t, int32(1), info.Config.Partitions)
	require.Equal(t, broker.CleanupCompact, info.Config.Cleanup)
	got := map[string]string{}
	for _, r := range readTopic(t, b, "pub-topology") {
		got[string(r.Key)] = string(r.Value)
	}
	require.Equal(t, map[string]string{"text": app.Describe(), "mermaid": app.Mermaid()}, got)

	sb = stream.NewBuilder()
	stream.From(sb, "in", codec.String(), codec.String()).To("pub-topology")
	topo, err = sb.Build()
	require.NoError(t, err)
	_, err = duality.New("pub", topo, b)
	require.ErrorIs(t, err, duality.ErrInvalidTopology)
	require.ErrorContains(t, err, `topic "pub-topology" is where the app publishes its topology`)
}

// TestAppGraph: the graph of a topology with a global table, a split, a
// sink choosing its topic per record and a foreign-key join names every
// node once, links only nodes it has, and is what Mermaid draws: each
// node and edge of the graph is a line of the flowchart.
func TestAppGraph(t *testing.T) {
	b := stream.NewBuilder()
	orders := stream.From(b, "orders", codec.String(), codec.String())
	names := table.Global(b, "products", codec.String(), codec.String(), "product-names", stream.Named("products-table"))
	joined := table.JoinGlobal(orders, names, func(_, v string) string { return v },
		func(_, _, name string) string { return name }, stream.Named("with-name"))
	br := joined.Split(stream.Named("by-size"))
	br.Branch("big", func(_, v string) bool { return len(v) > 3 }).
		ToFunc(func(k, _ string, _ stream.RecordContext) string { return "out-" + k }, stream.Named("per-key"))
	br.Branch("small", func(string, string) bool { return true }).To("small-orders", stream.Named("write-small"))
	emps := table.From(b, "employees", codec.String(), codec.String(), "employees")
	depts := table.From(b, "departments", codec.String(), codec.String(), "departments")
	table.JoinByForeignKey(emps, depts, func(v string) string { return v }, func(v, d string) string { return v + d },
		"emp-depts", stream.Named("emp-dept")).ToStream().To("emp-depts", stream.Named("write-emp-depts"))
	topo, err := b.Build()
	require.NoError(t, err)
	app, err := duality.New("shop", topo, openBroker(t))
	require.NoError(t, err)

	g := app.Graph()
	require.Equal(t, topo.Graph().Nodes[0], g.Nodes[0])
	kinds := map[string]string{}
	for _, n := range g.Nodes {
		require.NotContains(t, kinds, n.ID, "node ids are unique")
		kinds[n.ID] = n.Kind
		require.Regexp(t, `^[nstg]\d+$`, n.ID)
		require.NotContains(t, n.Name, "<app-id>", "the app's topic names")
	}
	for _, want := range []struct{ name, kind string }{
		{"product-names", "global-store"}, {"products", "topic"}, {"per-key", "sink"},
		{"employees", "store"}, {"emp-depts", "store"}, {"write-emp-depts", "sink"},
	} {
		found := false
		for _, n := range g.Nodes {
			found = found || (n.Name == want.name && n.Kind == want.kind)
		}
		require.True(t, found, "%+v", want)
	}
	internal := 0
	for _, n := range g.Nodes {
		if n.Kind == "internal-topic" {
			internal++
			require.True(t, strings.HasPrefix(n.Name, "shop-"), n.Name)
		}
	}
	require.GreaterOrEqual(t, internal, 4, "changelogs and the foreign-key join's topics")
	mermaid := app.Mermaid()
	links := map[string]string{"records": "-->", "store": "-.-", "changelog": "-. changelog .->", "feeds": "-.->"}
	for _, e := range g.Edges {
		require.Contains(t, kinds, e.From)
		require.Contains(t, kinds, e.To)
		require.Contains(t, mermaid, "  "+e.From+" "+links[e.Kind]+" "+e.To+"\n")
	}
	for id := range kinds {
		require.Regexp(t, `(?m)^ +`+id+`[\[(]`, mermaid)
	}
	require.Contains(t, mermaid, "global store</i><br/>products-table")
	require.Contains(t, mermaid, "topic chosen per record")
}
