package duality_test

import (
	"context"
	"fmt"
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

// The at-least-once crash test's app, run with
// duality.ProcessingGuarantee(duality.AtLeastOnce): every record of
// "alo-in" (key k<j>, value v<i>) is mapped to "out-v<i>" in "alo-out",
// counted per key (store "alo-counts", updates to "alo-counts-out"), and
// regrouped by the key's group g<j%7> through a repartition topic, where
// a second count (store "alo-groups", updates to "alo-groups-out") counts
// the records of each group: an aggregate behind two commits in a row.
const (
	aloApp     = "alocrash"
	aloParts   = 3
	aloInput   = 8000
	aloKeys    = 40
	aloGroups  = 7
	aloKills   = 4
	aloWorkers = 2
	aloMaxRecs = 200 // MaxUncommittedRecords
	aloRegroup = aloApp + "-regroup-repartition"
)

func aloTopology() (*stream.Topology, error) {
	b := stream.NewBuilder()
	in := stream.From(b, "alo-in", codec.String(), codec.String())
	stream.MapValues(in, func(v string) string { return "out-" + v }).To("alo-out")
	table.Count(stream.GroupByKey(in), "alo-counts").ToStream().To("alo-counts-out")
	byGroup := stream.GroupBy(in, func(k, _ string) string { return aloGroup(k) }, stream.Named("regroup"))
	table.Count(byGroup, "alo-groups").ToStream().To("alo-groups-out")
	return b.Build()
}

// aloGroup maps the key k<j> to its group g<j%7>.
func aloGroup(k string) string {
	var j int
	if _, err := fmt.Sscanf(k, "k%d", &j); err != nil {
		return "bad-" + k
	}
	return fmt.Sprintf("g%d", j%aloGroups)
}

// TestKill9AtLeastOnceKafka runs the app above on the Kafka backend (a
// kfake cluster in a process of its own) under AtLeastOnce, kills it with
// SIGKILL at random moments (a commit every 2 ms, so most kills land in or
// next to one; the state directory deleted after some), restarts it until
// all input is processed, and checks what at-least-once promises:
//
//   - after every kill, every input below the committed offsets has its
//     output in "alo-out" and its record in the repartition topic at least
//     once, each count is at least the number of committed records of its
//     key (of its group, counting the repartition topic's committed
//     records), and nothing else was ever written (no output without an
//     input);
//   - at the end, every input's output is present at least once, and no
//     count misses an input: each is at least the model's. A count may
//     exceed it: a kill between a commit's records and its offsets leaves
//     changelog records for input that is processed again. The inputs of
//     a cut commit number at most MaxUncommittedRecords+1 (a worker
//     commits once its output passes that; every record processed adds
//     at least one output record), a worker has at most one commit in
//     flight, so each kill counts at most workers*(MaxUncommittedRecords+1)
//     records twice: the test asserts that bound on the sum of the excess
//     of each count, and logs the duplicates and the excess.
func TestKill9AtLeastOnceKafka(t *testing.T) { aloKill9(t, crashtest.Kafka, false) }

// TestKill9AtLeastOnce is the same test on the embedded broker, whose
// at-least-once committer is its atomic one: there the checks are exact,
// each output once and each count equal to the model, as under
// ExactlyOnce.
func TestKill9AtLeastOnce(t *testing.T) { aloKill9(t, crashtest.Embedded, true) }

func aloKill9(t *testing.T, backend crashtest.Backend, exact bool) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	x := crashtest.New(t, backend)
	b := x.Open()
	ctx := t.Context()
	for _, topic := range []string{"alo-in", "alo-out", "alo-counts-out", "alo-groups-out"} {
		require.NoError(t, b.CreateTopic(ctx, topic, broker.TopicConfig{Partitions: aloParts}))
	}
	rng := x.Rand()
	recs := make([]broker.Record, aloInput)
	for i := range recs {
		recs[i] = broker.Record{Topic: "alo-in", Partition: broker.PartitionByKey,
			Key: fmt.Appendf(nil, "k%d", rng.IntN(aloKeys)), Value: fmt.Appendf(nil, "v%d", i)}
	}
	require.NoError(t, b.Produce(ctx, recs))
	require.NoError(t, b.Close())

	want := crashtest.Kills(aloKills)
	kills := x.Run(crashtest.Plan{
		Kills: want, MinKills: want,
		Schedule:  crashtest.Spread(aloInput, want, 5*time.Millisecond),
		Check:     func(t *testing.T, b broker.Broker) int { return checkALO(t, b, -1, exact) },
		WipeState: true,
	})

	b = x.Open()
	defer func() { require.NoError(t, b.Close()) }()
	require.Equal(t, aloInput, checkALO(t, b, kills, exact))
}

// checkALO checks the invariants listed at TestKill9AtLeastOnceKafka and
// returns the number of committed input records. With kills >= 0 all
// input must be committed, and the excess of the counts is bounded for
// that many kills; exact asks for exactly-once results.
func checkALO(t *testing.T, b broker.Broker, kills int, exact bool) int {
	t.Helper()
	offs, err := crashtest.GroupOffsets(t.Context(), b, aloApp, "alo-in", aloRegroup)
	require.NoError(t, err)
	if len(offs.Missing) > 0 {
		require.Negative(t, kills, "the app created its repartition topic")
		return 0 // killed before it created its internal topic
	}
	inputs := map[string]bool{}      // values of all input records
	committed := map[string]bool{}   // values of the committed ones
	keyInputs := map[string]int64{}  // committed records per key
	groupModel := map[string]int64{} // committed records per group
	for _, r := range readTopic(t, b, "alo-in") {
		inputs[string(r.Value)] = true
		if offs.IsCommitted(r) {
			committed[string(r.Value)] = true
			keyInputs[string(r.Key)]++
			groupModel[aloGroup(string(r.Key))]++
		}
	}
	if kills >= 0 {
		require.Len(t, committed, aloInput, "all input committed")
	}

	// Outputs and repartitioned records: at least once for each committed
	// input, and none for anything else.
	dups := requireAtLeastOnce(t, "alo-out", readTopic(t, b, "alo-out"), committed, inputs, "out-")
	rep := readTopic(t, b, aloRegroup)
	repDups := requireAtLeastOnce(t, aloRegroup, rep, committed, inputs, "")
	groupInputs := map[string]int64{} // committed repartition records per group
	for _, r := range rep {
		if offs.IsCommitted(r) {
			groupInputs[string(r.Key)]++
		}
	}

	// Counts: never below their committed input.
	keyExcess := requireCountsAtLeast(t, b, "alo-counts-out", keyInputs)
	groupExcess := requireCountsAtLeast(t, b, "alo-groups-out", groupInputs)
	if exact {
		require.Zero(t, dups+repDups, "duplicates where commits are atomic")
		require.Zero(t, keyExcess+groupExcess, "counts above their committed input where commits are atomic")
	}
	if kills >= 0 {
		// All input is committed: the key counts' excess is over the
		// input; the groups' is over the input too (duplicates of the
		// repartition topic included).
		groupExcess = requireCountsAtLeast(t, b, "alo-groups-out", groupModel)
		bound := int64(kills * aloWorkers * (aloMaxRecs + 1))
		t.Logf("after %d kills: %d outputs and %d repartitioned records duplicated; the counts exceed the input by %d (keys) and %d (groups); bound %d",
			kills, dups, repDups, keyExcess, groupExcess, bound)
		require.LessOrEqual(t, keyExcess, bound, "inputs counted twice per key")
		require.LessOrEqual(t, groupExcess, bound, "inputs counted twice per group")
	}
	return len(committed)
}

// requireAtLeastOnce checks that recs (of topic) hold prefix+v for every v
// of want at least once, and only prefix+v for v in all, and returns the
// number of duplicates (records beyond the first of each value).
func requireAtLeastOnce(t *testing.T, topic string, recs []broker.Record, want, all map[string]bool, prefix string) int {
	t.Helper()
	got := map[string]int{}
	for _, r := range recs {
		v := string(r.Value)
		require.True(t, len(v) >= len(prefix) && all[v[len(prefix):]], "%s holds %q, the output of no input", topic, v)
		got[v]++
	}
	missing := 0
	for v := range want {
		if got[prefix+v] == 0 {
			missing++
		}
	}
	require.Zero(t, missing, "%s misses the output of %d committed inputs", topic, missing)
	dups := 0
	for _, n := range got {
		dups += n - 1
	}
	return dups
}

// requireCountsAtLeast checks that the newest count of every key of want
// in topic (count updates) is at least want's, and returns by how much
// they exceed it in all.
func requireCountsAtLeast(t *testing.T, b broker.Broker, topic string, want map[string]int64) int64 {
	t.Helper()
	newest := map[string]int64{}
	for _, r := range readTopic(t, b, topic) {
		n, err := codec.Int64().Decode(r.Value)
		require.NoError(t, err)
		newest[string(r.Key)] = n
	}
	var excess int64
	for k, n := range want {
		require.GreaterOrEqual(t, newest[k], n, "%s: the count of %s misses committed input", topic, k)
		excess += newest[k] - n
	}
	return excess
}

// TestKill9AtLeastOnceKafkaChild is the child of TestKill9AtLeastOnceKafka.
func TestKill9AtLeastOnceKafkaChild(t *testing.T) { aloChild(t) }

// TestKill9AtLeastOnceChild is the child of TestKill9AtLeastOnce.
func TestKill9AtLeastOnceChild(t *testing.T) { aloChild(t) }

// aloChild runs the app until the group's committed offsets reach the
// ends of the input and of the repartition topic: under at-least-once
// the outputs of a commit are acknowledged before its offsets.
func aloChild(t *testing.T) {
	crashtest.RunChild(t, crashtest.Child{
		App: func(env *crashtest.Env) (crashtest.App, error) {
			topo, err := aloTopology()
			if err != nil {
				return nil, err
			}
			return duality.New(aloApp, topo, env.Broker,
				duality.ProcessingGuarantee(duality.AtLeastOnce),
				duality.StateDir(env.StateDir),
				duality.Workers(aloWorkers), duality.CommitInterval(2*time.Millisecond),
				duality.MaxUncommittedRecords(aloMaxRecs), duality.FetchMaxRecords(100))
		},
		Poll: func(ctx context.Context, env *crashtest.Env) (crashtest.Progress, error) {
			offs, err := crashtest.GroupOffsets(ctx, env.Broker, aloApp, "alo-in", aloRegroup)
			return crashtest.Progress{N: offs.CommittedSum("alo-in"), Done: offs.CaughtUp("alo-in", aloRegroup)}, err
		},
	})
}
