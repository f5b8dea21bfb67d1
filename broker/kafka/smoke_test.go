package kafka_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
)

func TestSmoke(t *testing.T) {
	c := newCluster(t)
	b := newBroker(t, c)
	ctx := t.Context()
	require.NoError(t, b.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: 2}))
	recs := []broker.Record{
		{Topic: "t", Partition: 0, Key: []byte("a"), Value: []byte("1")},
		{Topic: "t", Partition: 0, Key: []byte{}, Value: nil},
		{Topic: "t", Partition: broker.PartitionByKey, Key: []byte("x"), Value: []byte{}},
	}
	require.NoError(t, b.Produce(ctx, recs))
	t.Log(recs)
	got := readAll(t, b, "t", 0, 0)
	t.Log(got)
	offs, err := b.ListOffsets(ctx, "t", 0)
	require.NoError(t, err)
	t.Log(offs)

	cm, err := b.NewCommitter(ctx, "c1")
	require.NoError(t, err)
	err = cm.Commit(ctx, broker.CommitRequest{
		Records: []broker.Record{{Topic: "t", Partition: 1, Value: []byte("txn")}},
		Group:   "g", Offsets: map[broker.TopicPartition]int64{{Topic: "t", Partition: 0}: 2},
	})
	require.NoError(t, err)
	require.NoError(t, cm.Commit(ctx, broker.CommitRequest{Group: "g", Offsets: map[broker.TopicPartition]int64{{Topic: "t", Partition: 0}: 3}}))
	fo, err := b.FetchOffsets(ctx, "g", []broker.TopicPartition{{Topic: "t", Partition: 0}})
	require.NoError(t, err)
	t.Log(fo)
	t.Log(values(readAll(t, b, "t", 1, 0)))
	cm2, err := b.NewCommitter(ctx, "c1")
	require.NoError(t, err)
	err = cm.Commit(ctx, broker.CommitRequest{Records: []broker.Record{{Topic: "t", Partition: 1, Value: []byte("zombie")}}})
	require.ErrorIs(t, err, broker.ErrFenced)
	require.NoError(t, cm2.Commit(ctx, broker.CommitRequest{Records: []broker.Record{{Topic: "t", Partition: 1, Value: []byte("new")}}}))
	t.Log(values(readAll(t, b, "t", 1, 0)))

	m, err := b.JoinGroup(ctx, "grp", []string{"t"}, broker.JoinOptions{UserData: []byte("me")})
	require.NoError(t, err)
	a := <-m.Assignments()
	t.Logf("%s %+v", m.MemberID(), a)
	require.NoError(t, m.Leave(ctx))
}
