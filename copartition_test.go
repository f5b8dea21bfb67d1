package duality_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
)

// TestJoinNeedsCoPartitionedTopics: a stream-table join reads both topics
// in one task per partition, so topics with different partition counts
// would join records of one key against the wrong task's table. Run
// refuses it before processing anything; a stateless merge of the same
// topics is fine.
func TestJoinNeedsCoPartitionedTopics(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "orders", 2)
	createTopic(t, b, "customers", 3)
	createTopic(t, b, "enriched", 1)
	produceN(t, b, "orders", 0, 10)

	sb := stream.NewBuilder()
	orders := stream.From(sb, "orders", codec.String(), codec.String())
	customers := table.From(sb, "customers", codec.String(), codec.String(), "customers")
	table.Join(orders, customers, func(_, o, c string) string { return o + "/" + c }).To("enriched")
	topo, err := sb.Build()
	require.NoError(t, err)
	app, err := duality.New("join", topo, b)
	require.NoError(t, err)
	err = app.Run(t.Context())
	require.ErrorIs(t, err, stream.ErrNotCoPartitioned)
	require.ErrorContains(t, err, "orders: 2")
	require.ErrorContains(t, err, "customers: 3")
	require.Empty(t, readTopic(t, b, "enriched"))

	sb = stream.NewBuilder()
	stream.From(sb, "orders", codec.String(), codec.String()).
		Merge(stream.From(sb, "customers", codec.String(), codec.String())).
		To("enriched")
	topo, err = sb.Build()
	require.NoError(t, err)
	app, err = duality.New("merge", topo, b)
	require.NoError(t, err)
	stop, _ := runApp(t, app)
	awaitRecords(t, b, "enriched", 10)
	require.NoError(t, stop())
}
