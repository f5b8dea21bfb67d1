package duality_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/topology"
)

// TestInternalTopicPartitionsLike: an internal topic declared with
// PartitionsLike (as a foreign-key join's subscription and response topics
// are) gets the partition count of that topic, not of its writer's
// sources, so a stateful sub-topology that reads both is co-partitioned.
// (Build and dsl.Wrap refuse a PartitionsLike topic that no source reads:
// internal/dsl TestValidate.)
func TestInternalTopicPartitionsLike(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "a", 2)
	createTopic(t, b, "b", 5)
	createTopic(t, b, "out", 1)
	forward := func(ctx context.Context, env topology.TaskEnv, rec *broker.Record) error {
		return env.Send(ctx, broker.Record{Topic: env.TopicName("x", true), Partition: broker.PartitionByKey, Key: rec.Key, Value: rec.Value})
	}
	out, done := counting(10, prefixTo("out"))
	topo := wrap(t, &topology.Topology{
		SubTopologies: []*topology.SubTopology{
			{ID: 0, Sources: []topology.Source{{Topic: "a"}}, Sinks: []topology.Sink{{Topic: "x", Internal: true}},
				NewTask: func(env topology.TaskEnv) (topology.Processor, error) {
					return &procFunc{env: env, process: forward}, nil
				}},
			{ID: 1, Sources: []topology.Source{{Topic: "b"}, {Topic: "x", Internal: true}}, Sinks: []topology.Sink{{Topic: "out"}},
				Stores:  []topology.StoreSpec{{Name: "s"}},
				NewTask: func(env topology.TaskEnv) (topology.Processor, error) { return &procFunc{env: env, process: out}, nil }},
		},
		InternalTopics: []topology.InternalTopic{{Name: "x", WrittenBy: 0, PartitionsLike: &topology.Source{Topic: "b"}}},
	})
	app, err := duality.New("like", topo, b)
	require.NoError(t, err)
	produceN(t, b, "a", 0, 10)
	stop, _ := runApp(t, app)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		require.FailNow(t, "the app did not process the input")
	}
	require.NoError(t, stop())
	info, err := b.DescribeTopic(t.Context(), "like-x")
	require.NoError(t, err)
	require.Equal(t, int32(5), info.Config.Partitions)
}
