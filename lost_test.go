package duality_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker/kafka"
)

// TestKafkaLostAssignment makes the coordinator forget the app's group
// member while it works (one heartbeat answered UNKNOWN_MEMBER_ID, as
// after a session timeout): the app stops its tasks at once, dropping
// their uncommitted work (broker.Assignment.Lost), starts them again
// once its member has rejoined, and its output stays exact. It goes on
// working for twice its ShutdownTimeout after the loss: the loss must not
// start the shutdown's deadline, which would cancel its broker calls.
func TestKafkaLostAssignment(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	b, err := kafka.New(ctx, c.ListenAddrs(), kafka.WithClientOptions(
		kgo.SessionTimeout(10*time.Second),
		kgo.HeartbeatInterval(50*time.Millisecond),
		kgo.RebalanceTimeout(10*time.Second),
	))
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	createTopic(t, b, kafkaWords, 4)
	createTopic(t, b, kafkaCounts, 4)

	var logs syncBuffer
	const shutdownTimeout = 2 * time.Second
	app, err := duality.New("kafka-count", kafkaCountTopology(t), b,
		duality.StateDir(t.TempDir()), duality.CacheMaxBytes(0), duality.Workers(2),
		duality.CommitInterval(20*time.Millisecond), duality.FetchMaxRecords(20),
		duality.ShutdownTimeout(shutdownTimeout),
		duality.Logger(slog.New(slog.NewTextHandler(&logs, nil))))
	require.NoError(t, err)
	stop, done := runApp(t, app)
	model := map[string]int64{}
	produceKafkaWords(t, b, 0, 500, model)
	awaitRecords(t, b, kafkaCounts, 500)
	opened := app.Metrics().TasksOpened

	lost := time.Now()
	c.ControlKey(int16(kmsg.Heartbeat), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		resp := kreq.ResponseKind().(*kmsg.HeartbeatResponse)
		resp.ErrorCode = kerr.UnknownMemberID.Code
		return resp, nil, true
	})
	produceKafkaWords(t, b, 500, 1000, model)
	eventually(t, "the tasks start again after the member rejoined", func() bool {
		return app.Metrics().TasksOpened >= opened+8
	})
	took := time.Since(lost)
	awaitRecords(t, b, kafkaCounts, 1000)
	// Work on past twice the shutdown timeout since the loss.
	n := 1000
	for time.Since(lost) < 2*shutdownTimeout {
		produceKafkaWords(t, b, n, n+100, model)
		n += 100
		awaitRecords(t, b, kafkaCounts, n)
	}
	select {
	case err := <-done:
		require.FailNow(t, "app stopped", "%v", err)
	default:
	}
	require.NoError(t, stop())
	require.Contains(t, logs.String(), "assignment lost")
	t.Logf("tasks started again %v after the heartbeat that lost the member", took.Round(time.Millisecond))
	requireKafkaCounts(t, b, model)
}
