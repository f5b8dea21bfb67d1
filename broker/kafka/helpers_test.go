package kafka_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/kafka"
)

// waitBound bounds waits for what the cluster must deliver; never a
// synchronisation delay.
const waitBound = 20 * time.Second

// newCluster starts an in-process kfake cluster of three brokers on
// 127.0.0.1 with short group timeouts.
func newCluster(t testing.TB) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(
		kfake.NumBrokers(3),
		kfake.GroupMinSessionTimeout(100*time.Millisecond),
	)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// groupTiming makes rebalances quick on kfake (members learn of one
// within a heartbeat) and keeps a slow member, on a loaded machine, in
// the group.
var groupTiming = kafka.WithClientOptions(
	kgo.SessionTimeout(10*time.Second),
	kgo.HeartbeatInterval(50*time.Millisecond),
	kgo.RebalanceTimeout(10*time.Second),
)

// newBroker returns a Broker on c, closed at the end of the test.
func newBroker(t testing.TB, c *kfake.Cluster, opts ...kafka.Option) *kafka.Broker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	b, err := kafka.New(ctx, c.ListenAddrs(), append([]kafka.Option{groupTiming}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// readAll reads topic/partition from offset from to its end with a
// Consumer, using Polled.Ends to stop.
func readAll(t testing.TB, b *kafka.Broker, topic string, partition int32, from int64) []broker.Record {
	t.Helper()
	c, err := b.NewConsumer(broker.ConsumerOptions{})
	require.NoError(t, err)
	defer c.Close()
	tp := broker.TopicPartition{Topic: topic, Partition: partition}
	c.Assign(map[broker.TopicPartition]int64{tp: from})
	var out []broker.Record
	deadline := time.Now().Add(waitBound)
	for time.Now().Before(deadline) {
		p, err := c.Poll(context.Background(), time.Second)
		require.NoError(t, err)
		out = append(out, p.Records...)
		if _, ok := p.Ends[tp]; ok {
			return out
		}
	}
	require.FailNow(t, "no end reported", "%s/%d", topic, partition)
	return nil
}

func values(recs []broker.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Value)
	}
	return out
}
