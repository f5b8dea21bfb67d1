package duality_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
)

var errPunct = errors.New("punctuation failed")

// tickCounter counts its wall-clock punctuations (every minute) in the
// store "ticks" and forwards "tick<n>"; the call number failAt fails
// after forwarding and writing. Every stream-time punctuation (every 10 s)
// forwards "st@<ms>"; records pass through.
type tickCounter struct {
	failAt int
	pc     stream.ProcessorContext[string, string]
	ticks  stream.BytesStore
}

func (p *tickCounter) Init(pc stream.ProcessorContext[string, string]) error {
	p.pc = pc
	var err error
	if p.ticks, err = pc.Store("ticks"); err != nil {
		return err
	}
	if _, err := pc.Schedule(10*time.Second, stream.PunctuateStreamTime, func(ctx context.Context, ts time.Time) error {
		return pc.Forward(ctx, stream.Record[string, string]{Key: "st", Value: fmt.Sprintf("st@%d", ts.UnixMilli())})
	}); err != nil {
		return err
	}
	_, err = pc.Schedule(time.Minute, stream.PunctuateWallClock, func(ctx context.Context, ts time.Time) error {
		n := 0
		if v, ok, err := p.ticks.Get([]byte("n")); err != nil {
			return err
		} else if ok {
			n, _ = strconv.Atoi(string(v))
		}
		n++
		if err := p.ticks.Put([]byte("n"), strconv.AppendInt(nil, int64(n), 10)); err != nil {
			return err
		}
		if err := pc.Forward(ctx, stream.Record[string, string]{Key: "tick", Value: fmt.Sprintf("tick%d", n)}); err != nil {
			return err
		}
		if n == p.failAt {
			return errPunct
		}
		return nil
	})
	return err
}

func (p *tickCounter) Process(ctx context.Context, rec stream.Record[string, string]) error {
	return p.pc.Forward(ctx, stream.Record[string, string]{Key: rec.Key, Value: rec.Value})
}

func (p *tickCounter) Close() error { return nil }

// outValues returns the values of topic's records (one partition).
func outValues(t *testing.T, b broker.Broker, topic string) []string {
	t.Helper()
	var vals []string
	for _, r := range readTopic(t, b, topic) {
		vals = append(vals, string(r.Value))
	}
	return vals
}

// TestPunctuationExactlyOnce runs punctuations on the embedded broker with
// an injected clock: stream-time punctuations fire as records move stream
// time; wall-clock ones fire as the clock moves, without input. Their
// output and store writes are committed like records: a punctuation that
// fails (after forwarding and writing) leaves nothing behind, and after a
// restart (state rebuilt from the changelog) the count goes on without a
// gap or a duplicate.
func TestPunctuationExactlyOnce(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "in", 1)
	createTopic(t, b, "out", 1)
	sb := stream.NewBuilder()
	failAt := 3
	stream.Process(stream.From(sb, "in", codec.String(), codec.String()), func() stream.Processor[string, string, string, string] {
		return &tickCounter{failAt: failAt}
	}, stream.WithStores(stream.BytesStoreSpec("ticks")), stream.Named("ticker")).To("out")
	topo, err := sb.Build()
	require.NoError(t, err)
	var clock atomic.Int64 // ms
	clock.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli())
	now := func() time.Time { return time.UnixMilli(clock.Load()) }
	newApp := func() *duality.App {
		app, err := duality.New("punct", topo, b, duality.Clock(now), duality.FetchMaxWait(5*time.Millisecond))
		require.NoError(t, err)
		return app
	}

	app := newApp()
	done := make(chan error, 1)
	go func() { done <- app.Run(t.Context()) }()
	var in []broker.Record
	for _, sec := range []int64{0, 5, 12} {
		in = append(in, broker.Record{Topic: "in", Key: []byte("k"), Value: fmt.Appendf(nil, "r%d", sec), Timestamp: time.Unix(sec, 0)})
	}
	require.NoError(t, b.Produce(t.Context(), in))
	awaitRecords(t, b, "out", 5)
	require.Equal(t, []string{"r0", "st@0", "r5", "r12", "st@12000"}, outValues(t, b, "out"))
	for n := 1; n <= 2; n++ {
		clock.Add(time.Minute.Milliseconds())
		awaitRecords(t, b, "out", 5+n)
	}
	clock.Add(time.Minute.Milliseconds())
	select {
	case err := <-done:
		var pe *duality.ProcessingError
		require.ErrorAs(t, err, &pe)
		require.Equal(t, "wall-clock", pe.Punctuation)
		require.ErrorIs(t, err, errPunct)
	case <-time.After(10 * time.Second):
		require.FailNow(t, "the failed punctuation did not stop the app")
	}
	require.Equal(t, []string{"r0", "st@0", "r5", "r12", "st@12000", "tick1", "tick2"}, outValues(t, b, "out"))

	// Restart: the store is rebuilt from its changelog (count 2); the
	// punctuation runs again when due. Stream time starts again with the
	// first record.
	failAt = 0
	app = newApp()
	stop, _ := runApp(t, app)
	// (A record first: the task exists, so its schedule started.)
	require.NoError(t, b.Produce(t.Context(), []broker.Record{{Topic: "in", Key: []byte("k"), Value: []byte("r25"), Timestamp: time.Unix(25, 0)}}))
	awaitRecords(t, b, "out", 9)
	clock.Add(time.Minute.Milliseconds())
	awaitRecords(t, b, "out", 10)
	require.NoError(t, stop())
	require.Equal(t, []string{"r0", "st@0", "r5", "r12", "st@12000", "tick1", "tick2", "r25", "st@25000", "tick3"}, outValues(t, b, "out"))
	require.Positive(t, app.Metrics().Punctuations)
}

// TestIdleStreamTimeAdvance: with IdleStreamTimeAdvance, an idle task's
// stream time follows the app's clock, d behind its last input, and fires
// stream-time punctuations without input.
func TestIdleStreamTimeAdvance(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "in", 1)
	createTopic(t, b, "out", 1)
	sb := stream.NewBuilder()
	stream.Process(stream.From(sb, "in", codec.String(), codec.String()), func() stream.Processor[string, string, string, string] {
		return &tickCounter{}
	}, stream.WithStores(stream.BytesStoreSpec("ticks"))).To("out")
	topo, err := sb.Build()
	require.NoError(t, err)
	var clock atomic.Int64 // ms
	clock.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli())
	now := func() time.Time { return time.UnixMilli(clock.Load()) }
	app, err := duality.New("idle-advance", topo, b, duality.Clock(now), duality.FetchMaxWait(5*time.Millisecond),
		duality.IdleStreamTimeAdvance(30*time.Second))
	require.NoError(t, err)
	stop, _ := runApp(t, app)
	require.NoError(t, b.Produce(t.Context(), []broker.Record{{Topic: "in", Key: []byte("k"), Value: []byte("r5"), Timestamp: time.Unix(5, 0)}}))
	awaitRecords(t, b, "out", 2) // r5, st@5000
	// 36 s of clock later (in two steps the worker may see apart), stream
	// time is 5 s + 36 s - 30 s = 11 s: the punctuation due at 10 s fires,
	// once, with a stream time in [10 s, 20 s). (That nothing fires
	// before 30 s of idleness is not asserted: absence has no signal to
	// wait for.)
	clock.Add(34_000)
	clock.Add(2_000)
	awaitRecords(t, b, "out", 3)
	require.NoError(t, stop())
	got := outValues(t, b, "out")
	require.Len(t, got, 3)
	require.Equal(t, []string{"r5", "st@5000"}, got[:2])
	st, err := strconv.ParseInt(got[2][len("st@"):], 10, 64)
	require.NoError(t, err)
	require.GreaterOrEqual(t, st, int64(10_000))
	require.Less(t, st, int64(20_000))
}
