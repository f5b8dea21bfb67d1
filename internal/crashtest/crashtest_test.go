package crashtest_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/crashtest"
)

const (
	group   = "g"
	records = 10000
	step    = 10 // records a commit of the committer
	kills   = 3
)

var in0 = broker.TopicPartition{Topic: "in"}

// TestRun runs the committer through the harness: every planned kill is
// made, the check after each sees the variant the parent picked for that
// child and the state the child made, and the last child consumes
// everything.
func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	x := crashtest.New(t, crashtest.Embedded)
	b := x.Open()
	require.NoError(t, b.CreateTopic(t.Context(), "in", broker.TopicConfig{Partitions: 1}))
	var recs []broker.Record
	for i := range records {
		recs = append(recs, broker.Record{Topic: "in", Value: fmt.Append(nil, i)})
	}
	require.NoError(t, b.Produce(t.Context(), recs))
	require.NoError(t, b.Close())

	var variant string
	checks := 0
	n := x.Run(crashtest.Plan{
		Kills: kills, MinKills: kills,
		Schedule: crashtest.Spread(records, kills, time.Millisecond),
		Variant: func(rng *rand.Rand) string {
			variant = fmt.Sprint("v", rng.IntN(1000))
			return variant
		},
		Check: func(t *testing.T, b broker.Broker) int {
			checks++
			got, err := os.ReadFile(filepath.Join(x.StateDir(), "variant"))
			require.NoError(t, err, "the child keeps its state in StateDir")
			require.Equal(t, variant, string(got))
			offs, err := crashtest.GroupOffsets(t.Context(), b, group, "in")
			require.NoError(t, err)
			require.Zero(t, offs.Committed[in0]%step, "commits of whole steps")
			return int(offs.CommittedSum())
		},
		WipeState: true,
	})
	require.Equal(t, kills, n)
	require.Equal(t, kills, checks)
	b = x.Open()
	defer func() { require.NoError(t, b.Close()) }()
	offs, err := crashtest.GroupOffsets(t.Context(), b, group, "in")
	require.NoError(t, err)
	require.True(t, offs.CaughtUp())
}

// TestRunChild is TestRun's child: it runs the committer until the group
// has consumed "in".
func TestRunChild(t *testing.T) {
	crashtest.RunChild(t, crashtest.Child{
		App: func(env *crashtest.Env) (crashtest.App, error) {
			if err := os.MkdirAll(env.StateDir, 0o755); err != nil {
				return nil, err
			}
			return committer{env}, os.WriteFile(filepath.Join(env.StateDir, "variant"), []byte(env.Variant), 0o644)
		},
		Poll: func(ctx context.Context, env *crashtest.Env) (crashtest.Progress, error) {
			offs, err := crashtest.GroupOffsets(ctx, env.Broker, group, "in")
			return crashtest.Progress{N: offs.CommittedSum(), Done: offs.CaughtUp()}, err
		},
	})
}

// committer consumes "in" by committing the group's offset step records
// at a time, each commit a synced write, until it reaches the end; then
// it waits to be stopped. Run returns nil once ctx is canceled.
type committer struct{ env *crashtest.Env }

func (c committer) Run(ctx context.Context) error {
	err := c.run(ctx)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (c committer) run(ctx context.Context) error {
	b := c.env.Broker
	for {
		committed, err := b.FetchOffsets(ctx, group, []broker.TopicPartition{in0})
		if err != nil {
			return err
		}
		offs, err := b.ListOffsets(ctx, "in", 0)
		if err != nil {
			return err
		}
		next := min(committed[in0]+step, offs.Latest)
		if next == committed[in0] {
			<-ctx.Done()
			return nil
		}
		if err := b.CommitOffsets(ctx, group, map[broker.TopicPartition]int64{in0: next}); err != nil {
			return err
		}
	}
}

// TestGroupOffsets checks the sums, CaughtUp and IsCommitted, and that a
// missing topic is listed, not an error.
func TestGroupOffsets(t *testing.T) {
	b, err := crashtest.Embedded.Open(t.TempDir())
	require.NoError(t, err)
	defer func() { require.NoError(t, b.Close()) }()
	ctx := t.Context()
	require.NoError(t, b.CreateTopic(ctx, "a", broker.TopicConfig{Partitions: 2}))
	require.NoError(t, b.CreateTopic(ctx, "b", broker.TopicConfig{Partitions: 1}))
	require.NoError(t, b.Produce(ctx, []broker.Record{
		{Topic: "a", Partition: 0}, {Topic: "a", Partition: 0}, {Topic: "a", Partition: 1}, {Topic: "b"},
	}))
	a0, a1, b0 := broker.TopicPartition{Topic: "a"}, broker.TopicPartition{Topic: "a", Partition: 1}, broker.TopicPartition{Topic: "b"}
	require.NoError(t, b.CommitOffsets(ctx, group, map[broker.TopicPartition]int64{a0: 1, a1: 1, b0: 1}))

	offs, err := crashtest.GroupOffsets(ctx, b, group, "a", "b", "later")
	require.NoError(t, err)
	require.Equal(t, []string{"later"}, offs.Missing)
	require.Equal(t, int64(2), offs.CommittedSum("a"))
	require.Equal(t, int64(3), offs.CommittedSum())
	require.Equal(t, int64(3), offs.EndSum("a"))
	require.Equal(t, int64(4), offs.EndSum())
	require.True(t, offs.CaughtUp("b"))
	require.False(t, offs.CaughtUp("a"))
	require.False(t, offs.CaughtUp("b", "later"), "a missing topic is not caught up")
	require.True(t, offs.IsCommitted(broker.Record{Topic: "a", Partition: 0, Offset: 0}))
	require.False(t, offs.IsCommitted(broker.Record{Topic: "a", Partition: 0, Offset: 1}))

	require.NoError(t, b.CommitOffsets(ctx, group, map[broker.TopicPartition]int64{a0: 2}))
	offs, err = crashtest.GroupOffsets(ctx, b, group, "a", "b")
	require.NoError(t, err)
	require.True(t, offs.CaughtUp())
}
