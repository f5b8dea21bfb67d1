package runtime

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/internal/topology"
)

// memBroker opens an in-memory embedded broker, closed when the test
// ends, with the topics (name: partitions).
func memBroker(t *testing.T, topics map[string]int32) *embedded.Broker {
	t.Helper()
	b, err := embedded.Open("/b", embedded.WithFS(vfs.NewMem()), embedded.WithCleanupInterval(-1))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	for name, n := range topics {
		require.NoError(t, b.CreateTopic(t.Context(), name, broker.TopicConfig{Partitions: n}))
	}
	return b
}

// newStepper opens an in-memory embedded broker with the topics (name:
// partitions), and steps an app "app" running topo on it.
func newStepper(t *testing.T, topo *topology.Topology, topics map[string]int32) (*App, *Stepper, broker.Broker) {
	t.Helper()
	b := memBroker(t, topics)
	cfg := DefaultConfig()
	cfg.Workers = 1
	a, err := New("app", topo, b, cfg)
	require.NoError(t, err)
	s, recs, err := a.Step(t.Context())
	require.NoError(t, err)
	require.Empty(t, recs)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return a, s, b
}

// produce appends rec to the broker and returns it as a fetch would.
func produce(t *testing.T, b broker.Broker, rec broker.Record) broker.Record {
	t.Helper()
	recs := []broker.Record{rec}
	require.NoError(t, b.Produce(t.Context(), recs))
	return recs[0]
}

// counter counts the records of each key in the store "counts", sends
// "<key>=<count>" to "out", and fails a record whose value is "fail"
// after writing its count and sending it.
type counter struct {
	env topology.TaskEnv
	kv  topology.KV
}

func (c *counter) Process(ctx context.Context, rec *broker.Record) error {
	n := 0
	if v, ok, err := c.kv.Get(rec.Key); err != nil {
		return err
	} else if ok {
		n, _ = strconv.Atoi(string(v))
	}
	n++
	if err := c.kv.Put(rec.Key, []byte(strconv.Itoa(n))); err != nil {
		return err
	}
	if err := c.env.Send(ctx, broker.Record{Topic: "out", Partition: rec.Partition, Key: rec.Key, Value: fmt.Appendf(nil, "%s=%d", rec.Key, n)}); err != nil {
		return err
	}
	if string(rec.Value) == "fail" {
		return errors.New("failed")
	}
	return nil
}

func (c *counter) Timestamp(*broker.Record) (int64, bool) { return 0, false }
func (c *counter) Begin()                                 {}
func (c *counter) Skip()                                  {}
func (c *counter) Flush(context.Context) error            { return nil }
func (c *counter) Close() error                           { return nil }

// counterTopology is one sub-topology that reads the topics sources and
// counts their records' keys in the store "counts" (see counter).
func counterTopology(sources ...string) *topology.Topology {
	st := &topology.SubTopology{
		Sinks:  []topology.Sink{{Topic: "out"}},
		Stores: []topology.StoreSpec{{Name: "counts"}},
		NewTask: func(env topology.TaskEnv) (topology.Processor, error) {
			kv, err := env.Store("counts")
			return &counter{env: env, kv: kv}, err
		},
	}
	for _, s := range sources {
		st.Sources = append(st.Sources, topology.Source{Topic: s})
	}
	return &topology.Topology{SubTopologies: []*topology.SubTopology{st}}
}

// TestStepperProcess: each Process is one commit, which writes the
// record's output and changelog records and the input offset; a failing
// record is undone as under SkipOnError and Process returns its
// *ProcessingError.
func TestStepperProcess(t *testing.T) {
	a, s, b := newStepper(t, counterTopology("in"), map[string]int32{"in": 2, "out": 2})
	ctx := t.Context()
	tasks, global := s.Reads("in")
	require.True(t, tasks)
	require.False(t, global)
	n, ok := s.StorePartitions("counts")
	require.True(t, ok)
	require.Equal(t, int32(2), n)

	step := func(key, value string, p int32) ([]string, error) {
		rec := produce(t, b, broker.Record{Topic: "in", Partition: p, Key: []byte(key), Value: []byte(value), Timestamp: time.UnixMilli(10)})
		recs, err := s.Process(ctx, rec)
		var got []string
		for _, r := range recs {
			got = append(got, fmt.Sprintf("%s/%d@%d %s:%s", r.Topic, r.Partition, r.Offset, r.Key, r.Value))
		}
		return got, err
	}
	got, err := step("a", "x", 1)
	require.NoError(t, err)
	require.Equal(t, []string{"out/1@0 a:a=1", "app-counts-changelog/1@0 a:1"}, got)
	got, err = step("a", "x", 1)
	require.NoError(t, err)
	require.Equal(t, []string{"out/1@1 a:a=2", "app-counts-changelog/1@1 a:2"}, got)

	got, err = step("a", "fail", 1)
	var pe *ProcessingError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, ProcessingError{Task: topology.TaskID{Partition: 1}, Topic: "in", Partition: 1, Offset: 2, Err: pe.Err}, *pe)
	require.Empty(t, got, "the failed record's output and store writes are dropped")
	v, ok, err := s.StoreGet("counts", 1, []byte("a"))
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "2", string(v))
	offs, err := b.FetchOffsets(ctx, "app", []broker.TopicPartition{{Topic: "in", Partition: 1}})
	require.NoError(t, err)
	require.Equal(t, int64(3), offs[broker.TopicPartition{Topic: "in", Partition: 1}], "the failed record is committed as processed")

	got, err = step("b", "x", 0)
	require.NoError(t, err)
	require.Equal(t, []string{"out/0@0 b:b=1", "app-counts-changelog/0@0 b:1"}, got)
	ms, ok := s.StreamTime(topology.TaskID{Partition: 0})
	require.True(t, ok)
	require.Equal(t, int64(10), ms)

	c, err := s.StoreRange("counts", 1)
	require.NoError(t, err)
	var pairs []string
	for k, v := range c.All() {
		pairs = append(pairs, string(k)+"="+string(v))
	}
	require.NoError(t, c.Close())
	require.Equal(t, []string{"a=2"}, pairs)
	m := a.Metrics()
	require.Equal(t, uint64(3), m.RecordsProcessed)
	require.Equal(t, uint64(1), m.RecordsSkipped)

	_, err = s.Process(ctx, broker.Record{Topic: "out", Partition: 0})
	require.ErrorIs(t, err, broker.ErrUnknownTopic)
	_, _, err = a.Step(ctx)
	require.ErrorIs(t, err, ErrRunCalled)
}

// timerProc drives a one-shot stream-time timer (topology.TaskEnv.StreamTimer)
// from the values of its records: "set:<due>" arms it, "then:<due>" makes
// its next firing arm it again at due, "cancel" cancels it. It also has a
// stream-time punctuation every 10 ms, registered first. Each firing
// sends "timer@<ts>" or "tick@<ts>" to "out".
type timerProc struct {
	env    topology.TaskEnv
	set    func(int64)
	cancel func()
	then   int64
}

func newTimerProc(env topology.TaskEnv) (topology.Processor, error) {
	p := &timerProc{env: env}
	if _, err := env.Schedule(10*time.Millisecond, topology.StreamTimePunctuation, func(ctx context.Context, ts int64) error {
		return p.send(ctx, fmt.Sprint("tick@", ts))
	}); err != nil {
		return nil, err
	}
	var err error
	p.set, p.cancel, err = env.StreamTimer(func(ctx context.Context, ts int64) error {
		if p.then != 0 {
			p.set(p.then)
			p.then = 0
		}
		return p.send(ctx, fmt.Sprint("timer@", ts))
	})
	return p, err
}

func (p *timerProc) send(ctx context.Context, v string) error {
	return p.env.Send(ctx, broker.Record{Topic: "out", Partition: 0, Value: []byte(v)})
}

func (p *timerProc) Process(_ context.Context, rec *broker.Record) error {
	for cmd := range strings.FieldsSeq(string(rec.Value)) {
		name, arg, _ := strings.Cut(cmd, ":")
		n, _ := strconv.ParseInt(arg, 10, 64)
		switch name {
		case "set":
			p.set(n)
		case "then":
			p.then = n
		case "cancel":
			p.cancel()
		}
	}
	return nil
}

func (p *timerProc) Timestamp(*broker.Record) (int64, bool) { return 0, false }
func (p *timerProc) Begin()                                 {}
func (p *timerProc) Skip()                                  {}
func (p *timerProc) Flush(context.Context) error            { return nil }
func (p *timerProc) Close() error                           { return nil }

// TestStreamTimer: a one-shot stream-time timer fires once when stream
// time reaches its due time, in due-time order with the task's other
// stream-time punctuations (registration order on ties), is disarmed
// after firing unless its punctuator sets it again, takes the last due
// time set, and does nothing once canceled.
func TestStreamTimer(t *testing.T) {
	steps := []struct {
		ts   int64    // the record's timestamp, ms
		cmds string   // its value: the commands
		want []string // what the punctuations send after it
	}{
		{5, "set:20", []string{"tick@5"}},         // armed at 20; the tick is due at 0
		{15, "", []string{"tick@15"}},             // the timer is not due yet
		{20, "", []string{"tick@20", "timer@20"}}, // same due time: registration order
		{25, "", nil},                               // fired once: disarmed
		{25, "set:25", []string{"timer@25"}},        // due at stream time: fires after the record
		{26, "set:32 then:38", nil},                 // armed at 32, re-armed at 38 by its firing
		{35, "", []string{"tick@35", "timer@35"}},   // due at 30 and 32: due-time order
		{45, "", []string{"timer@45", "tick@45"}},   // due at 38 and 40: the timer first
		{46, "set:60 set:70", nil},                  // set replaces the due time
		{65, "", []string{"tick@65"}},               // not at 60
		{70, "", []string{"tick@70", "timer@70"}},   // at 70
		{71, "set:80 set:9223372036854775807", nil}, // math.MaxInt64 disarms
		{85, "", []string{"tick@85"}},               // disarmed
		{86, "set:90 cancel set:95", nil},           // canceled for good
		{100, "", []string{"tick@100"}},             // neither at 90 nor at 95
		{101, "set:101", nil},                       // set after cancel: no-op
		{110, "", []string{"tick@110"}},
	}
	topo := &topology.Topology{SubTopologies: []*topology.SubTopology{{
		Sources: []topology.Source{{Topic: "in"}},
		Sinks:   []topology.Sink{{Topic: "out"}},
		NewTask: newTimerProc,
	}}}
	a, s, b := newStepper(t, topo, map[string]int32{"in": 1, "out": 1})
	total := 0
	for i, st := range steps {
		rec := produce(t, b, broker.Record{Topic: "in", Partition: 0, Value: []byte(st.cmds), Timestamp: time.UnixMilli(st.ts)})
		recs, err := s.Process(t.Context(), rec)
		require.NoError(t, err)
		var got []string
		for _, r := range recs {
			got = append(got, string(r.Value))
		}
		require.Equal(t, st.want, got, "step %d (ts %d, %q)", i, st.ts, st.cmds)
		total += len(st.want)
	}
	require.Equal(t, uint64(total), a.Metrics().Punctuations)
}
