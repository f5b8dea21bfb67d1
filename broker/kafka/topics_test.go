package kafka_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/kafka"
)

// TestTopicConfigRoundTrip creates topics of every cleanup policy and
// checks what the cluster stores (read with kadm, as another tool would)
// and what DescribeTopic reads back.
func TestTopicConfigRoundTrip(t *testing.T) {
	c := newCluster(t)
	b := newBroker(t, c)
	ctx := t.Context()
	adm := newAdmin(t, c)
	for _, tc := range []struct {
		name  string
		cfg   broker.TopicConfig
		kafka map[string]string
		want  broker.TopicConfig
	}{
		{"defaults", broker.TopicConfig{Partitions: 3},
			map[string]string{"cleanup.policy": "delete", "retention.ms": "604800000", "retention.bytes": "-1", "delete.retention.ms": "86400000"},
			broker.TopicConfig{Partitions: 3, Cleanup: broker.CleanupDelete, RetentionTime: broker.DefaultRetentionTime, RetentionBytes: -1, DeleteRetention: broker.DefaultDeleteRetention}},
		{"changelog", broker.TopicConfig{Partitions: 2, Cleanup: broker.CleanupCompact, RetentionTime: -1},
			map[string]string{"cleanup.policy": "compact", "retention.ms": "-1", "retention.bytes": "-1", "delete.retention.ms": "86400000"},
			broker.TopicConfig{Partitions: 2, Cleanup: broker.CleanupCompact, RetentionTime: -time.Millisecond, RetentionBytes: -1, DeleteRetention: broker.DefaultDeleteRetention}},
		{"compactDefault", broker.TopicConfig{Partitions: 1, Cleanup: broker.CleanupCompact},
			map[string]string{"cleanup.policy": "compact", "retention.ms": "-1", "retention.bytes": "-1", "delete.retention.ms": "86400000"},
			broker.TopicConfig{Partitions: 1, Cleanup: broker.CleanupCompact, RetentionTime: -time.Millisecond, RetentionBytes: -1, DeleteRetention: broker.DefaultDeleteRetention}},
		{"windowed", broker.TopicConfig{Partitions: 1, Cleanup: broker.CleanupCompactDelete, RetentionTime: 90 * time.Minute, RetentionBytes: 1 << 30, DeleteRetention: time.Hour},
			map[string]string{"cleanup.policy": "compact,delete", "retention.ms": "5400000", "retention.bytes": "1073741824", "delete.retention.ms": "3600000"},
			broker.TopicConfig{Partitions: 1, Cleanup: broker.CleanupCompactDelete, RetentionTime: 90 * time.Minute, RetentionBytes: 1 << 30, DeleteRetention: time.Hour}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, b.CreateTopic(ctx, tc.name, tc.cfg))
			rcs, err := adm.DescribeTopicConfigs(ctx, tc.name)
			require.NoError(t, err)
			rc, err := rcs.On(tc.name, nil)
			require.NoError(t, err)
			got := map[string]string{}
			for _, cfg := range rc.Configs {
				if _, ok := tc.kafka[cfg.Key]; ok {
					got[cfg.Key] = cfg.MaybeValue()
				}
			}
			require.Equal(t, tc.kafka, got, "configs stored in the cluster")
			info, err := b.DescribeTopic(ctx, tc.name)
			require.NoError(t, err)
			require.Equal(t, broker.TopicInfo{Name: tc.name, Config: tc.want}, info)
		})
	}

	// A topic created by another tool, with other configs, is described
	// as it is, so the runtime's check of its internal topics sees a
	// mismatch.
	_, err := adm.CreateTopic(ctx, 4, -1, map[string]*string{
		"cleanup.policy": kadm.StringPtr("delete,compact"),
		"retention.ms":   kadm.StringPtr("1000"),
	}, "foreign")
	require.NoError(t, err)
	info, err := b.DescribeTopic(ctx, "foreign")
	require.NoError(t, err)
	require.Equal(t, int32(4), info.Config.Partitions)
	require.Equal(t, broker.CleanupCompactDelete, info.Config.Cleanup)
	require.Equal(t, time.Second, info.Config.RetentionTime)
}

func TestTopicConfigInvalid(t *testing.T) {
	b := newBroker(t, newCluster(t))
	ctx := t.Context()
	for name, cfg := range map[string]broker.TopicConfig{
		"policy":          {Partitions: 1, Cleanup: broker.CleanupPolicy(9)},
		"deleteRetention": {Partitions: 1, DeleteRetention: -time.Second},
		"subMillisecond":  {Partitions: 1, RetentionTime: time.Microsecond},
	} {
		err := b.CreateTopic(ctx, "t-"+name, cfg)
		require.ErrorIs(t, err, broker.ErrInvalidConfig, name)
	}
	topics, err := b.ListTopics(ctx)
	require.NoError(t, err)
	require.Empty(t, topics, "nothing was created")
}

func TestNewOptions(t *testing.T) {
	c := newCluster(t)
	ctx := t.Context()
	_, err := kafka.New(ctx, nil, kafka.WithReplicationFactor(0), kafka.WithTransactionTimeout(time.Millisecond), kafka.WithMetadataMaxAge(0), kafka.WithLogger(nil))
	require.Error(t, err)
	for _, want := range []string{"no seed brokers", "replication factor 0", "transaction timeout 1ms", "metadata max age 0s", "nil logger"} {
		require.ErrorContains(t, err, want, "every problem is reported at once")
	}
	for _, opt := range []kgo.Opt{kgo.ConsumerGroup("g"), kgo.ConsumeTopics("t"), kgo.TransactionalID("x")} {
		_, err := kafka.New(ctx, c.ListenAddrs(), kafka.WithClientOptions(opt))
		require.ErrorContains(t, err, "invalid client options")
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err = kafka.New(short, []string{"127.0.0.1:1"})
	require.ErrorContains(t, err, "does not answer")
}

func newAdmin(t testing.TB, c interface{ ListenAddrs() []string }) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}
