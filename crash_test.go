package duality_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/internal/dsl"
	"github.com/duality-streams/duality/internal/topology"
	"github.com/duality-streams/duality/stream"
)

const (
	crashEnv     = "DUALITY_APP_CRASH_DIR"
	crashInput   = 20000
	crashParts   = 4
	crashKills   = 6
	crashMaxTime = 20 * time.Second
	crashRep     = "crash-rep" // the app's internal topic
)

// TestKill9 runs a whole app in a child process on an embedded data
// directory with its input produced beforehand (two sub-topologies: one
// forwards the input through an internal topic, the other writes the
// output), kills it with SIGKILL at a
// random moment several times, restarts it until it has processed all
// input, and checks that the output topic holds every input record's output
// exactly once.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	dir := t.TempDir()
	b, err := embedded.Open(dir)
	require.NoError(t, err)
	ctx := t.Context()
	require.NoError(t, b.CreateTopic(ctx, "in", broker.TopicConfig{Partitions: crashParts}))
	require.NoError(t, b.CreateTopic(ctx, "out", broker.TopicConfig{Partitions: crashParts}))
	produceN(t, b, "in", 0, crashInput)
	require.NoError(t, b.Close())

	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	kills := 0
	for cycle := 0; ; cycle++ {
		require.Less(t, cycle, 50, "too many cycles")
		// Kill once the committed input passes a random point of the
		// cycle's share of the input, after a further random delay of up
		// to 10 ms, so that kills land at random moments of processing
		// and committing whatever the machine's speed.
		target, delay := -1, time.Duration(0)
		if kills < crashKills {
			share := crashInput / (crashKills + 1)
			target = kills*share + rng.IntN(share)
			delay = time.Duration(rng.IntN(10_000)) * time.Microsecond
		}
		if done := runCrashChild(t, dir, target, delay); done {
			break
		}
		kills++
		committed := checkCommittedOutput(t, dir)
		t.Logf("cycle %d: killed %v after the committed input passed %d records; %d committed", cycle, delay, target, committed)
	}
	t.Logf("killed the app %d times", kills)
	require.Equal(t, crashKills, kills, "the child finished before all kills; make the input larger")

	require.Equal(t, crashInput, checkCommittedOutput(t, dir))
	b, err = embedded.Open(dir)
	require.NoError(t, err)
	defer func() { require.NoError(t, b.Close()) }()
	requireExactlyOnce(t, b, "out", crashInput)
}

// checkCommittedOutput checks the invariant a killed app must leave behind
// at each of its two stages: the internal topic holds exactly the records
// forwarded for the input below the committed input offsets, and the output
// topic exactly the outputs of the internal records below the committed
// internal offsets, once each. It returns the number of committed input
// records.
func checkCommittedOutput(t *testing.T, dir string) int {
	t.Helper()
	b, err := embedded.Open(dir, embedded.WithCleanupInterval(-1))
	require.NoError(t, err)
	defer func() { require.NoError(t, b.Close()) }()
	n := checkStage(t, b, "in", crashRep, "")
	checkStage(t, b, crashRep, "out", "out-")
	return n
}

// checkStage checks that dst holds prefix+value once for every record of
// src below the group's committed offsets, and nothing else, and returns
// their number. It checks nothing before the internal topic exists.
func checkStage(t *testing.T, b broker.Broker, src, dst, prefix string) int {
	t.Helper()
	for _, topic := range []string{src, dst} {
		if _, err := b.DescribeTopic(t.Context(), topic); errors.Is(err, broker.ErrUnknownTopic) {
			return 0 // killed before it created the internal topic
		}
	}
	var tps []broker.TopicPartition
	for p := range int32(crashParts) {
		tps = append(tps, broker.TopicPartition{Topic: src, Partition: p})
	}
	committed, err := b.FetchOffsets(t.Context(), "crash", tps)
	require.NoError(t, err)
	want := map[string]int{}
	n := 0
	for _, r := range readTopic(t, b, src) {
		if r.Offset < committed[broker.TopicPartition{Topic: r.Topic, Partition: r.Partition}] {
			want[prefix+string(r.Value)]++
			n++
		}
	}
	got := map[string]int{}
	for _, r := range readTopic(t, b, dst) {
		got[string(r.Value)]++
	}
	require.Equal(t, want, got, "%s differs from what the committed records of %s produce", dst, src)
	return n
}

// runCrashChild starts TestKill9's child with runChild (state_test.go).
func runCrashChild(t *testing.T, dir string, target int, delay time.Duration) (done bool) {
	t.Helper()
	return runChild(t, "^TestKill9Child$", crashEnv, dir, target, delay)
}

// TestKill9Child is the child process of TestKill9; it skips unless
// started by it.
func TestKill9Child(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("child process of TestKill9; runs only when re-executed by it")
	}
	if err := crashChild(dir); err != nil {
		fmt.Fprintf(os.Stderr, "crash child: %v\n", err)
		os.Exit(3)
	}
	fmt.Println("done") // then return: os.Exit(0) inside a test is refused
}

// crashChild runs the app until the group's committed offsets reach the
// end of every input partition.
func crashChild(dir string) (err error) {
	b, err := embedded.Open(dir, embedded.WithCleanupInterval(-1))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, b.Close()) }()
	forward := func(ctx context.Context, env topology.TaskEnv, rec *broker.Record) error {
		return env.Send(ctx, broker.Record{Topic: env.TopicName("rep", true), Partition: broker.PartitionByKey, Key: rec.Key, Value: rec.Value})
	}
	topo := &topology.Topology{
		SubTopologies: []*topology.SubTopology{
			{ID: 0, Sources: []topology.Source{{Topic: "in"}}, Sinks: []topology.Sink{{Topic: "rep", Internal: true}},
				NewTask: func(env topology.TaskEnv) (topology.Processor, error) {
					return &procFunc{env: env, process: forward}, nil
				}},
			{ID: 1, Sources: []topology.Source{{Topic: "rep", Internal: true}}, Sinks: []topology.Sink{{Topic: "out"}},
				NewTask: func(env topology.TaskEnv) (topology.Processor, error) {
					return &procFunc{env: env, process: prefixTo("out")}, nil
				}},
		},
		InternalTopics: []topology.InternalTopic{{Name: "rep", WrittenBy: 0}},
	}
	wrapped, err := dsl.Wrap(topo)
	if err != nil {
		return err
	}
	app, err := duality.New("crash", (*stream.Topology)(wrapped), b,
		duality.Workers(2), duality.CommitInterval(2*time.Millisecond),
		duality.MaxUncommittedRecords(200), duality.FetchMaxRecords(100))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), crashMaxTime)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- app.Run(runCtx) }()

	var tps []broker.TopicPartition
	for _, topic := range []string{"in", crashRep} {
		for p := range int32(crashParts) {
			tps = append(tps, broker.TopicPartition{Topic: topic, Partition: p})
		}
	}
	// The child's own exit condition: poll the committed offsets until both
	// stages are done. The printed progress counts committed input records.
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-errc:
			stop()
			return fmt.Errorf("app stopped early: %w", err)
		case <-tick.C:
		}
		committed, err := b.FetchOffsets(ctx, "crash", tps)
		if errors.Is(err, broker.ErrUnknownTopic) { // the internal topic is not created yet
			fmt.Println("committed 0")
			continue
		}
		if err != nil {
			stop()
			return errors.Join(err, <-errc)
		}
		caughtUp := true
		var sum int64
		for _, tp := range tps {
			offs, err := b.ListOffsets(ctx, tp.Topic, tp.Partition)
			if err != nil {
				stop()
				return errors.Join(err, <-errc)
			}
			caughtUp = caughtUp && committed[tp] == offs.Latest
			if tp.Topic == "in" {
				sum += committed[tp]
			}
		}
		fmt.Println("committed", sum)
		// Group offsets can be readable a moment before the records of the
		// same commit are fetchable (the embedded broker publishes records
		// after the sync), so also wait for the output to be visible.
		var outSum int64
		for p := range int32(crashParts) {
			offs, err := b.ListOffsets(ctx, "out", p)
			if err != nil {
				stop()
				return errors.Join(err, <-errc)
			}
			outSum += offs.Latest
		}
		if caughtUp && outSum >= crashInput {
			stop()
			return <-errc
		}
	}
}
