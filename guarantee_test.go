package duality_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
)

func TestProcessingGuaranteeInvalid(t *testing.T) {
	b := newKafkaBroker(t)
	_, err := duality.New("g", kafkaCountTopology(t), b, duality.ProcessingGuarantee(duality.Guarantee(7)))
	require.ErrorIs(t, err, duality.ErrInvalidConfig)
	require.ErrorContains(t, err, "ProcessingGuarantee(Guarantee(7))")
	require.Equal(t, "exactly_once_v2", duality.ExactlyOnce.String())
	require.Equal(t, "at_least_once", duality.AtLeastOnce.String())
}

// TestKafkaRunToEndAtLeastOnce is TestKafkaRunToEnd under AtLeastOnce:
// without a crash the counts are exact, across a restart on a fresh
// state directory (the store restored from its changelog). The commits
// are plain appends, not transactions: every partition of the output
// holds records at contiguous offsets from 0, where a transaction's
// commit marker would take an offset.
func TestKafkaRunToEndAtLeastOnce(t *testing.T) {
	b, addrs := newKafkaCluster(t)
	createTopic(t, b, kafkaWords, 4)
	createTopic(t, b, kafkaCounts, 4)
	model := map[string]int64{}
	newApp := func() *duality.App {
		app, err := duality.New("kafka-count", kafkaCountTopology(t), b,
			duality.ProcessingGuarantee(duality.AtLeastOnce),
			duality.StateDir(t.TempDir()), duality.CacheMaxBytes(0), duality.Workers(2),
			duality.CommitInterval(50*time.Millisecond), duality.FetchMaxRecords(20))
		require.NoError(t, err)
		return app
	}

	produceKafkaWords(t, b, 0, 1500, model)
	runToEnd(t, newApp())
	requireKafkaCounts(t, b, model)
	requireGroupEmpty(t, addrs, "kafka-count")

	produceKafkaWords(t, b, 1500, 2500, model)
	runToEnd(t, newApp())
	requireKafkaCounts(t, b, model)

	next := map[int32]int64{}
	for _, r := range readTopic(t, b, kafkaCounts) {
		require.Equal(t, next[r.Partition], r.Offset, "%s/%d: offsets without commit markers", r.Topic, r.Partition)
		next[r.Partition]++
	}
}
