package duality_test

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
)

// purgeTopology counts the words of "words" (values) after a GroupBy, so
// that the counts read a repartition topic, and writes them to
// "counts-out".
func purgeTopology(t *testing.T) *stream.Topology {
	t.Helper()
	b := stream.NewBuilder()
	words := stream.From(b, "words", codec.String(), codec.String())
	byWord := stream.GroupBy(words, func(_, w string) string { return w })
	table.Count(byWord, "counts").ToStream().To("counts-out")
	topo, err := b.Build()
	require.NoError(t, err)
	return topo
}

// produceWordValues appends records l<i> -> w<i%13> for i in [from, to) to
// "words" and adds them to the model counts.
func produceWordValues(t *testing.T, b broker.Broker, from, to int, model map[string]int64) {
	t.Helper()
	var recs []broker.Record
	for i := from; i < to; i++ {
		w := fmt.Sprintf("w%02d", i%13)
		model[w]++
		recs = append(recs, broker.Record{Topic: "words", Partition: broker.PartitionByKey,
			Key: fmt.Appendf(nil, "l%d", i), Value: []byte(w)})
	}
	require.NoError(t, b.Produce(t.Context(), recs))
}

// repartitionPartitions returns the partitions of app's repartition topics.
func repartitionPartitions(t *testing.T, b broker.Broker, app string) []broker.TopicPartition {
	t.Helper()
	topics, err := b.ListTopics(t.Context())
	require.NoError(t, err)
	var tps []broker.TopicPartition
	for _, ti := range topics {
		if strings.HasPrefix(ti.Name, app+"-") && strings.HasSuffix(ti.Name, "-repartition") {
			for p := range ti.Config.Partitions {
				tps = append(tps, broker.TopicPartition{Topic: ti.Name, Partition: p})
			}
		}
	}
	require.NotEmpty(t, tps, "app %s has no repartition topic", app)
	return tps
}

// awaitCommittedEnd waits until group's committed offset of every
// partition in tps is the partition's latest offset.
func awaitCommittedEnd(t *testing.T, b broker.Broker, group string, tps []broker.TopicPartition) {
	t.Helper()
	eventually(t, "committed offsets at the end of "+fmt.Sprint(tps), func() bool {
		committed, err := b.FetchOffsets(t.Context(), group, tps)
		require.NoError(t, err)
		for _, tp := range tps {
			offs, err := b.ListOffsets(t.Context(), tp.Topic, tp.Partition)
			require.NoError(t, err)
			if committed[tp] != offs.Latest {
				return false
			}
		}
		return true
	})
}

// latestCounts returns the newest count per word in "counts-out".
func latestCounts(t *testing.T, b broker.Broker) map[string]int64 {
	t.Helper()
	got := map[string]int64{}
	for _, r := range readTopic(t, b, "counts-out") {
		n, err := codec.Int64().Decode(r.Value)
		require.NoError(t, err)
		got[string(r.Key)] = n
	}
	return got
}

// TestRepartitionPurge runs a GroupBy/Count app with a short purge
// interval: once it has committed, the repartition topic's earliest offset
// reaches the committed offset in every partition, the output is the
// model's, and a restart resumes from the committed offsets (the earliest
// ones now) without offset-out-of-range resets, purging again after more
// input.
func TestRepartitionPurge(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "words", 2)
	createTopic(t, b, "counts-out", 2)
	topo := purgeTopology(t)
	var logs syncBuffer
	newApp := func() *duality.App {
		app, err := duality.New("purge", topo, b, duality.CommitInterval(5*time.Millisecond),
			duality.RepartitionPurgeInterval(time.Millisecond), duality.Logger(slog.New(slog.NewTextHandler(&logs, nil))))
		require.NoError(t, err)
		return app
	}
	model := map[string]int64{}
	produceWordValues(t, b, 0, 500, model)
	words := []broker.TopicPartition{{Topic: "words", Partition: 0}, {Topic: "words", Partition: 1}}

	for run, more := range []int{500, 800} {
		if run > 0 {
			produceWordValues(t, b, 500, more, model)
		}
		app := newApp()
		stop, _ := runApp(t, app)
		awaitCommittedEnd(t, b, "purge", words)
		rep := repartitionPartitions(t, b, "purge")
		awaitCommittedEnd(t, b, "purge", rep)
		eventually(t, "repartition topic purged up to the committed offsets", func() bool {
			for _, tp := range rep {
				// The earliest offset first: the committed one read
				// after it can only be larger.
				offs, err := b.ListOffsets(t.Context(), tp.Topic, tp.Partition)
				require.NoError(t, err)
				committed, err := b.FetchOffsets(t.Context(), "purge", []broker.TopicPartition{tp})
				require.NoError(t, err)
				require.LessOrEqual(t, offs.Earliest, committed[tp], "%v: purged beyond the committed offset", tp)
				if offs.Earliest != committed[tp] {
					return false
				}
			}
			return true
		})
		var total int64
		for _, tp := range rep {
			offs, err := b.ListOffsets(t.Context(), tp.Topic, tp.Partition)
			require.NoError(t, err)
			total += offs.Earliest
		}
		require.Equal(t, int64(more), total, "run %d: every repartitioned record is purged", run)
		require.NoError(t, stop())
		require.Positive(t, app.Metrics().RepartitionPurges, "run %d", run)
		require.Equal(t, model, latestCounts(t, b), "run %d: the counts are the model's", run)
	}
	require.NotContains(t, logs.String(), "offset out of range")
	require.NotContains(t, logs.String(), "purging an internal topic failed")

	// The changelog is never purged.
	offs, err := b.ListOffsets(t.Context(), "purge-counts-changelog", 0)
	require.NoError(t, err)
	require.Zero(t, offs.Earliest, "changelogs are not purged")
}

// TestRepartitionPurgeOff runs the app of TestRepartitionPurge with the
// purge interval 0: after it has committed everything, nothing is purged.
func TestRepartitionPurgeOff(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "words", 2)
	createTopic(t, b, "counts-out", 2)
	model := map[string]int64{}
	produceWordValues(t, b, 0, 300, model)
	app, err := duality.New("nopurge", purgeTopology(t), b, duality.CommitInterval(5*time.Millisecond),
		duality.RepartitionPurgeInterval(0))
	require.NoError(t, err)
	stop, _ := runApp(t, app)
	awaitCommittedEnd(t, b, "nopurge", []broker.TopicPartition{{Topic: "words", Partition: 0}, {Topic: "words", Partition: 1}})
	rep := repartitionPartitions(t, b, "nopurge")
	awaitCommittedEnd(t, b, "nopurge", rep)
	require.NoError(t, stop())
	var total int64
	for _, tp := range rep {
		offs, err := b.ListOffsets(t.Context(), tp.Topic, tp.Partition)
		require.NoError(t, err)
		require.Zero(t, offs.Earliest, "%v: purged with the interval 0", tp)
		total += offs.Latest
	}
	require.Equal(t, int64(300), total)
	require.Zero(t, app.Metrics().RepartitionPurges)
	require.Equal(t, model, latestCounts(t, b))
}
