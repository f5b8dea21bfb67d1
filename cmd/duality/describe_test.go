package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/window"
)

// TestDescribe runs an app to the end of its (empty) input on each
// backend, then shows its topology with the binary, as text and as
// Mermaid: what App.Describe and App.Mermaid give.
func TestDescribe(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be backend) {
		b, closeBroker := be.open(t)
		for _, topic := range []string{"page-views", "views-per-minute"} {
			require.NoError(t, b.CreateTopic(t.Context(), topic, broker.TopicConfig{Partitions: 2}))
		}
		sb := stream.NewBuilder()
		views := stream.From(sb, "page-views", codec.String(), codec.String())
		byPage := stream.GroupBy(views, func(_, page string) string { return page }, stream.Named("by-page"))
		window.Count(byPage, window.Tumbling(time.Minute, 10*time.Second), "views-1m", stream.Named("count-views")).
			ToStream().To("views-per-minute")
		topo, err := sb.Build()
		require.NoError(t, err)
		app, err := duality.New("clicks", topo, b)
		require.NoError(t, err)
		require.NoError(t, app.RunToEnd(t.Context()))
		closeBroker()

		require.Equal(t, app.Describe(), ok(t, "", be.args("describe", "clicks")...))
		mermaid := ok(t, "", be.args("describe", "clicks", "--format", "mermaid")...)
		require.Equal(t, app.Mermaid(), mermaid)
		require.Contains(t, mermaid, "flowchart TD")
		require.Contains(t, mermaid, "tumbling(size 1m0s, grace 10s)")
		require.Contains(t, mermaid, `"clicks-by-page-repartition"`)
		require.Contains(t, mermaid, `"clicks-views-1m-changelog"`)

		r := runDuality(t, "", be.args("describe", "nope")...)
		require.Equal(t, 1, r.code)
		require.Contains(t, r.stderr, "app nope has published no topology: topic nope-topology does not exist")
		r = runDuality(t, "", be.args("describe", "clicks", "--format", "dot")...)
		require.Equal(t, 2, r.code)
		require.Contains(t, r.stderr, `--format "dot": use text or mermaid`)
		r = runDuality(t, "", be.args("describe")...)
		require.Equal(t, 2, r.code)
	})
}
