package duality_test

import (
	"context"
	"fmt"
	"math/rand/v2"
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
	"github.com/duality-streams/duality/window"
)

// The windowed crash test's app, whose state expires by range deletion
// while it runs: "win-in" (keys k<i>) is counted in hopping windows of
// 40 ms every 20 ms, grace 10 ms, retention 100 ms, with final results
// only (store "win-hop", to "win-hop-out"), and in sessions of gap 8 ms,
// grace 10 ms, retention 60 ms, every update with tombstones on merges
// (store "win-sess", to "win-sess-out"); "win-left" is left-joined with
// "win-right" within 5 ms, grace 10 ms (store "win-join", to
// "win-join-out": "L<i>|R<j>" for a pair, "L<i>|-" for a left record that
// joined nothing).
//
// Event times rise by 0 to 2 ms a record, each record up to winDisorder
// earlier than that: less than every grace, so no record is late, and
// the outputs follow from the definitions of the windows (no processing
// order): see winModel.
const (
	winApp      = "wincrash"
	winParts    = 3
	winInput    = 12000 // records of "win-in"
	winJoin     = 6000  // records of "win-left" and "win-right"
	winKeys     = 12
	winJoinKeys = 8
	winKills    = 8 // 4 with -short
	// winMaxTime bounds a child's run: the last one processes the whole
	// input from the last commit, committing every 2 ms (crashOptions)
	// also between the records of a fetch, which under -race on two busy
	// cores takes up to about 20 s.
	winMaxTime  = 45 * time.Second
	winDisorder = 8 // ms, below every grace

	winHopSize, winHopAdvance, winHopGrace = 40, 20, 10 // ms
	winSessGap, winSessGrace               = 8, 10      // ms
	winJoinDiff, winJoinGrace              = 5, 10      // ms
)

// winBase is the event time of the first input record.
var winBase = time.UnixMilli(1_700_000_000_000)

// winTopology builds the app described above.
func winTopology() (*stream.Topology, error) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	b := stream.NewBuilder()
	g := stream.GroupByKey(stream.From(b, "win-in", codec.String(), codec.String()))
	window.Count(g, window.Hopping(ms(winHopSize), ms(winHopAdvance), ms(winHopGrace)).WithRetention(100*time.Millisecond),
		"win-hop", window.EmitOnWindowClose()).
		ToStream().To("win-hop-out")
	window.Count(g, window.Session(ms(winSessGap), ms(winSessGrace)).WithRetention(60*time.Millisecond), "win-sess").
		ToStream().To("win-sess-out")
	left := stream.GroupByKey(stream.From(b, "win-left", codec.String(), codec.String()))
	right := stream.GroupByKey(stream.From(b, "win-right", codec.String(), codec.String()))
	window.LeftJoin(left, right, window.JoinTimeDifference(ms(winJoinDiff), ms(winJoinGrace)),
		func(_, l, r string, found bool) string {
			if !found {
				return l + "|-"
			}
			return l + "|" + r
		}, "win-join").
		To("win-join-out")
	return b.Build()
}

// winRecords generates the input: n records of "win-in" and m of
// "win-left" or "win-right" (at random), with rising event times and
// disorder below every grace period.
func winRecords(rng *rand.Rand, n, m int) []broker.Record {
	var recs []broker.Record
	gen := func(count int, rec func(i int, ts time.Time) broker.Record) {
		clock := winBase
		for i := range count {
			clock = clock.Add(time.Duration(rng.IntN(3)) * time.Millisecond)
			ts := clock.Add(-time.Duration(rng.IntN(winDisorder+1)) * time.Millisecond)
			recs = append(recs, rec(i, ts))
		}
	}
	gen(n, func(i int, ts time.Time) broker.Record {
		return broker.Record{Topic: "win-in", Partition: broker.PartitionByKey, Timestamp: ts,
			Key: fmt.Appendf(nil, "k%d", rng.IntN(winKeys)), Value: fmt.Appendf(nil, "v%d", i)}
	})
	gen(m, func(i int, ts time.Time) broker.Record {
		r := broker.Record{Topic: "win-left", Partition: broker.PartitionByKey, Timestamp: ts,
			Key: fmt.Appendf(nil, "j%d", rng.IntN(winJoinKeys)), Value: fmt.Appendf(nil, "L%d", i)}
		if rng.IntN(2) == 0 {
			r.Topic, r.Value = "win-right", fmt.Appendf(nil, "R%d", i)
		}
		return r
	})
	return recs
}

// TestWindowKill9 runs the windowed app in a child process with Pebble
// state, kills it with SIGKILL at random moments (winKills times, 4 with
// -short: every other kill lands while the child starts and restores, the
// others once the committed input passes a random point), deletes the
// state directory after some kills (at least once), and restarts it until
// all input is processed. After every kill and at the end it checks the
// outputs against the committed input (winCheck): final results exactly
// once, the sessions, every join pair and unmatched left record exactly
// once. At the end it also checks that the hopping store's changelog holds
// no tombstone: its windows leave by range deletion, and what a restore
// brings back is deleted again before it can be emitted.
func TestWindowKill9(t *testing.T) { windowKill9(t, crashtest.Embedded) }

// TestWindowKill9Kafka is TestWindowKill9 on the Kafka backend: a kfake
// cluster in a process of its own (cmd/kfake) that the kills leave
// running, each commit a Kafka transaction, every check read
// read_committed.
func TestWindowKill9Kafka(t *testing.T) { windowKill9(t, crashtest.Kafka) }

func windowKill9(t *testing.T, backend crashtest.Backend) {
	kills := crashtest.Kills(winKills)
	if testing.Short() {
		kills = 4
	}
	x := crashtest.New(t, backend)
	b := x.Open()
	ctx := t.Context()
	for _, topic := range []string{"win-in", "win-left", "win-right", "win-hop-out", "win-sess-out", "win-join-out"} {
		require.NoError(t, b.CreateTopic(ctx, topic, broker.TopicConfig{Partitions: winParts}))
	}
	require.NoError(t, b.Produce(ctx, winRecords(x.Rand(), winInput, winJoin)))
	require.NoError(t, b.Close())

	const total = winInput + winJoin
	progress := crashtest.Spread(total, kills/2, 5*time.Millisecond)
	x.Run(crashtest.Plan{
		Kills: kills, MinKills: kills,
		Schedule: func(rng *rand.Rand, k int) (int64, time.Duration) {
			if k%2 == 0 {
				// Right after the start: while the child restores its
				// stores (or has just finished), at the first progress
				// line.
				return 0, crashtest.RandDelay(rng, 30*time.Millisecond)
			}
			return progress(rng, k/2)
		},
		Check:     func(t *testing.T, b broker.Broker) int { return winCheck(t, b, false) },
		WipeState: true,
		MaxTime:   winMaxTime,
	})

	b = x.Open()
	defer func() { require.NoError(t, b.Close()) }()
	require.Equal(t, total, winCheck(t, b, true))
	changelog := readTopic(t, b, winApp+"-win-hop-changelog")
	for _, r := range changelog {
		require.NotNil(t, r.Value, "a tombstone in the hopping store's changelog: %d/%d key %x", r.Partition, r.Offset, r.Key)
	}
	// The run must have done what the test is about: final results,
	// sessions merged (their tombstones), pairs and unmatched records.
	final, tombs, unmatched := len(readTopic(t, b, "win-hop-out")), 0, 0
	for _, r := range readTopic(t, b, "win-sess-out") {
		if r.Value == nil {
			tombs++
		}
	}
	joined := readTopic(t, b, "win-join-out")
	for _, r := range joined {
		if strings.HasSuffix(string(r.Value), "|-") {
			unmatched++
		}
	}
	t.Logf("%d final results, %d session tombstones, %d join results (%d unmatched), %d hopping changelog records",
		final, tombs, len(joined), unmatched, len(changelog))
	require.Positive(t, final)
	require.Positive(t, tombs)
	require.Positive(t, unmatched)
	require.Greater(t, len(joined), unmatched)
}

// winRec is an input record of the windowed crash test.
type winRec struct {
	key, val string
	ts       int64 // ms
}

// winKey is a window of a key, in epoch milliseconds: [start, end).
type winKey struct {
	key        string
	start, end int64
}

func (w winKey) String() string { return fmt.Sprintf("%s@[%d,%d)", w.key, w.start, w.end) }

// winCheck checks that the outputs hold exactly what the input below the
// group's committed offsets produces, and returns the number of committed
// input records; with all, every input record must be committed. Per
// input partition, with st the largest committed event time (the stream
// time the steps committed):
//   - win-hop-out: the count of every hopping window closed by st (end +
//     grace <= st), once each;
//   - win-sess-out: the newest value of each session (tombstones delete)
//     is the count of a session of the committed records (split where two
//     records of the key are more than the gap apart), each session
//     present, and no update appears twice;
//   - win-join-out: every pair of committed left and right records of a
//     key within the join windows, and every committed left record
//     without one whose time + before + after + grace < st (st over both
//     topics' partition), each once.
func winCheck(t *testing.T, b broker.Broker, all bool) int {
	t.Helper()
	ctx := t.Context()
	n := 0
	committedRecs := func(topic string) [winParts][]winRec {
		offs, err := crashtest.GroupOffsets(ctx, b, winApp, topic)
		require.NoError(t, err)
		var out [winParts][]winRec
		for _, r := range readTopic(t, b, topic) {
			if all {
				require.True(t, offs.IsCommitted(r), "%s/%d is not fully committed", topic, r.Partition)
			}
			if offs.IsCommitted(r) {
				out[r.Partition] = append(out[r.Partition], winRec{key: string(r.Key), val: string(r.Value), ts: r.Timestamp.UnixMilli()})
				n++
			}
		}
		return out
	}
	in, left, right := committedRecs("win-in"), committedRecs("win-left"), committedRecs("win-right")
	wkc := window.WindowedCodec(codec.String())
	decodeKey := func(k []byte) winKey {
		w, err := wkc.Decode(k)
		require.NoError(t, err)
		return winKey{w.Key, w.Start.UnixMilli(), w.End.UnixMilli()}
	}
	decodeCount := func(v []byte) int64 {
		c, err := codec.Int64().Decode(v)
		require.NoError(t, err)
		return c
	}

	// Hopping windows, final results.
	wantHop := map[winKey]int64{}
	for _, recs := range in {
		st := int64(-1)
		counts := map[winKey]int64{}
		for _, r := range recs {
			st = max(st, r.ts)
			for s := (r.ts - winHopSize + winHopAdvance) / winHopAdvance * winHopAdvance; s <= r.ts; s += winHopAdvance {
				counts[winKey{r.key, s, s + winHopSize}]++
			}
		}
		for w, c := range counts {
			if w.end+winHopGrace <= st {
				wantHop[w] = c
			}
		}
	}
	gotHop := map[winKey]int64{}
	for _, r := range readTopic(t, b, "win-hop-out") {
		w := decodeKey(r.Key)
		require.NotNil(t, r.Value, "a tombstone among the final results: %s", w)
		_, dup := gotHop[w]
		require.False(t, dup, "the final result of %s appears twice", w)
		gotHop[w] = decodeCount(r.Value)
	}
	requireSameMap(t, wantHop, gotHop, "final results of the hopping windows")

	// Sessions: the newest value of each.
	wantSess := map[winKey]int64{}
	for _, recs := range in {
		byKey := map[string][]int64{}
		for _, r := range recs {
			byKey[r.key] = append(byKey[r.key], r.ts)
		}
		for k, tss := range byKey {
			slices.Sort(tss)
			first, last, c := tss[0], tss[0], int64(0)
			for _, ts := range tss {
				if ts-last > winSessGap {
					wantSess[winKey{k, first, last + 1}] = c
					first, c = ts, 0
				}
				last = ts
				c++
			}
			wantSess[winKey{k, first, last + 1}] = c
		}
	}
	gotSess := map[winKey]int64{}
	type update struct {
		w winKey
		c int64 // -1: tombstone
	}
	seen := map[update]bool{}
	for _, r := range readTopic(t, b, "win-sess-out") {
		u := update{decodeKey(r.Key), -1}
		if r.Value != nil {
			u.c = decodeCount(r.Value)
		}
		require.False(t, seen[u], "session update %s = %d appears twice", u.w, u.c)
		seen[u] = true
		if u.c < 0 {
			delete(gotSess, u.w)
		} else {
			gotSess[u.w] = u.c
		}
	}
	requireSameMap(t, wantSess, gotSess, "sessions (newest value of each)")

	// The left join.
	wantJoin := map[string]int{}
	for p := range winParts {
		st := int64(-1)
		for _, r := range slices.Concat(left[p], right[p]) {
			st = max(st, r.ts)
		}
		for _, l := range left[p] {
			matched := false
			for _, r := range right[p] {
				if r.key == l.key && r.ts >= l.ts-winJoinDiff && r.ts <= l.ts+winJoinDiff {
					wantJoin[l.val+"|"+r.val]++
					matched = true
				}
			}
			if !matched && l.ts+2*winJoinDiff+winJoinGrace < st {
				wantJoin[l.val+"|-"]++
			}
		}
	}
	gotJoin := map[string]int{}
	for _, r := range readTopic(t, b, "win-join-out") {
		gotJoin[string(r.Value)]++
	}
	requireSameMap(t, wantJoin, gotJoin, "join results (with their number of occurrences)")
	return n
}

// requireSameMap fails with the entries missing from got, the extra ones
// and the differing ones (not two dumps of thousands of entries).
func requireSameMap[K comparable, V comparable](t *testing.T, want, got map[K]V, what string) {
	t.Helper()
	var diffs []string
	for k, w := range want {
		if g, ok := got[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("missing %v = %v", k, w))
		} else if g != w {
			diffs = append(diffs, fmt.Sprintf("%v = %v, want %v", k, g, w))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("extra %v = %v", k, g))
		}
	}
	slices.Sort(diffs)
	if len(diffs) > 20 {
		diffs = append(diffs[:20], fmt.Sprintf("... %d more", len(diffs)-20))
	}
	require.Empty(t, diffs, "%s differ from the committed input's (%d expected, %d output)", what, len(want), len(got))
}

// TestWindowKill9Child is the child process of TestWindowKill9: it runs
// the app until the group has committed every input partition to its end.
func TestWindowKill9Child(t *testing.T) { windowKill9Child(t) }

// TestWindowKill9KafkaChild is the child process of TestWindowKill9Kafka.
func TestWindowKill9KafkaChild(t *testing.T) { windowKill9Child(t) }

func windowKill9Child(t *testing.T) {
	crashtest.RunChild(t, crashtest.Child{
		App: func(env *crashtest.Env) (crashtest.App, error) {
			topo, err := winTopology()
			if err != nil {
				return nil, err
			}
			return duality.New(winApp, topo, env.Broker, crashOptions(env)...)
		},
		Poll: func(ctx context.Context, env *crashtest.Env) (crashtest.Progress, error) {
			offs, err := crashtest.GroupOffsets(ctx, env.Broker, winApp, "win-in", "win-left", "win-right")
			return crashtest.Progress{N: offs.CommittedSum(), Done: offs.CaughtUp()}, err
		},
	})
}
