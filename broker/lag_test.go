package broker_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
)

func TestGroupLag(t *testing.T) {
	ctx := t.Context()
	b, err := embedded.Open(t.TempDir(), embedded.WithCleanupInterval(-1))
	require.NoError(t, err)
	defer b.Close()
	require.NoError(t, b.CreateTopic(ctx, "a", broker.TopicConfig{Partitions: 2}))
	require.NoError(t, b.CreateTopic(ctx, "b", broker.TopicConfig{Partitions: 1}))
	var recs []broker.Record
	for i := range 10 {
		recs = append(recs, broker.Record{Topic: "a", Partition: int32(i % 2), Value: []byte("v")})
	}
	recs = append(recs, broker.Record{Topic: "b", Value: []byte("v")}, broker.Record{Topic: "b", Value: []byte("v")})
	require.NoError(t, b.Produce(ctx, recs))

	lag, err := broker.GroupLag(ctx, b, "g", "a", "b")
	require.NoError(t, err)
	require.Equal(t, int64(12), lag, "a group without offsets lags by everything")

	require.NoError(t, b.CommitOffsets(ctx, "g", map[broker.TopicPartition]int64{
		{Topic: "a", Partition: 0}: 5, {Topic: "a", Partition: 1}: 2, {Topic: "b"}: 2,
	}))
	lag, err = broker.GroupLag(ctx, b, "g", "a", "b")
	require.NoError(t, err)
	require.Equal(t, int64(3), lag)
	lag, err = broker.GroupLag(ctx, b, "g", "b")
	require.NoError(t, err)
	require.Zero(t, lag)

	_, err = broker.GroupLag(ctx, b, "g", "missing")
	require.ErrorIs(t, err, broker.ErrUnknownTopic)
}
