package duality_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/internal/crashtest"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
	"github.com/duality-streams/duality/window"
)

// The takeover crash test's app: "tk-in" (key k<i % tkKeys>, value
// "<i>:<amount>") is echoed to "tk-echo", aggregated per key into the
// running count, sum, min and max of its amounts (store "tk-stats",
// every update to "tk-stats-out") and counted per key in tumbling
// windows of event time (store "tk-win", every update to "tk-win-out").
// Record i of the input is a function of i alone (tkRecord), so the final
// tables have closed forms.
const (
	tkApp     = "takeover"
	tkParts   = 4
	tkKeys    = 24
	tkKills   = 5                      // -crash.scale 4: the 20 of the long form
	tkPerKill = 1200                   // input records per kill
	tkRate    = 400                    // input records a second, fed while the instances run
	tkWindow  = 500 * time.Millisecond // of event time: tkWindowN records
	tkWindowN = 250
	tkStep    = tkWindow / tkWindowN // event time between two records
)

// tkBase is the event time of record 0.
var tkBase = time.UnixMilli(1_700_000_000_000)

// tkStats is a key's running aggregate.
type tkStats struct {
	Count, Sum, Min, Max int64
}

// tkRecord returns the key, amount and event time of input record i.
func tkRecord(i int) (key string, amount int64, ts time.Time) {
	return fmt.Sprintf("k%d", i%tkKeys), int64((i*37)%101 - 50), tkBase.Add(time.Duration(i) * tkStep)
}

// tkTopology builds the app described above.
func tkTopology() (*stream.Topology, error) {
	b := stream.NewBuilder()
	in := stream.From(b, "tk-in", codec.String(), codec.String())
	in.To("tk-echo")
	g := stream.GroupByKey(in)
	table.Aggregate(g, func() tkStats { return tkStats{} }, func(_, v string, a tkStats) tkStats {
		x := tkAmount(v)
		if a.Count == 0 || x < a.Min {
			a.Min = x
		}
		if a.Count == 0 || x > a.Max {
			a.Max = x
		}
		a.Count++
		a.Sum += x
		return a
	}, "tk-stats").ToStream().To("tk-stats-out")
	window.Count(g, window.Tumbling(tkWindow, time.Hour), "tk-win").ToStream().To("tk-win-out")
	return b.Build()
}

// tkAmount returns the amount of an input value "<i>:<amount>"; a
// malformed value counts as 0 (the input has none).
func tkAmount(v string) int64 {
	_, a, _ := strings.Cut(v, ":")
	n, _ := strconv.ParseInt(a, 10, 64)
	return n
}

// TestKill9KafkaTakeover runs two instances of the app in one group on
// the Kafka backend, each in a child process: a companion that runs
// throughout, and one that is killed with SIGKILL (tkKills times, more
// with -crash.scale) and restarted, 50 ms to 2 s after the progress
// passes its scheduled point, while the parent feeds the input at
// tkRate records a second (the last tkPerKill records once the kills are
// made), so that every kill lands while both instances run and most
// while both process.
//
// The input grows with the kills (tkPerKill records, 3 s of feed, per
// kill): by default (CI) 5 kills in 15 s of feed, each landing before
// the feed's tail is produced, as each of the long form's does; the long
// form the test was written with, 20 kills in 60 s of feed, is
//
//	go test -run 'TestKill9KafkaTakeover$' -crash.scale 4 .
//
// and -crash.scale 20 makes it 100 kills in 5 minutes of feed. Each kill leaves the killed instance's tasks (and
// maybe an open transaction) behind: the companion takes them over once
// the group drops the dead member, and the restarted instance takes some
// back. At the end the outputs must be exactly those of the input:
// checkTakeover.
//
// There is no embedded variant: the embedded broker lives in the
// process that opens it, so two instances of an app on it run in one
// process (as TestAggKill9Standby's pair does), and a kill -9 kills both.
func TestKill9KafkaTakeover(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	kills := crashtest.Kills(tkKills)
	total := kills * tkPerKill
	x := crashtest.New(t, crashtest.Kafka)
	b := x.Open()
	ctx := t.Context()
	for _, topic := range []string{"tk-in", "tk-echo", "tk-stats-out", "tk-win-out"} {
		require.NoError(t, b.CreateTopic(ctx, topic, broker.TopicConfig{Partitions: tkParts}))
	}
	require.NoError(t, b.Close())

	feedTime := time.Duration(total) * time.Second / tkRate
	// The feed holds back the last tkPerKill records until the kills are
	// made, so the kills are spread over the input before them.
	spread := crashtest.Spread(total-tkPerKill, kills, time.Millisecond)
	start := time.Now()
	x.Run(crashtest.Plan{
		Kills: kills, MinKills: kills,
		Schedule: func(rng *rand.Rand, k int) (int64, time.Duration) {
			target, _ := spread(rng, k)
			return target, 50*time.Millisecond + crashtest.RandDelay(rng, 1950*time.Millisecond)
		},
		Companion: true,
		Feed: func(ctx context.Context, b broker.Broker, killed <-chan struct{}) error {
			return feedTakeover(ctx, b, total, killed)
		},
		Param: strconv.Itoa(total),
		// The last child runs until the feed ends and its input is
		// processed.
		MaxTime: feedTime + time.Minute,
	})
	t.Logf("%d records fed and processed in %v", total, time.Since(start).Round(time.Millisecond))

	b = x.Open()
	defer func() { require.NoError(t, b.Close()) }()
	checkTakeover(t, b, total)
	requireNoOpenTransaction(t, x.Addr(), 10*time.Second)
}

// feedTakeover produces input records 0..total-1 at tkRate records a
// second, in batches every 20 ms, holding the last tkPerKill back until
// killed is closed: the instances cannot finish before the last kill,
// however slowly the kills follow each other.
func feedTakeover(ctx context.Context, b broker.Broker, total int, killed <-chan struct{}) error {
	const every = 20 * time.Millisecond
	perBatch := tkRate * int(every) / int(time.Second)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for i := 0; i < total; {
		if i == total-tkPerKill {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-killed:
			}
		}
		recs := make([]broker.Record, 0, perBatch)
		for ; i < total && len(recs) < perBatch && (i != total-tkPerKill || len(recs) == 0); i++ {
			key, amount, ts := tkRecord(i)
			recs = append(recs, broker.Record{Topic: "tk-in", Partition: broker.PartitionByKey, Timestamp: ts,
				Key: []byte(key), Value: fmt.Appendf(nil, "%d:%d", i, amount)})
		}
		if err := b.Produce(ctx, recs); err != nil {
			return fmt.Errorf("feed record %d: %w", i, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// checkTakeover checks the outputs of the whole input (total records,
// all committed):
//   - tk-echo: each partition holds the records of the same input
//     partition, in order, each once;
//   - tk-stats-out: for each key, the running aggregates of its records
//     in input order, each once (no gap, no repeat), the last equal to
//     the aggregate tkRecord gives in closed form;
//   - tk-win-out: for each key and window, the counts 1..n in order, n
//     the number of its records in the window in closed form.
func checkTakeover(t *testing.T, b broker.Broker, total int) {
	t.Helper()
	offs, err := crashtest.GroupOffsets(t.Context(), b, tkApp, "tk-in")
	require.NoError(t, err)
	require.True(t, offs.CaughtUp(), "the input is not all committed: %v of %v", offs.Committed, offs.End)
	in := readTopic(t, b, "tk-in")
	require.Len(t, in, total)

	// Echo.
	var wantEcho, gotEcho [tkParts][]string
	for _, r := range in {
		wantEcho[r.Partition] = append(wantEcho[r.Partition], string(r.Key)+"="+string(r.Value))
	}
	for _, r := range readTopic(t, b, "tk-echo") {
		gotEcho[r.Partition] = append(gotEcho[r.Partition], string(r.Key)+"="+string(r.Value))
	}
	for p := range tkParts {
		requireSameSeq(t, wantEcho[p], gotEcho[p], fmt.Sprintf("echo of partition %d", p))
	}

	// Running aggregates, from the input as read (per key, partition
	// order), and in closed form at the end.
	statsCodec := codec.For[tkStats]()
	wantStats := map[string][]tkStats{}
	for _, r := range in {
		k := string(r.Key)
		var a tkStats
		if prev := wantStats[k]; len(prev) > 0 {
			a = prev[len(prev)-1]
		}
		x := tkAmount(string(r.Value))
		if a.Count == 0 || x < a.Min {
			a.Min = x
		}
		if a.Count == 0 || x > a.Max {
			a.Max = x
		}
		a.Count++
		a.Sum += x
		wantStats[k] = append(wantStats[k], a)
	}
	final := map[string]tkStats{}
	for i := range total {
		k, x, _ := tkRecord(i)
		a, ok := final[k]
		if !ok {
			a = tkStats{Min: x, Max: x}
		}
		a.Count, a.Sum, a.Min, a.Max = a.Count+1, a.Sum+x, min(a.Min, x), max(a.Max, x)
		final[k] = a
	}
	gotStats := map[string][]tkStats{}
	for _, r := range readTopic(t, b, "tk-stats-out") {
		a, err := statsCodec.Decode(r.Value)
		require.NoError(t, err)
		gotStats[string(r.Key)] = append(gotStats[string(r.Key)], a)
	}
	for _, k := range slices.Sorted(maps.Keys(final)) {
		want, got := wantStats[k], gotStats[k]
		requireSameSeq(t, want, got, "running aggregates of "+k)
		require.Equal(t, final[k], got[len(got)-1], "final aggregate of %s", k)
	}
	require.Len(t, gotStats, len(final), "aggregates of keys not in the input")

	// Windowed counts.
	wkc := window.WindowedCodec(codec.String())
	type win struct {
		key   string
		start int64
	}
	wantWin := map[win]int64{}
	for i := range total {
		k, _, ts := tkRecord(i)
		wantWin[win{k, ts.Sub(tkBase).Milliseconds() / tkWindow.Milliseconds()}]++
	}
	gotWin := map[win][]int64{}
	for _, r := range readTopic(t, b, "tk-win-out") {
		w, err := wkc.Decode(r.Key)
		require.NoError(t, err)
		n, err := codec.Int64().Decode(r.Value)
		require.NoError(t, err)
		k := win{w.Key, w.Start.Sub(tkBase).Milliseconds() / tkWindow.Milliseconds()}
		gotWin[k] = append(gotWin[k], n)
	}
	require.Len(t, gotWin, len(wantWin), "windows counted")
	for w, n := range wantWin {
		want := make([]int64, n)
		for i := range want {
			want[i] = int64(i + 1)
		}
		requireSameSeq(t, want, gotWin[w], fmt.Sprintf("counts of %s in window %d", w.key, w.start))
	}
	t.Logf("checked %d echoed records, %d aggregate updates of %d keys, %d windows", total, total, len(final), len(wantWin))
}

// requireSameSeq fails with the first difference of two sequences and
// their lengths (a gap, a repeat or a change shows there), not with two
// dumps of thousands of elements.
func requireSameSeq[T comparable](t *testing.T, want, got []T, what string) {
	t.Helper()
	for i := range min(len(want), len(got)) {
		if want[i] != got[i] {
			require.FailNow(t, what+" differ", "at %d of %d (got %d): got %v, want %v; next got %v",
				i, len(want), len(got), got[i], want[i], got[i+1:min(len(got), i+4)])
		}
	}
	require.Equal(t, len(want), len(got), "%s: %d elements, want %d", what, len(got), len(want))
}

// requireNoOpenTransaction checks, within limit, that the Kafka cluster
// at addr has no transaction open: none listed in a state other than
// Empty, CompleteCommit, CompleteAbort or Dead, and every partition's
// last stable offset equal to its high watermark. A transaction a kill
// left open is aborted at the transaction timeout at the latest.
func requireNoOpenTransaction(t *testing.T, addr string, limit time.Duration) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(addr, ",")...))
	require.NoError(t, err)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := t.Context()
	var open []string
	deadline := time.Now().Add(limit)
	for {
		open = open[:0]
		txns, err := adm.ListTransactions(ctx, nil, nil)
		require.NoError(t, err)
		for _, tx := range txns.Sorted() {
			switch tx.State {
			case "Empty", "CompleteCommit", "CompleteAbort", "Dead":
			default:
				open = append(open, tx.TxnID+" "+tx.State)
			}
		}
		hwm, err := adm.ListEndOffsets(ctx)
		require.NoError(t, err)
		lso, err := adm.ListCommittedOffsets(ctx)
		require.NoError(t, err)
		hwm.Each(func(o kadm.ListedOffset) {
			if s, ok := lso.Lookup(o.Topic, o.Partition); ok && s.Offset != o.Offset {
				open = append(open, fmt.Sprintf("%s/%d: last stable offset %d, high watermark %d", o.Topic, o.Partition, s.Offset, o.Offset))
			}
		})
		if len(open) == 0 {
			return
		}
		if time.Now().After(deadline) {
			require.FailNow(t, "transactions left open", "%s", strings.Join(open, "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestKill9KafkaTakeoverChild is the child process of
// TestKill9KafkaTakeover (both instances): it runs the app until the
// group has committed all the input (Env.Param records) to its end.
func TestKill9KafkaTakeoverChild(t *testing.T) {
	crashtest.RunChild(t, crashtest.Child{
		App: func(env *crashtest.Env) (crashtest.App, error) {
			topo, err := tkTopology()
			if err != nil {
				return nil, err
			}
			return duality.New(tkApp, topo, env.Broker, crashOptions(env)...)
		},
		Poll: func(ctx context.Context, env *crashtest.Env) (crashtest.Progress, error) {
			total, err := strconv.ParseInt(env.Param, 10, 64)
			if err != nil {
				return crashtest.Progress{}, fmt.Errorf("input size %q: %w", env.Param, err)
			}
			offs, err := crashtest.GroupOffsets(ctx, env.Broker, tkApp, "tk-in")
			n := offs.CommittedSum()
			return crashtest.Progress{N: n, Done: n == total && offs.CaughtUp()}, err
		},
	})
}
