package table_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
	"github.com/duality-streams/duality/table"
)

// TestEmitPerCommitStreamtest: streamtest commits after every input
// record, so EmitPerCommit emits every update there, tombstones included,
// and a per-commit stream that feeds another aggregation of the same task
// reaches it before that aggregation's own per-commit stream is flushed
// (upstream hooks flush first): nothing waits for a later commit.
func TestEmitPerCommitStreamtest(t *testing.T) {
	d := newDriver(t, func(b *stream.Builder) {
		users := table.From(b, "users", str, str, "users")
		users.ToStream(table.EmitPerCommit(10)).To("user-changes")
		counts := table.Count(stream.GroupByKey(stream.From(b, "clicks", str, str)), "counts")
		perCommit := counts.ToStream(table.EmitPerCommit(10))
		perCommit.To("counts")
		// Count the count updates of each key, in the same task.
		table.Count(stream.GroupByKey(perCommit), "updates").ToStream(table.EmitPerCommit(10)).To("updates")
	})
	pipe(t, d, "users", str, []in[string]{{Key: "ann", Value: "eu"}, {Key: "ann", Tombstone: true}})
	require.Equal(t, []change[string]{{Key: "ann", Value: "eu"}, {Key: "ann", Del: true}},
		readChanges(t, streamtest.Output(d, "user-changes", str, str)))
	pipe(t, d, "clicks", str, []in[string]{{Key: "a"}, {Key: "a"}, {Key: "b"}})
	out, err := streamtest.Output(d, "counts", str, i64).ReadKeyValues()
	require.NoError(t, err)
	require.Equal(t, []kv[int64]{{Key: "a", Value: 1}, {Key: "a", Value: 2}, {Key: "b", Value: 1}}, out)
	updates, err := streamtest.Output(d, "updates", str, i64).ReadKeyValues()
	require.NoError(t, err)
	require.Equal(t, []kv[int64]{{Key: "a", Value: 1}, {Key: "a", Value: 2}, {Key: "b", Value: 1}}, updates)
}

func TestEmitPerCommitBuildErrors(t *testing.T) {
	b := stream.NewBuilder()
	users := table.From(b, "users", str, str, "users")
	users.ToStream(table.EmitPerCommit(0))
	_, err := b.Build()
	require.ErrorIs(t, err, stream.ErrInvalidOption)
	require.ErrorContains(t, err, "EmitPerCommit(0)")

	b = stream.NewBuilder()
	table.From(b, "users", str, str, "users").ToStream(table.EmitPerCommit(5)).To("out")
	topo, err := b.Build()
	require.NoError(t, err)
	require.Contains(t, topo.Describe(), "Processor: to-stream-per-commit-2\n      emit: newest change per key per commit, at most 5 keys held\n      --> sink-3\n      <-- table-1\n")
}

// TestEmitPerCommitRuntime counts clicks of five hot keys on the embedded
// broker three ways: every update, the newest per commit, and the newest
// per commit with at most one key held. Each stream of a key's counts
// must rise strictly and end at the key's number of clicks; the
// per-commit streams must hold fewer records than there were clicks. A
// second run after deleting the state directory continues the counts.
func TestEmitPerCommitRuntime(t *testing.T) {
	ctx := t.Context()
	b, err := embedded.Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	outs := []string{"every", "per-commit", "per-commit-1"}
	for _, topic := range append([]string{"clicks"}, outs...) {
		require.NoError(t, b.CreateTopic(ctx, topic, broker.TopicConfig{Partitions: 3}))
	}
	sb := stream.NewBuilder()
	counts := table.Count(stream.GroupByKey(stream.From(sb, "clicks", str, str)), "counts")
	counts.ToStream().To("every")
	counts.ToStream(table.EmitPerCommit(1000)).To("per-commit")
	counts.ToStream(table.EmitPerCommit(1)).To("per-commit-1")
	topo, err := sb.Build()
	require.NoError(t, err)

	const perRun = 2000
	want := map[string]int64{}
	dir := t.TempDir()
	for run := range 2 {
		var recs []broker.Record
		for i := range perRun {
			k := fmt.Sprintf("k%d", i%5)
			want[k]++
			recs = append(recs, broker.Record{Topic: "clicks", Partition: broker.PartitionByKey, Key: []byte(k), Value: []byte("x")})
		}
		require.NoError(t, b.Produce(ctx, recs))
		if run == 1 {
			require.NoError(t, removeAll(dir))
		}
		app, err := duality.New("clicks", topo, b, duality.StateDir(dir), duality.CommitInterval(50*time.Millisecond))
		require.NoError(t, err)
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- app.Run(runCtx) }()
		awaitCount(t, b, "every", perRun*(run+1))
		wantNewest := map[string]string{}
		for k, n := range want {
			v, _ := codec.Int64().Append(nil, n)
			wantNewest[k] = string(v)
		}
		for _, topic := range outs[1:] {
			newestFrom(t, b, []broker.FetchRequest{{Topic: topic, Partition: 0}, {Topic: topic, Partition: 1}, {Topic: topic, Partition: 2}},
				map[string]string{}, wantNewest)
		}
		stop()
		require.NoError(t, <-done)
	}
	for _, topic := range outs {
		seqs := map[string][]int64{}
		total := 0
		for _, r := range readAll(t, b, topic) {
			n, err := codec.Int64().Decode(r.Value)
			require.NoError(t, err)
			seqs[string(r.Key)] = append(seqs[string(r.Key)], n)
			total++
		}
		for k, n := range want {
			seq := seqs[k]
			require.NotEmpty(t, seq, "%s: key %s", topic, k)
			for i := 1; i < len(seq); i++ {
				require.Greater(t, seq[i], seq[i-1], "%s: key %s", topic, k)
			}
			require.Equal(t, n, seq[len(seq)-1], "%s: key %s", topic, k)
		}
		if topic == "every" {
			require.Equal(t, 2*perRun, total)
		} else {
			require.Less(t, total, 2*perRun, "%s: the newest per commit should merge updates", topic)
		}
		t.Logf("%s: %d records for %d updates", topic, total, 2*perRun)
	}
}

func removeAll(dir string) error { return os.RemoveAll(dir) }
