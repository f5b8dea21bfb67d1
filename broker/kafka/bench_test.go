package kafka_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/kafka"
)

// BenchmarkCommit commits 100 records of 100 bytes over 4 partitions and
// one input offset per transaction, as a worker's commit does, on kfake.
func BenchmarkCommit(b *testing.B) { benchCommit(b, (*kafka.Broker).NewCommitter) }

// BenchmarkAtLeastOnceCommit is BenchmarkCommit with an at-least-once
// committer: the records acknowledged, then the offset committed.
func BenchmarkAtLeastOnceCommit(b *testing.B) {
	benchCommit(b, (*kafka.Broker).NewAtLeastOnceCommitter)
}

func benchCommit(b *testing.B, open func(*kafka.Broker, context.Context, string) (broker.Committer, error)) {
	brk := newBroker(b, newCluster(b))
	ctx := b.Context()
	require.NoError(b, brk.CreateTopic(ctx, "out", broker.TopicConfig{Partitions: 4}))
	require.NoError(b, brk.CreateTopic(ctx, "in", broker.TopicConfig{Partitions: 1}))
	cm, err := open(brk, ctx, "bench")
	require.NoError(b, err)
	defer cm.Close()
	value := make([]byte, 100)
	recs := make([]broker.Record, 100)
	b.ReportAllocs()
	n := int64(0)
	for b.Loop() {
		for i := range recs {
			recs[i] = broker.Record{Topic: "out", Partition: broker.PartitionByKey, Key: fmt.Appendf(nil, "k%d", i), Value: value}
		}
		n++
		require.NoError(b, cm.Commit(ctx, broker.CommitRequest{Records: recs, Group: "g",
			Offsets: map[broker.TopicPartition]int64{{Topic: "in"}: n}}))
	}
	b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkConsume reads 100k records of 100 bytes from 4 partitions
// with one Consumer.
func BenchmarkConsume(b *testing.B) {
	brk := newBroker(b, newCluster(b))
	ctx := b.Context()
	const perPartition = 25_000
	require.NoError(b, brk.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: 4}))
	value := make([]byte, 100)
	for p := range int32(4) {
		recs := make([]broker.Record, perPartition)
		for i := range recs {
			recs[i] = broker.Record{Topic: "t", Partition: p, Value: value}
		}
		require.NoError(b, brk.Produce(ctx, recs))
	}
	b.ReportAllocs()
	for b.Loop() {
		c, err := brk.NewConsumer(broker.ConsumerOptions{})
		require.NoError(b, err)
		pos := map[broker.TopicPartition]int64{}
		for p := range int32(4) {
			pos[broker.TopicPartition{Topic: "t", Partition: p}] = 0
		}
		c.Assign(pos)
		got := 0
		for got < 4*perPartition {
			polled, err := c.Poll(ctx, time.Second)
			require.NoError(b, err)
			got += len(polled.Records)
		}
		require.NoError(b, c.Close())
	}
	b.ReportMetric(float64(b.N*4*perPartition)/b.Elapsed().Seconds(), "records/s")
}
