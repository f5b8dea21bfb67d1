package duality_test

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
)

// TestCommitIntervalSlowStep runs an app whose step takes 1 ms a record
// on synctest's fake clock, over a backlog the worker fetches in one
// batch: it commits every CommitInterval between the records of the
// batch, not once the batch is done, and every commit's offset is that of
// the records processed before it (the output so far is exactly the
// records before the committed offset, in order).
func TestCommitIntervalSlowStep(t *testing.T) {
	const (
		n        = 2000
		step     = time.Millisecond
		interval = 100 * time.Millisecond
	)
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		b, err := embedded.Open("data", embedded.WithFS(vfs.NewMem()))
		require.NoError(t, err)
		defer func() { require.NoError(t, b.Close()) }()
		for _, topic := range []string{"in", "out"} {
			require.NoError(t, b.CreateTopic(ctx, topic, broker.TopicConfig{Partitions: 1}))
		}
		recs := make([]broker.Record, n)
		for i := range recs {
			recs[i] = broker.Record{Topic: "in", Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "%d", i)}
		}
		require.NoError(t, b.Produce(ctx, recs))

		sb := stream.NewBuilder()
		stream.From(sb, "in", codec.String(), codec.String()).
			Peek(func(string, string) { time.Sleep(step) }). // a slow step
			To("out")
		topo, err := sb.Build()
		require.NoError(t, err)
		// One fetch holds the whole backlog (FetchMaxRecords is above n).
		app, err := duality.New("slow", topo, b, duality.Workers(1), duality.CommitInterval(interval),
			duality.FetchMaxRecords(2*n))
		require.NoError(t, err)
		runCtx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() { errc <- app.Run(runCtx) }()

		// Probe the group's committed offset every millisecond of fake
		// time: the times it moves are the commits.
		tp := broker.TopicPartition{Topic: "in", Partition: 0}
		type commit struct {
			at     time.Duration
			offset int64
		}
		var commits []commit
		start := time.Now()
		for last := int64(-1); last < n; {
			time.Sleep(time.Millisecond)
			offs, err := b.FetchOffsets(ctx, "slow", []broker.TopicPartition{tp})
			require.NoError(t, err)
			if off, ok := offs[tp]; ok && off != last {
				commits = append(commits, commit{time.Since(start), off})
				last = off
			}
			require.Less(t, time.Since(start), time.Minute, "the records are never all committed")
		}
		cancel()
		require.NoError(t, <-errc)

		gaps := make([]time.Duration, 0, len(commits))
		prev := time.Duration(0)
		for _, c := range commits {
			gaps = append(gaps, c.at-prev)
			prev = c.at
		}
		t.Logf("%d records at %v each: %d commits, at intervals %v", n, step, len(commits), gaps)
		// About n*step/interval commits: one every interval, give or
		// take a record and the probe's millisecond.
		require.GreaterOrEqual(t, len(commits), int(n*step/interval)-1)
		for i, g := range gaps[1:] {
			require.LessOrEqual(t, g, interval+3*step, "commit %d came %v after the one before", i+1, g)
		}

		// Exactly the records before each committed offset were output
		// by then: the output, read to its end, is the input in order.
		out, err := b.Fetch(ctx, []broker.FetchRequest{{Topic: "out", Partition: 0}}, broker.FetchOptions{MaxRecords: 2 * n})
		require.NoError(t, err)
		require.Len(t, out, n)
		for i, r := range out {
			require.Equal(t, fmt.Sprint(i), string(r.Value))
		}
	})
}
