package brokertest

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
)

var topicCases = []testCase{
	{"Topics/CreateListDescribe", testCreateListDescribe},
	{"Topics/CreateExisting", testCreateExisting},
	{"Topics/Unknown", testUnknownTopic},
	{"Topics/InvalidName", testInvalidTopicName},
	{"Topics/InvalidPartitions", testInvalidPartitions},
	{"Topics/DeleteRecreate", testDeleteRecreate},
}

func testCreateListDescribe(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	topics, err := b.ListTopics(ctx)
	require.NoError(t, err)
	require.Empty(t, topics, "a fresh broker has no topics")

	// Created out of name order: ListTopics sorts.
	compact := broker.TopicConfig{
		Partitions:      1,
		Cleanup:         broker.CleanupCompact,
		RetentionTime:   -1,
		RetentionBytes:  1 << 20,
		DeleteRetention: time.Hour,
	}
	require.NoError(t, b.CreateTopic(ctx, "zeta", compact))
	require.NoError(t, b.CreateTopic(ctx, "alpha", broker.TopicConfig{Partitions: 3}))
	longName := strings.Repeat("x", broker.MaxTopicNameLen)
	require.NoError(t, b.CreateTopic(ctx, "a.b_c-9", broker.TopicConfig{Partitions: 2, RetentionTime: time.Hour}))
	require.NoError(t, b.CreateTopic(ctx, longName, broker.TopicConfig{Partitions: 1}))

	alpha, err := b.DescribeTopic(ctx, "alpha")
	require.NoError(t, err)
	require.Equal(t, "alpha", alpha.Name)
	require.Equal(t, int32(3), alpha.Config.Partitions)
	require.Equal(t, broker.CleanupDelete, alpha.Config.Cleanup)
	require.Equal(t, broker.DefaultRetentionTime, alpha.Config.RetentionTime, "default retention time applied")
	require.LessOrEqual(t, alpha.Config.RetentionBytes, int64(0), "no size limit by default")
	require.Equal(t, broker.DefaultDeleteRetention, alpha.Config.DeleteRetention, "default delete retention applied")

	zeta, err := b.DescribeTopic(ctx, "zeta")
	require.NoError(t, err)
	require.Equal(t, "zeta", zeta.Name)
	require.Equal(t, int32(1), zeta.Config.Partitions)
	require.Equal(t, broker.CleanupCompact, zeta.Config.Cleanup)
	require.Less(t, zeta.Config.RetentionTime, time.Duration(0), "negative retention (forever) is kept")
	require.Equal(t, int64(1<<20), zeta.Config.RetentionBytes)
	require.Equal(t, time.Hour, zeta.Config.DeleteRetention)

	dotted, err := b.DescribeTopic(ctx, "a.b_c-9")
	require.NoError(t, err)
	require.Equal(t, int32(2), dotted.Config.Partitions)
	require.Equal(t, time.Hour, dotted.Config.RetentionTime)

	topics, err = b.ListTopics(ctx)
	require.NoError(t, err)
	var names []string
	for _, ti := range topics {
		names = append(names, ti.Name)
		want, err := b.DescribeTopic(ctx, ti.Name)
		require.NoError(t, err)
		require.Equal(t, want, ti, "ListTopics and DescribeTopic agree on %q", ti.Name)
	}
	require.Equal(t, []string{"a.b_c-9", "alpha", longName, "zeta"}, names, "ListTopics sorts by name")
}

func testCreateExisting(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	createTopic(t, b, "t", 2)
	err := b.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: 5})
	require.ErrorIs(t, err, broker.ErrTopicExists)
	info, err := b.DescribeTopic(ctx, "t")
	require.NoError(t, err)
	require.Equal(t, int32(2), info.Config.Partitions, "a refused create leaves the topic as it was")
}

func testUnknownTopic(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	createTopic(t, b, "known", 1)
	for name, call := range topicCalls("nope") {
		t.Run(name, func(t *testing.T) {
			require.ErrorIs(t, call(ctx, b), broker.ErrUnknownTopic)
		})
	}
	// A produce naming a known and an unknown topic writes nothing.
	err := b.Produce(ctx, []broker.Record{rec("known", 0, "k", "v"), rec("nope", 0, "k", "v")})
	require.ErrorIs(t, err, broker.ErrUnknownTopic)
	offs, err := b.ListOffsets(ctx, "known", 0)
	require.NoError(t, err)
	require.Equal(t, broker.Offsets{}, offs, "a failed produce writes nothing")
}

func testInvalidTopicName(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	for _, name := range []string{
		"", ".", "..", "a/b", "../x", "..\\x", "/abs", "a b", "tab\t", "nul\x00", "ü", "a:b", "a*",
		strings.Repeat("a", broker.MaxTopicNameLen+1),
	} {
		t.Run("name="+name, func(t *testing.T) {
			require.ErrorIs(t, b.CreateTopic(ctx, name, broker.TopicConfig{Partitions: 1}), broker.ErrInvalidTopicName)
			for call, fn := range topicCalls(name) {
				require.ErrorIs(t, fn(ctx, b), broker.ErrInvalidTopicName, call)
			}
		})
	}
	topics, err := b.ListTopics(ctx)
	require.NoError(t, err)
	require.Empty(t, topics, "no invalid name was created")
}

func testInvalidPartitions(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	for _, n := range []int32{0, -1, -100} {
		err := b.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: n})
		require.ErrorIs(t, err, broker.ErrInvalidPartitions, "partitions %d", n)
	}
	topics, err := b.ListTopics(ctx)
	require.NoError(t, err)
	require.Empty(t, topics, "a refused create creates nothing")
	createTopic(t, b, "t", 1) // the name stays usable
}

func testDeleteRecreate(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	createTopic(t, b, "t", 2)
	createTopic(t, b, "other", 1)
	produceValues(t, b, "t", 0, "a", "b", "c")
	produceValues(t, b, "t", 1, "d")
	produceValues(t, b, "other", 0, "keep")
	tp := broker.TopicPartition{Topic: "t", Partition: 0}
	otherTP := broker.TopicPartition{Topic: "other", Partition: 0}
	require.NoError(t, b.CommitOffsets(ctx, "g", map[broker.TopicPartition]int64{tp: 2, otherTP: 1}))

	require.NoError(t, b.DeleteTopic(ctx, "t"))
	_, err := b.DescribeTopic(ctx, "t")
	require.ErrorIs(t, err, broker.ErrUnknownTopic)
	_, err = b.ListOffsets(ctx, "t", 0)
	require.ErrorIs(t, err, broker.ErrUnknownTopic)
	require.ErrorIs(t, b.DeleteTopic(ctx, "t"), broker.ErrUnknownTopic, "deleting twice")
	topics, err := b.ListTopics(ctx)
	require.NoError(t, err)
	require.Len(t, topics, 1)
	require.Equal(t, "other", topics[0].Name)

	require.NoError(t, b.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: 3}))
	info, err := b.DescribeTopic(ctx, "t")
	require.NoError(t, err)
	require.Equal(t, int32(3), info.Config.Partitions)
	for p := range int32(3) {
		offs, err := b.ListOffsets(ctx, "t", p)
		require.NoError(t, err)
		require.Equal(t, broker.Offsets{}, offs, "recreated topic partition %d is empty", p)
		got, err := fetch(ctx, b, []broker.FetchRequest{{Topic: "t", Partition: p}}, broker.FetchOptions{})
		require.NoError(t, err)
		require.Empty(t, got)
	}
	got, err := b.FetchOffsets(ctx, "g", []broker.TopicPartition{tp, otherTP})
	require.NoError(t, err)
	require.Equal(t, map[broker.TopicPartition]int64{otherTP: 1}, got, "a deleted topic's group offsets are gone, others stay")

	// The recreated topic starts again at offset 0; the other topic is untouched.
	recs := produceValues(t, b, "t", 0, "new")
	require.Equal(t, int64(0), recs[0].Offset)
	require.Equal(t, []string{"keep"}, values(fetchAll(t, b, "other", 0, 0)))
}
