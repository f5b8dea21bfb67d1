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
