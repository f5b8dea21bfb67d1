package duality_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
)

// TestStreamRepartition runs a topology built with the stream DSL: clicks
// keyed by user are re-keyed by page and repartitioned through an internal
// topic whose partition count the runtime resolves (or takes from
// stream.Partitions), then written out.
func TestStreamRepartition(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []stream.Option
		want int32
	}{
		{"resolved from the sources", nil, 3},
		{"declared", []stream.Option{stream.Partitions(5)}, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := openBroker(t)
			createTopic(t, b, "clicks", 3)
			createTopic(t, b, "pages", 2)
			const n = 600
			var recs []broker.Record
			for i := range n {
				recs = append(recs, broker.Record{
					Topic: "clicks", Partition: broker.PartitionByKey,
					Key: fmt.Appendf(nil, "user-%d", i%7), Value: fmt.Appendf(nil, "/page-%d#%d", i%11, i),
				})
			}
			require.NoError(t, b.Produce(t.Context(), recs))

			sb := stream.NewBuilder()
			clicks := stream.From(sb, "clicks", codec.String(), codec.String())
			byPage := stream.SelectKey(clicks, func(_, v string) string { return v[:strings.IndexByte(v, '#')] })
			opts := append([]stream.Option{stream.Named("by-page")}, tc.opts...)
			stream.MapValues(byPage.Repartition(opts...), strings.ToUpper).
				To("pages")
			topo, err := sb.Build()
			require.NoError(t, err)

			app, err := duality.New("pv", topo, b, duality.CommitInterval(2*time.Millisecond))
			require.NoError(t, err)
			stop, _ := runApp(t, app)
			awaitRecords(t, b, "pages", n)
			require.NoError(t, stop())

			info, err := b.DescribeTopic(t.Context(), "pv-by-page-repartition")
			require.NoError(t, err)
			require.Equal(t, tc.want, info.Config.Partitions)
			for _, r := range readTopic(t, b, "pv-by-page-repartition") {
				require.Equal(t, broker.KeyPartition(r.Key, tc.want), r.Partition, "repartitioned by key")
			}
			seen := map[string]int{}
			for _, r := range readTopic(t, b, "pages") {
				seen[string(r.Value)]++
				require.True(t, strings.HasPrefix(string(r.Value), strings.ToUpper(string(r.Key))+"#"))
			}
			require.Len(t, seen, n)
			for i := range n {
				require.Equal(t, 1, seen[fmt.Sprintf("/PAGE-%d#%d", i%11, i)])
			}
			require.EqualValues(t, 2*n, app.Metrics().RecordsProcessed, "each record processed once per sub-topology")
		})
	}
}
