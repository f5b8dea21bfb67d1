package duality_test

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/pprof"
	"strings"
	"sync"
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

// openBroker opens an embedded broker in a temp dir and closes it at the
// end of the test.
func openBroker(t *testing.T, opts ...embedded.Option) *embedded.Broker {
	t.Helper()
	b, err := embedded.Open(t.TempDir(), opts...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	return b
}

func createTopic(t *testing.T, b broker.Broker, name string, partitions int32) {
	t.Helper()
	require.NoError(t, b.CreateTopic(t.Context(), name, broker.TopicConfig{Partitions: partitions}))
}

// produceN appends records with keys "k<i>" and values "v<i>" for i in
// [from, to), partitioned by key.
func produceN(t *testing.T, b broker.Broker, topic string, from, to int) {
	t.Helper()
	recs := make([]broker.Record, 0, to-from)
	for i := from; i < to; i++ {
		recs = append(recs, broker.Record{
			Topic: topic, Partition: broker.PartitionByKey,
			Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%d", i),
		})
	}
	require.NoError(t, b.Produce(t.Context(), recs))
}

// procFunc is a processor built from a function; it implements the
// topology contract for hand-written topologies.
type procFunc struct {
	env     topology.TaskEnv
	process func(ctx context.Context, env topology.TaskEnv, rec *broker.Record) error
	closed  func()
}

func (p *procFunc) Process(ctx context.Context, rec *broker.Record) error {
	return p.process(ctx, p.env, rec)
}
func (p *procFunc) Timestamp(*broker.Record) (int64, bool) { return 0, false }
func (p *procFunc) Begin()                                 {}
func (p *procFunc) Skip()                                  {}
func (p *procFunc) Flush(context.Context) error            { return nil }
func (p *procFunc) Close() error {
	if p.closed != nil {
		p.closed()
	}
	return nil
}

// wrap validates a topology written by hand, as Build validates a built
// one, and returns it as New takes it.
func wrap(t testing.TB, raw *topology.Topology) *stream.Topology {
	t.Helper()
	topo, err := dsl.Wrap(raw)
	require.NoError(t, err)
	return (*stream.Topology)(topo)
}

// mapTopology reads sources and writes fn's results to sink.
func mapTopology(t testing.TB, sources []string, sink string, fn func(ctx context.Context, env topology.TaskEnv, rec *broker.Record) error) *stream.Topology {
	st := &topology.SubTopology{ID: 0, Sinks: []topology.Sink{{Topic: sink}}}
	for _, s := range sources {
		st.Sources = append(st.Sources, topology.Source{Topic: s})
	}
	st.NewTask = func(env topology.TaskEnv) (topology.Processor, error) {
		return &procFunc{env: env, process: fn}, nil
	}
	return wrap(t, &topology.Topology{SubTopologies: []*topology.SubTopology{st}})
}

// prefixTo returns a processing function that sends "out-"+value with the
// same key to sink.
func prefixTo(sink string) func(context.Context, topology.TaskEnv, *broker.Record) error {
	return func(ctx context.Context, env topology.TaskEnv, rec *broker.Record) error {
		return env.Send(ctx, broker.Record{
			Topic: env.TopicName(sink, false), Partition: broker.PartitionByKey,
			Key: rec.Key, Value: append([]byte("out-"), rec.Value...),
		})
	}
}

// counting wraps fn and closes done once n records were processed.
func counting(n int64, fn func(context.Context, topology.TaskEnv, *broker.Record) error) (func(context.Context, topology.TaskEnv, *broker.Record) error, <-chan struct{}) {
	var mu sync.Mutex
	var count int64
	done := make(chan struct{})
	return func(ctx context.Context, env topology.TaskEnv, rec *broker.Record) error {
		if err := fn(ctx, env, rec); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		count++
		if count == n {
			close(done)
		}
		return nil
	}, done
}

// readTopic returns every record of topic, partition by partition.
func readTopic(t *testing.T, b broker.Broker, topic string) []broker.Record {
	t.Helper()
	recs, err := broker.ReadAll(t.Context(), b, topic)
	require.NoError(t, err)
	return recs
}

// awaitRecords polls topic until it holds at least n records, and fails
// the test after a generous bound.
func awaitRecords(t *testing.T, b broker.Broker, topic string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	info, err := b.DescribeTopic(ctx, topic)
	require.NoError(t, err)
	c, err := b.NewConsumer(broker.ConsumerOptions{})
	require.NoError(t, err)
	defer c.Close()
	from := map[broker.TopicPartition]int64{}
	for p := range info.Config.Partitions {
		offs, err := b.ListOffsets(ctx, topic, p)
		require.NoError(t, err)
		from[broker.TopicPartition{Topic: topic, Partition: p}] = offs.Earliest
	}
	c.Assign(from)
	for seen := 0; seen < n; {
		polled, err := c.Poll(ctx, time.Second)
		require.NoError(t, err, "waiting for %d records in %q, have %d", n, topic, seen)
		seen += len(polled.Records)
	}
}

// requireExactlyOnce checks that topic holds "out-v<i>" exactly once for
// every i in [0, n) and nothing else.
func requireExactlyOnce(t *testing.T, b broker.Broker, topic string, n int) {
	t.Helper()
	counts := map[string]int{}
	for _, r := range readTopic(t, b, topic) {
		counts[string(r.Value)]++
	}
	var missing, dup []string
	for i := range n {
		v := fmt.Sprintf("out-v%d", i)
		switch c := counts[v]; {
		case c == 0:
			missing = append(missing, v)
		case c > 1:
			dup = append(dup, fmt.Sprintf("%s x%d", v, c))
		}
		delete(counts, v)
	}
	require.Empty(t, missing, "missing outputs")
	require.Empty(t, dup, "duplicated outputs")
	require.Empty(t, counts, "unexpected outputs")
}

// runApp runs app.Run in a goroutine and returns a function that cancels
// it and returns Run's error.
func runApp(t *testing.T, app *duality.App) (stop func() error, done <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- app.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			err = <-errc
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop, errc
}

// eventually polls cond every 2 ms for at most 10 s (a bound, not a
// synchronisation delay) and fails the test if it never holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			require.FailNow(t, "timed out waiting: "+what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// runtimeGoroutines returns the stacks of goroutines running the runtime's
// code.
func runtimeGoroutines() []string {
	var sb strings.Builder
	_ = pprof.Lookup("goroutine").WriteTo(&sb, 2)
	var found []string
	for g := range strings.SplitSeq(sb.String(), "\n\n") {
		if strings.Contains(g, "internal/runtime.(*worker)") || strings.Contains(g, "internal/runtime.(*App)") || strings.Contains(g, "internal/runtime.(*globals)") {
			found = append(found, g)
		}
	}
	return found
}

// logRecorder is a slog.Handler that keeps every record, with the
// attributes of the logger that made it, for tests of what an app logs.
// It is safe for concurrent use.
type logRecorder struct {
	mu    *sync.Mutex
	recs  *[]loggedRecord
	attrs []slog.Attr
}

// loggedRecord is a record a logRecorder kept.
type loggedRecord struct {
	Level   slog.Level
	Message string
	Attrs   map[string]any
}

func newLogRecorder() logRecorder {
	return logRecorder{mu: new(sync.Mutex), recs: new([]loggedRecord)}
}

func (h logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (h logRecorder) Handle(_ context.Context, r slog.Record) error {
	lr := loggedRecord{Level: r.Level, Message: r.Message, Attrs: map[string]any{}}
	for _, a := range h.attrs {
		lr.Attrs[a.Key] = a.Value.Any()
	}
	r.Attrs(func(a slog.Attr) bool {
		lr.Attrs[a.Key] = a.Value.Any()
		return true
	})
	h.mu.Lock()
	*h.recs = append(*h.recs, lr)
	h.mu.Unlock()
	return nil
}

func (h logRecorder) WithAttrs(attrs []slog.Attr) slog.Handler {
	h.attrs = append(h.attrs[:len(h.attrs):len(h.attrs)], attrs...)
	return h
}

func (h logRecorder) WithGroup(string) slog.Handler { return h } // the runtime uses no groups

// at returns the records kept at level.
func (h logRecorder) at(level slog.Level) []loggedRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []loggedRecord
	for _, r := range *h.recs {
		if r.Level == level {
			out = append(out, r)
		}
	}
	return out
}
