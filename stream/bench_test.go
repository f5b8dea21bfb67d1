package stream_test

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/internal/dsl"
	"github.com/duality-streams/duality/internal/topology"
	"github.com/duality-streams/duality/stream"
)

// countingEnv is a TaskEnv that counts and drops sent records, so the
// benchmark measures the DSL's per-record cost alone.
type countingEnv struct {
	sent  int
	bytes int
	// steps are the step counters handed out (nil: none, as a runtime
	// that counts nothing).
	steps []topology.StepCounts
}

func (e *countingEnv) AppID() string                           { return "bench" }
func (e *countingEnv) TaskID() topology.TaskID                 { return topology.TaskID{} }
func (e *countingEnv) TopicName(logical string, _ bool) string { return logical }
func (e *countingEnv) Logger() *slog.Logger                    { return slog.New(slog.DiscardHandler) }
func (e *countingEnv) Now() time.Time                          { return time.Time{} }
func (e *countingEnv) Send(_ context.Context, r broker.Record) error {
	e.sent++
	e.bytes += len(r.Key) + len(r.Value)
	return nil
}

// The env has no stores and runs no punctuations: the topologies it
// serves use neither.
var errNoState = errors.New("counting env: no stores or punctuations")

func (e *countingEnv) Store(string) (topology.KV, error)             { return nil, errNoState }
func (e *countingEnv) GlobalStore(string) (topology.GlobalKV, error) { return nil, errNoState }
func (e *countingEnv) StreamTime() int64                             { return topology.NoTime }
func (e *countingEnv) Schedule(time.Duration, topology.PunctuationType, topology.Punctuator) (func(), error) {
	return nil, errNoState
}
func (e *countingEnv) StreamTimer(topology.Punctuator) (func(int64), func(), error) {
	return nil, nil, errNoState
}
func (e *countingEnv) RestoreStreamTime(int64)                          {}
func (e *countingEnv) CountLate()                                       {}
func (e *countingEnv) StepCounters() []topology.StepCounts              { return e.steps }
func (e *countingEnv) Item(ctx context.Context, it topology.Item) error { return it.Emit(ctx) }

// BenchmarkFilterMapValuesTo runs the benchmark pipeline (100-byte
// values) through one task, without a broker.
func BenchmarkFilterMapValuesTo(b *testing.B) {
	// steps: the runtime's counting of each step's records in and out
	// (duality.StepMetrics), as it runs in an app; none: without it.
	for _, counted := range []bool{false, true} {
		name := "steps=none"
		if counted {
			name = "steps=counted"
		}
		b.Run(name, func(b *testing.B) { benchFilterMapValuesTo(b, counted) })
	}
}

func benchFilterMapValuesTo(b *testing.B, counted bool) {
	sb := stream.NewBuilder()
	s := stream.From(sb, "in", codec.Bytes(), codec.Bytes())
	s = s.Filter(func(_, v []byte) bool { return v[0] != 'x' })
	s = stream.MapValues(s, func(v []byte) []byte { v[1] = 'M'; return v })
	s.To("out")
	topo, err := sb.Build()
	if err != nil {
		b.Fatal(err)
	}
	st := dsl.Unwrap((*dsl.Topology)(topo)).SubTopologies[0]
	env := &countingEnv{}
	if counted {
		env.steps = make([]topology.StepCounts, len(st.Steps))
	}
	proc, err := st.NewTask(env)
	if err != nil {
		b.Fatal(err)
	}
	defer proc.Close()
	recs := make([]broker.Record, 1024)
	for i := range recs {
		recs[i] = broker.Record{Topic: "in", Key: []byte("key-" + strconv.Itoa(i)), Value: []byte(strings.Repeat("v", 100)), Offset: int64(i), Timestamp: time.UnixMilli(int64(i))}
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(recs[0].Key) + len(recs[0].Value)))
	i := 0
	for b.Loop() {
		if err := proc.Process(ctx, &recs[i&1023]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	if env.sent != i {
		b.Fatalf("sent %d of %d", env.sent, i)
	}
	if counted && env.steps[len(env.steps)-1].In != uint64(i) {
		b.Fatalf("sink counted %d of %d", env.steps[len(env.steps)-1].In, i)
	}
}
