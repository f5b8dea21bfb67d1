package duality_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/kafka"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/internal/topology"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
)

// The tests of this file run real apps on the Kafka backend, over an
// in-process kfake cluster: a GroupBy and Count (a repartition topic and
// a changelog, both written in the worker's transactions), checked
// exactly against a plain-Go model, on the hot path (Run) and bounded
// (RunToEnd), and across restarts.

// newKafkaBroker starts a kfake cluster of three brokers on 127.0.0.1 and
// returns a kafka.Broker on it; both end with the test.
func newKafkaBroker(t *testing.T) *kafka.Broker {
	b, _ := newKafkaCluster(t)
	return b
}

// newKafkaCluster is newKafkaBroker that also returns the cluster's
// addresses, for clients of the test's own.
func newKafkaCluster(t *testing.T) (*kafka.Broker, []string) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	// Quick rebalances on kfake; a slow member on a loaded machine stays
	// in the group.
	b, err := kafka.New(ctx, c.ListenAddrs(), kafka.WithClientOptions(
		kgo.SessionTimeout(10*time.Second),
		kgo.HeartbeatInterval(50*time.Millisecond),
		kgo.RebalanceTimeout(10*time.Second),
	))
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b, c.ListenAddrs()
}

// requireGroupEmpty checks that group has no members: an app without an
// explicit InstanceID is a dynamic member, which leaves when it stops, so
// the next run (on another state directory, with another kept id) does
// not wait out the session timeout of the one before.
func requireGroupEmpty(t *testing.T, addrs []string, group string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	require.NoError(t, err)
	defer cl.Close()
	groups, err := kadm.NewClient(cl).DescribeGroups(t.Context(), group)
	require.NoError(t, err)
	g, ok := groups[group]
	require.True(t, ok, "group %q described", group)
	require.NoError(t, g.Err)
	require.Empty(t, g.Members, "members left in group %q after the app stopped", group)
}

const (
	kafkaWords  = "kafka-words"
	kafkaCounts = "kafka-counts"
)

// kafkaCountTopology groups the words of kafkaWords (values) by word,
// through a repartition topic, counts them in the store "counts" and
// writes every count update to kafkaCounts.
func kafkaCountTopology(t *testing.T) *stream.Topology {
	t.Helper()
	sb := stream.NewBuilder()
	words := stream.From(sb, kafkaWords, codec.String(), codec.String())
	byWord := stream.GroupBy(words, func(_, w string) string { return w }, stream.Named("by-word"))
	table.Count(byWord, "counts").ToStream().To(kafkaCounts)
	topo, err := sb.Build()
	require.NoError(t, err)
	return topo
}

// kafkaWord is the word of input record i: 37 words, spread unevenly over
// the keys (the line numbers) and so over the partitions.
func kafkaWord(i int) string { return fmt.Sprintf("w%02d", (i*i+3*i)%37) }

// produceKafkaWords appends the words of records [from, to) to kafkaWords,
// keyed by record number, and adds them to the model.
func produceKafkaWords(t *testing.T, b broker.Broker, from, to int, model map[string]int64) {
	t.Helper()
	recs := make([]broker.Record, 0, to-from)
	for i := from; i < to; i++ {
		w := kafkaWord(i)
		model[w]++
		recs = append(recs, broker.Record{Topic: kafkaWords, Partition: broker.PartitionByKey,
			Key: fmt.Appendf(nil, "line-%d", i), Value: []byte(w)})
	}
	require.NoError(t, b.Produce(t.Context(), recs))
}

// requireKafkaCounts checks the count updates in kafkaCounts and the table in
// the store's changelog against the model: with the record cache off
// every record makes one update, so each word's updates are exactly 1, 2,
// ..., its count, in order (nothing lost, nothing doubled, across
// restarts), and the newest value of each word in the changelog is its
// count.
func requireKafkaCounts(t *testing.T, b broker.Broker, model map[string]int64) {
	t.Helper()
	last := map[string]int64{}
	for _, r := range readTopic(t, b, kafkaCounts) {
		n, err := codec.Int64().Decode(r.Value)
		require.NoError(t, err)
		w := string(r.Key)
		require.Equal(t, last[w]+1, n, "update of %q at %s/%d@%d", w, r.Topic, r.Partition, r.Offset)
		last[w] = n
	}
	require.Equal(t, model, last, "count updates")

	topics, err := b.ListTopics(t.Context())
	require.NoError(t, err)
	changelog := ""
	for _, topic := range topics {
		if topic.Name == "kafka-count-counts-changelog" {
			changelog = topic.Name
		}
	}
	require.NotEmpty(t, changelog, "changelog topic among %v", topics)
	table := map[string]int64{}
	for _, r := range readTopic(t, b, changelog) {
		n, err := codec.Int64().Decode(r.Value)
		require.NoError(t, err)
		table[string(r.Key)] = n
	}
	require.Equal(t, model, table, "table in the changelog")
}

func newKafkaCountApp(t *testing.T, b broker.Broker, stateDir string) *duality.App {
	t.Helper()
	app, err := duality.New("kafka-count", kafkaCountTopology(t), b,
		duality.StateDir(stateDir), duality.CacheMaxBytes(0), duality.Workers(2),
		duality.CommitInterval(50*time.Millisecond),
		// Small polls: a partition's records often wait in the consumer
		// while another's fill a Poll.
		duality.FetchMaxRecords(20))
	require.NoError(t, err)
	return app
}

// TestKafkaRunToEnd runs the count bounded, twice: the second run, on a
// fresh state directory (its store restored from the changelog), counts
// the words appended since on top of the first run's counts. On Kafka the
// repartition topic's last offset is a transaction marker: the run ends
// only because the workers commit the position past it (Polled.Ends).
func TestKafkaRunToEnd(t *testing.T) {
	b, addrs := newKafkaCluster(t)
	createTopic(t, b, kafkaWords, 4)
	createTopic(t, b, kafkaCounts, 4)
	model := map[string]int64{}

	produceKafkaWords(t, b, 0, 1500, model)
	runToEnd(t, newKafkaCountApp(t, b, t.TempDir()))
	requireKafkaCounts(t, b, model)
	requireGroupEmpty(t, addrs, "kafka-count")

	produceKafkaWords(t, b, 1500, 2500, model)
	runToEnd(t, newKafkaCountApp(t, b, t.TempDir()))
	requireKafkaCounts(t, b, model)

	// Nothing new: a run ends at once and changes nothing.
	runToEnd(t, newKafkaCountApp(t, b, t.TempDir()))
	requireKafkaCounts(t, b, model)
}

// TestKafkaRun runs the count on the hot path, stops it once every update
// is out and the group has consumed everything, then restarts it on the
// same state directory with more input.
func TestKafkaRun(t *testing.T) {
	b := newKafkaBroker(t)
	createTopic(t, b, kafkaWords, 4)
	createTopic(t, b, kafkaCounts, 4)
	model := map[string]int64{}
	dir := t.TempDir()

	runUntilCaughtUp := func(from, to int) {
		t.Helper()
		app := newKafkaCountApp(t, b, dir)
		stop, done := runApp(t, app)
		produceKafkaWords(t, b, from, to/2, model)
		produceKafkaWords(t, b, to/2, to, model)
		awaitRecords(t, b, kafkaCounts, to)
		// The committed positions reach the ends of the input and of the
		// repartition topic (past its transaction markers).
		eventually(t, "group lag 0", func() bool {
			for _, topic := range []string{kafkaWords, "kafka-count-by-word-repartition"} {
				lag, err := broker.GroupLag(t.Context(), b, "kafka-count", topic)
				if err != nil || lag != 0 {
					return false
				}
			}
			return true
		})
		select {
		case err := <-done:
			require.FailNow(t, "app stopped", "%v", err)
		default:
		}
		require.NoError(t, stop())
		requireKafkaCounts(t, b, model)
	}
	runUntilCaughtUp(0, 1500)
	runUntilCaughtUp(1500, 3000)
}

// TestKafkaInstanceIDFencesZombie is TestInstanceIDFencesZombie on Kafka:
// an instance stalls in the middle of its input (a zombie), its
// replacement starts with the same InstanceID and takes the static group
// membership (the zombie's member is fenced, FENCED_INSTANCE_ID) and the
// transactional ids of its committers (the zombie's producers are
// fenced). Once the replacement's output is complete the zombie wakes up:
// what it outputs from then on is refused (its commit fails with
// broker.ErrFenced) and never visible to read_committed readers, it does
// not rejoin the group, and its Run ends.
func TestKafkaInstanceIDFencesZombie(t *testing.T) {
	b := newKafkaBroker(t)
	createTopic(t, b, "in", 2)
	createTopic(t, b, "out", 2)
	const n = 200
	produceN(t, b, "in", 0, n)

	blocked, release := make(chan struct{}), make(chan struct{})
	wake := sync.OnceFunc(func() { close(release) })
	t.Cleanup(wake) // also when the test fails before it wakes the zombie
	var once sync.Once
	var mu sync.Mutex
	count := 0
	stalling := func(ctx context.Context, env topology.TaskEnv, rec *broker.Record) error {
		mu.Lock()
		count++
		c := count
		mu.Unlock()
		if c == 50 {
			once.Do(func() { close(blocked) })
			<-release
		}
		select {
		case <-release:
			// Woken up, replaced: whatever the zombie outputs now
			// must never be read.
			return env.Send(ctx, broker.Record{Topic: env.TopicName("out", false), Partition: broker.PartitionByKey,
				Key: rec.Key, Value: append([]byte("zombie-"), rec.Value...)})
		default:
			return prefixTo("out")(ctx, env, rec)
		}
	}
	opts := []duality.Option{duality.InstanceID("shop-1"), duality.Workers(1),
		duality.MaxUncommittedRecords(1), duality.CommitInterval(time.Hour)}
	var zombieLogs syncBuffer
	zombie, err := duality.New("zombie", mapTopology(t, []string{"in"}, "out", stalling), b,
		append(opts, duality.Logger(slog.New(slog.NewTextHandler(&zombieLogs, nil))))...)
	require.NoError(t, err)
	zctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	zombieDone := make(chan error, 1)
	go func() { zombieDone <- zombie.Run(zctx) }()
	<-blocked

	var logs syncBuffer
	fresh, err := duality.New("zombie", mapTopology(t, []string{"in"}, "out", prefixTo("out")), b,
		append(opts, duality.Logger(slog.New(slog.NewTextHandler(&logs, nil))))...)
	require.NoError(t, err)
	stop, freshDone := runApp(t, fresh)
	awaitRecords(t, b, "out", n)
	wake() // the zombie wakes up, outputs and tries to commit
	select {
	case err := <-zombieDone:
		require.ErrorContains(t, err, "group membership ended", "the replaced instance stops")
	case <-time.After(20 * time.Second):
		t.Fatal("the replaced instance did not stop")
	}
	require.Contains(t, zombieLogs.String(), "commit fenced by a newer generation", "the zombie's commit fails with ErrFenced")
	select {
	case err := <-freshDone:
		require.FailNow(t, "the replacement stopped: the zombie took the membership back", "%v", err)
	default:
	}
	require.NoError(t, stop())
	requireExactlyOnce(t, b, "out", n) // no zombie- record: read_committed readers never see them
	require.Contains(t, logs.String(), "instance=shop-1")
}
