package duality_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/internal/crashtest"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
)

// The aggregation crash test's app: "agg-in" (key k<i>, an int64 amount)
// is counted per key (store "agg-counts", changes to "agg-counts-out"),
// and regrouped through a repartition topic by the key's group g<i%7>
// whose amounts are summed by Reduce (store "agg-sums", changes to
// "agg-sums-out"); "agg-users" is materialised as a table with updates and
// deletes (store "agg-users", changes to "agg-users-out"). Aggregations
// emit every update whether the record cache is on or off (the cache
// only merges changelog records), so the outputs are exact.
const (
	aggApp      = "aggcrash"
	aggParts    = 3
	aggInput    = 8000
	aggKeys     = 40
	aggGroups   = 7
	aggMore     = 1000 // input added after the last restart
	aggUserKeys = 120
	aggKills    = 5 // 2 with -short
	aggRegroup  = aggApp + "-regroup-repartition"
)

// aggTopology builds the app described above.
func aggTopology() (*stream.Topology, error) {
	b := stream.NewBuilder()
	in := stream.From(b, "agg-in", codec.String(), codec.Int64())
	table.Count(stream.GroupByKey(in), "agg-counts").
		ToStream().To("agg-counts-out")
	byGroup := stream.GroupBy(in, func(k string, _ int64) string { return aggGroup(k) },
		stream.Named("regroup"))
	table.Reduce(byGroup, func(agg, v int64) int64 { return agg + v }, "agg-sums").
		ToStream().To("agg-sums-out")
	table.From(b, "agg-users", codec.String(), codec.String(), "agg-users").
		ToStream().To("agg-users-out")
	return b.Build()
}

// aggGroup maps the input key k<i> to its group g<i%7>.
func aggGroup(k string) string {
	var i int
	if _, err := fmt.Sscanf(k, "k%d", &i); err != nil {
		return "bad-" + k
	}
	return fmt.Sprintf("g%d", i%aggGroups)
}

// aggRecords generates input: n records of "agg-in" over aggKeys keys
// with amounts 1..9, and a record of "agg-users" after every fifth, over
// aggUserKeys users, one in six a tombstone.
func aggRecords(rng *rand.Rand, n int) []broker.Record {
	var recs []broker.Record
	for i := range n {
		v, _ := codec.Int64().Append(nil, int64(1+rng.IntN(9)))
		recs = append(recs, broker.Record{Topic: "agg-in", Partition: broker.PartitionByKey,
			Key: fmt.Appendf(nil, "k%d", rng.IntN(aggKeys)), Value: v})
		if i%5 == 0 {
			u := broker.Record{Topic: "agg-users", Partition: broker.PartitionByKey,
				Key: fmt.Appendf(nil, "u%d", rng.IntN(aggUserKeys))}
			if rng.IntN(6) != 0 {
				u.Value = fmt.Appendf(nil, "name-%d", i)
			}
			recs = append(recs, u)
		}
	}
	return recs
}

// TestAggKill9 runs the aggregations in a child process with Pebble state,
// with the record cache on or off at random, kills it with SIGKILL at
// random moments (several kills, 2 with -short; with a commit every 2 ms
// most land in or next to a commit; after some the state directory is
// deleted too), restarts it until all input is processed, and checks after
// every kill that each output topic holds exactly the changes of the
// committed input, and at the end that every output holds each update
// exactly once, in order per key. Then it runs the app twice more in this
// process, on the state left behind and after deleting the state
// directory: both times every table read through duality.Query equals the
// table computed from the input and the run outputs nothing; the second
// run then processes more input, which continues from the rebuilt tables.
func TestAggKill9(t *testing.T) { aggKill9(t, crashtest.Embedded, false) }

// TestAggKill9Kafka is TestAggKill9 on the Kafka backend: a kfake cluster
// in a process of its own (cmd/kfake) that the kills leave running, each
// commit a Kafka transaction, every check read read_committed.
func TestAggKill9Kafka(t *testing.T) { aggKill9(t, crashtest.Kafka, false) }

// TestAggKill9Standby is TestAggKill9 with standbys on: each child runs
// two instances of the app (see standbyPair), each with its own state
// directory and a standby replica of the other's tasks, started in an
// order each child picks at random, so that after a kill tasks move
// between the instances and restore from the standby copies the kills
// left behind.
func TestAggKill9Standby(t *testing.T) { aggKill9(t, crashtest.Embedded, true) }

// TestAggKill9StandbyKafka is TestAggKill9Standby on the Kafka backend,
// where a standby copy records the changelog offsets past its last
// record (transaction markers, aborted records) as read.
func TestAggKill9StandbyKafka(t *testing.T) { aggKill9(t, crashtest.Kafka, true) }

func aggKill9(t *testing.T, backend crashtest.Backend, standby bool) {
	kills := crashtest.Kills(aggKills)
	if testing.Short() {
		kills = 2
	}
	x := crashtest.New(t, backend)
	b := x.Open()
	ctx := t.Context()
	for _, topic := range []string{"agg-in", "agg-counts-out", "agg-sums-out", "agg-users-out"} {
		require.NoError(t, b.CreateTopic(ctx, topic, broker.TopicConfig{Partitions: aggParts}))
	}
	require.NoError(t, b.CreateTopic(ctx, "agg-users", broker.TopicConfig{Partitions: aggParts, Cleanup: broker.CleanupCompact}))
	rng := x.Rand()
	require.NoError(t, b.Produce(ctx, aggRecords(rng, aggInput)))
	require.NoError(t, b.Close())

	x.Run(crashtest.Plan{
		Kills: kills, MinKills: kills,
		Schedule: crashtest.Spread(aggInput, kills, 5*time.Millisecond),
		// The record cache changes the changelog (newest value per key, or
		// every write in order): each run picks one at random.
		Variant: func(rng *rand.Rand) string {
			v := "cache on"
			if rng.IntN(2) == 0 {
				v = aggCacheOff
			}
			if standby {
				v += []string{", " + standbyAFirst, ", " + standbyBFirst}[rng.IntN(2)]
			}
			return v
		},
		Check:     func(t *testing.T, b broker.Broker) int { return checkAggOutputs(t, b, false) },
		WipeState: true,
	})

	b = x.Open()
	defer func() { require.NoError(t, b.Close()) }()
	require.Equal(t, aggInput, checkAggOutputs(t, b, true))
	ends := outputEnds(t, b)

	// Run again on the state left behind, then after deleting the state
	// directory: both times, before any new input, every table read
	// through Query equals the one computed from the input, and the run
	// outputs nothing. The second run then processes more input, which
	// must continue from the rebuilt tables, each update output once.
	stateDir := x.StateDir()
	if standby {
		stateDir = filepath.Join(stateDir, "a") // one of the pair's
	}
	for i, run := range []string{"on the state left behind", "after deleting the state directory"} {
		if i == 1 {
			require.NoError(t, os.RemoveAll(x.StateDir()))
		}
		topo, err := aggTopology()
		require.NoError(t, err)
		app, err := duality.New(aggApp, topo, b, duality.StateDir(stateDir))
		require.NoError(t, err)
		stop, _ := runApp(t, app)
		requireAggTables(t, app, b, run)
		require.Equal(t, ends, outputEnds(t, b), "outputs were added by a run %s with no new input", run)
		if i == 1 {
			require.NoError(t, b.Produce(ctx, aggRecords(rng, aggMore)))
			waitAggCommitted(t, b)
			requireAggTables(t, app, b, "after more input")
		}
		require.NoError(t, stop())
	}
	require.Equal(t, aggInput+aggMore, checkAggOutputs(t, b, true))
}

// requireAggTables checks that the tables of the running app, read
// through Query, equal those computed from the whole input. A store
// applies a commit's writes just after the commit, so it polls for a
// bounded time before it reports the difference.
func requireAggTables(t *testing.T, app *duality.App, b broker.Broker, run string) {
	t.Helper()
	want := expectedTables(t, b)
	var got aggTables
	deadline := time.Now().Add(10 * time.Second)
	for {
		got = aggTables{
			counts: queryAll(t, app, "agg-counts", codec.Int64()),
			sums:   queryAll(t, app, "agg-sums", codec.Int64()),
			users:  queryAll(t, app, "agg-users", codec.String()),
		}
		if reflect.DeepEqual(want, got) || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	require.Equal(t, want.counts, got.counts, "counts %s", run)
	require.Equal(t, want.sums, got.sums, "sums %s", run)
	require.Equal(t, want.users, got.users, "users %s", run)
}

// waitAggCommitted waits until the group has committed every partition of
// the app's inputs and repartition topic to its end, within a bound.
func waitAggCommitted(t *testing.T, b broker.Broker) {
	t.Helper()
	ctx := t.Context()
	eventually(t, "all input committed", func() bool {
		lag, err := broker.GroupLag(ctx, b, aggApp, "agg-in", "agg-users", aggRegroup)
		require.NoError(t, err)
		return lag == 0
	})
}

// aggTables are the tables the app must hold, computed from its input.
type aggTables struct {
	counts, sums map[string]int64
	users        map[string]string
}

// expectedTables computes the app's tables from the whole input.
func expectedTables(t *testing.T, b broker.Broker) aggTables {
	t.Helper()
	want := aggTables{counts: map[string]int64{}, sums: map[string]int64{}, users: map[string]string{}}
	for _, r := range readTopic(t, b, "agg-in") {
		v, err := codec.Int64().Decode(r.Value)
		require.NoError(t, err)
		want.counts[string(r.Key)]++
		want.sums[aggGroup(string(r.Key))] += v
	}
	for _, r := range readTopic(t, b, "agg-users") { // per partition in offset order
		if r.Value == nil {
			delete(want.users, string(r.Key))
		} else {
			want.users[string(r.Key)] = string(r.Value)
		}
	}
	return want
}

// queryAll reads every row of a store of the running app through
// duality.Query, retrying while the store is not ready (being restored).
func queryAll[V any](t *testing.T, app *duality.App, name string, vc codec.Codec[V]) map[string]V {
	t.Helper()
	q, err := duality.Query(app, name, codec.String(), vc)
	require.NoError(t, err)
	var got map[string]V
	eventually(t, "store "+name+" answers", func() bool {
		got = map[string]V{}
		seq, errf := q.All(t.Context())
		maps.Insert(got, seq)
		err := errf()
		if err != nil && duality.IsRetryableQueryError(err) {
			return false
		}
		require.NoError(t, err)
		return true
	})
	return got
}

// outputEnds returns the end offsets of the output topics' partitions.
func outputEnds(t *testing.T, b broker.Broker) map[broker.TopicPartition]int64 {
	t.Helper()
	ends := map[broker.TopicPartition]int64{}
	for _, topic := range []string{"agg-counts-out", "agg-sums-out", "agg-users-out"} {
		for p := range int32(aggParts) {
			offs, err := b.ListOffsets(t.Context(), topic, p)
			require.NoError(t, err)
			ends[broker.TopicPartition{Topic: topic, Partition: p}] = offs.Latest
		}
	}
	return ends
}

// checkAggOutputs checks that the output topics hold exactly the changes
// of the input below the group's committed offsets, once each and in
// order per key, and returns the number of committed "agg-in" records.
// With all set, every input must be committed.
//   - agg-counts-out: for each key, 1..m, m its committed input records;
//   - agg-users-out: for each user, its committed "agg-users" records in
//     order (a tombstone as a tombstone);
//   - agg-sums-out: for each group, the running sums of the committed
//     records of the repartition topic, in that topic's order.
func checkAggOutputs(t *testing.T, b broker.Broker, all bool) int {
	t.Helper()
	ctx := t.Context()
	committedOf := func(topic string) (crashtest.Offsets, bool) {
		offs, err := crashtest.GroupOffsets(ctx, b, aggApp, topic)
		require.NoError(t, err)
		if len(offs.Missing) > 0 {
			return offs, false // the app was killed before it created the topic
		}
		if all {
			for tp, end := range offs.End {
				require.Equal(t, end, offs.Committed[tp], "%s/%d is not fully committed", tp.Topic, tp.Partition)
			}
		}
		return offs, true
	}
	outputs := func(topic string) map[string][]string {
		got := map[string][]string{}
		for _, r := range readTopic(t, b, topic) {
			got[string(r.Key)] = append(got[string(r.Key)], aggValue(t, topic, r.Value))
		}
		return got
	}

	// Counts and the users table: sub-topologies reading the input.
	inCommitted, _ := committedOf("agg-in")
	committed := inCommitted
	wantCounts := map[string][]string{}
	n := 0
	for _, r := range readTopic(t, b, "agg-in") {
		if committed.IsCommitted(r) {
			k := string(r.Key)
			wantCounts[k] = append(wantCounts[k], fmt.Sprint(len(wantCounts[k])+1))
			n++
		}
	}
	require.Equal(t, wantCounts, outputs("agg-counts-out"), "the counts differ from those of the committed input")

	committed, _ = committedOf("agg-users")
	// The table emits on change: a record equal to the row it holds, or
	// a tombstone of a user it does not hold, changes nothing and emits
	// nothing.
	wantUsers := map[string][]string{}
	rows := map[string]string{}
	for _, r := range readTopic(t, b, "agg-users") {
		if committed.IsCommitted(r) {
			k := string(r.Key)
			row, had := rows[k]
			switch {
			case r.Value == nil && !had, r.Value != nil && had && row == string(r.Value):
				continue
			case r.Value == nil:
				delete(rows, k)
			default:
				rows[k] = string(r.Value)
			}
			wantUsers[k] = append(wantUsers[k], aggValue(t, "agg-users", r.Value))
		}
	}
	require.Equal(t, wantUsers, outputs("agg-users-out"), "the users table's changes differ from the committed updates")

	// Sums: the second stage, after the repartition topic, whose
	// records must be exactly the committed input's, each once.
	committed, ok := committedOf(aggRegroup)
	wantSums := map[string][]string{}
	if ok {
		var regrouped []string
		sums := map[string]int64{}
		for _, r := range readTopic(t, b, aggRegroup) {
			v, err := codec.Int64().Decode(r.Value)
			require.NoError(t, err)
			regrouped = append(regrouped, fmt.Sprintf("%s=%d", r.Key, v))
			if committed.IsCommitted(r) {
				k := string(r.Key)
				sums[k] += v
				wantSums[k] = append(wantSums[k], fmt.Sprint(sums[k]))
			}
		}
		var fromInput []string
		for _, r := range readTopic(t, b, "agg-in") {
			if inCommitted.IsCommitted(r) {
				v, err := codec.Int64().Decode(r.Value)
				require.NoError(t, err)
				fromInput = append(fromInput, fmt.Sprintf("%s=%d", aggGroup(string(r.Key)), v))
			}
		}
		slices.Sort(regrouped)
		slices.Sort(fromInput)
		require.Equal(t, fromInput, regrouped, "the repartition topic differs from the committed input, regrouped")
	}
	require.Equal(t, wantSums, outputs("agg-sums-out"), "the sums differ from the running sums of the committed repartitioned records")
	return n
}

// aggValue renders a record value of topic for comparisons: counts and
// sums as numbers, strings as they are, a tombstone as "<nil>".
func aggValue(t *testing.T, topic string, v []byte) string {
	t.Helper()
	switch {
	case v == nil:
		return "<nil>"
	case topic == "agg-counts-out" || topic == "agg-sums-out":
		n, err := codec.Int64().Decode(v)
		require.NoError(t, err)
		return fmt.Sprint(n)
	}
	return string(v)
}

// aggCacheOff is the variant of TestAggKill9's child that runs with the
// record cache off.
const aggCacheOff = "cache off"

// TestAggKill9Child is the child process of TestAggKill9: it runs the app
// until the group has committed every input partition and repartition
// topic partition to its end.
func TestAggKill9Child(t *testing.T) { aggKill9Child(t, false) }

// TestAggKill9KafkaChild is the child process of TestAggKill9Kafka.
func TestAggKill9KafkaChild(t *testing.T) { aggKill9Child(t, false) }

// TestAggKill9StandbyChild is the child process of TestAggKill9Standby.
func TestAggKill9StandbyChild(t *testing.T) { aggKill9Child(t, true) }

// TestAggKill9StandbyKafkaChild is the child process of
// TestAggKill9StandbyKafka.
func TestAggKill9StandbyKafkaChild(t *testing.T) { aggKill9Child(t, true) }

func aggKill9Child(t *testing.T, standby bool) {
	crashtest.RunChild(t, crashtest.Child{
		App: func(env *crashtest.Env) (crashtest.App, error) {
			newApp := func(stateDir string, more ...duality.Option) (*duality.App, error) {
				topo, err := aggTopology()
				if err != nil {
					return nil, err
				}
				opts := crashOptions(env)
				if strings.Contains(env.Variant, aggCacheOff) {
					opts = append(opts, duality.CacheMaxBytes(0))
				}
				opts = append(opts, duality.StateDir(stateDir))
				return duality.New(aggApp, topo, env.Broker, append(opts, more...)...)
			}
			if !standby {
				return newApp(env.StateDir)
			}
			var pair standbyPair
			for i, name := range []string{"a", "b"} {
				app, err := newApp(filepath.Join(env.StateDir, name), duality.NumStandbyReplicas(1))
				if err != nil {
					return nil, err
				}
				pair.apps[i] = app
			}
			if strings.Contains(env.Variant, standbyBFirst) {
				pair.apps[0], pair.apps[1] = pair.apps[1], pair.apps[0]
			}
			return &pair, nil
		},
		Poll: func(ctx context.Context, env *crashtest.Env) (crashtest.Progress, error) {
			offs, err := crashtest.GroupOffsets(ctx, env.Broker, aggApp, "agg-in", "agg-users", aggRegroup)
			n := offs.CommittedSum("agg-in")
			return crashtest.Progress{N: n, Done: offs.CaughtUp() && n == aggInput}, err
		},
	})
}

// The variants of TestAggKill9Standby's child: which instance joins the
// group first, and so gets which partitions.
const (
	standbyAFirst = "instance a first"
	standbyBFirst = "instance b first"
)

// standbyPair runs two instances of an app in one process, as a
// crashtest.App: the second joins once the first has its assignment, and
// both stop when either fails or ctx ends.
type standbyPair struct {
	apps [2]*duality.App
}

// Run runs both apps until ctx ends or one of them fails, and returns
// their errors.
func (p *standbyPair) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	run := func(app *duality.App) {
		go func() {
			err := app.Run(ctx)
			cancel() // one stopped: stop the other
			errc <- err
		}()
	}
	run(p.apps[0])
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for p.apps[0].Metrics().Assignments == 0 && ctx.Err() == nil {
		<-tick.C
	}
	run(p.apps[1])
	return errors.Join(<-errc, <-errc)
}
