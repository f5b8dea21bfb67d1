package duality_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/crashtest"
	"github.com/duality-streams/duality/internal/dsl"
	"github.com/duality-streams/duality/internal/topology"
	"github.com/duality-streams/duality/stream"
)

const (
	crashInput = 20000
	crashParts = 4
	crashKills = 7
	crashRep   = "crash-rep" // the app's internal topic
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
	kill9(t, crashtest.Embedded, crashtest.Kills(crashKills))
}

// TestKill9Kafka is TestKill9 on the Kafka backend: the app in the child
// runs on a kfake cluster served by a process of its own (cmd/kfake),
// which the kills leave running; every commit is a Kafka transaction, and
// the checks read the topics read_committed.
func TestKill9Kafka(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	kill9(t, crashtest.Kafka, crashtest.Kills(crashKills))
}

// kill9 runs TestKill9 on backend, with kills kills.
func kill9(t *testing.T, backend crashtest.Backend, kills int) {
	x := crashtest.New(t, backend)
	b := x.Open()
	ctx := t.Context()
	require.NoError(t, b.CreateTopic(ctx, "in", broker.TopicConfig{Partitions: crashParts}))
	require.NoError(t, b.CreateTopic(ctx, "out", broker.TopicConfig{Partitions: crashParts}))
	produceN(t, b, "in", 0, crashInput)
	require.NoError(t, b.Close())

	x.Run(crashtest.Plan{
		Kills: kills, MinKills: kills,
		Schedule: crashtest.Spread(crashInput, kills, 10*time.Millisecond),
		Check:    checkCommittedOutput,
	})

	b = x.Open()
	defer func() { require.NoError(t, b.Close()) }()
	require.Equal(t, crashInput, checkCommittedOutput(t, b))
	requireExactlyOnce(t, b, "out", crashInput)
}

// checkCommittedOutput checks the invariant a killed app must leave behind
// at each of its two stages: the internal topic holds exactly the records
// forwarded for the input below the committed input offsets, and the output
// topic exactly the outputs of the internal records below the committed
// internal offsets, once each. It returns the number of committed input
// records.
func checkCommittedOutput(t *testing.T, b broker.Broker) int {
	t.Helper()
	n := checkStage(t, b, "in", crashRep, "")
	checkStage(t, b, crashRep, "out", "out-")
	return n
}

// checkStage checks that dst holds prefix+value once for every record of
// src below the group's committed offsets, and nothing else, and returns
// their number. It checks nothing before the internal topic exists.
func checkStage(t *testing.T, b broker.Broker, src, dst, prefix string) int {
	t.Helper()
	offs, err := crashtest.GroupOffsets(t.Context(), b, "crash", src, dst)
	require.NoError(t, err)
	if len(offs.Missing) > 0 {
		return 0 // killed before it created the internal topic
	}
	want := map[string]int{}
	n := 0
	for _, r := range readTopic(t, b, src) {
		if offs.IsCommitted(r) {
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

// TestKill9Child is the child process of TestKill9: it runs the app until
// the group's committed offsets reach the end of every input partition.
func TestKill9Child(t *testing.T) { kill9Child(t) }

// TestKill9KafkaChild is the child process of TestKill9Kafka.
func TestKill9KafkaChild(t *testing.T) { kill9Child(t) }

func kill9Child(t *testing.T) {
	crashtest.RunChild(t, crashtest.Child{App: newCrashApp, Poll: func(ctx context.Context, env *crashtest.Env) (crashtest.Progress, error) {
		offs, err := crashtest.GroupOffsets(ctx, env.Broker, "crash", "in", crashRep, "out")
		// Group offsets can be readable a moment before the records of the
		// same commit are fetchable (the embedded broker publishes records
		// after the sync), so also wait for the output to be visible.
		return crashtest.Progress{
			N:    offs.CommittedSum("in"),
			Done: offs.CaughtUp("in", crashRep) && offs.EndSum("out") >= crashInput,
		}, err
	}})
}

// newCrashApp builds TestKill9's app.
func newCrashApp(env *crashtest.Env) (crashtest.App, error) {
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
		return nil, err
	}
	return duality.New("crash", (*stream.Topology)(wrapped), env.Broker, crashOptions(env)...)
}

// crashOptions are the options of the kill -9 tests' apps: state in the
// child's state directory, and small batches and frequent commits (two
// workers, a commit every 2 ms or 200 records, fetches of 100 records), so
// that kills land in or next to a commit.
func crashOptions(env *crashtest.Env) []duality.Option {
	opts := []duality.Option{
		duality.StateDir(env.StateDir),
		duality.Workers(2), duality.CommitInterval(2 * time.Millisecond),
		duality.MaxUncommittedRecords(200), duality.FetchMaxRecords(100),
	}
	if l := crashtest.DebugLogger(env); l != nil {
		opts = append(opts, duality.Logger(l)) // CRASHDEBUG
	}
	return opts
}
