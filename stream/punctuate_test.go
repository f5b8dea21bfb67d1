package stream_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
)

var errTick = errors.New("tick failed")

// ticker forwards "st@<ms>" at every stream-time punctuation (interval
// 10 s) and, at every wall-clock punctuation (interval 1 min), counts the
// call in the store "ticks" and forwards "tick<n>"; it cancels the
// wall-clock punctuation after cancelAfter calls and fails the call
// failAt (after forwarding and writing).
type ticker struct {
	cancelAfter, failAt int
	pc                  stream.ProcessorContext[string, string]
	ticks               stream.BytesStore
	wall                stream.Cancellable
	seen                []string // record value and stream time in Process
}

func (p *ticker) Init(pc stream.ProcessorContext[string, string]) error {
	p.pc = pc
	var err error
	if p.ticks, err = pc.Store("ticks"); err != nil {
		return err
	}
	if _, err := pc.Schedule(10*time.Second, stream.PunctuateStreamTime, func(ctx context.Context, ts time.Time) error {
		rc := pc.RecordContext()
		if rc.Offset != -1 || rc.Partition != -1 || rc.Topic != "" || !rc.Timestamp.Equal(ts) {
			return fmt.Errorf("record context in a punctuator: %+v", rc)
		}
		return pc.Forward(ctx, stream.Record[string, string]{Key: "st", Value: fmt.Sprintf("st@%d", ts.UnixMilli())})
	}); err != nil {
		return err
	}
	p.wall, err = pc.Schedule(time.Minute, stream.PunctuateWallClock, p.tick)
	return err
}

func (p *ticker) tick(ctx context.Context, ts time.Time) error {
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
	// A zero timestamp takes the punctuation's time.
	if err := p.pc.Forward(ctx, stream.Record[string, string]{Key: "tick", Value: fmt.Sprintf("tick%d@%d", n, ts.Unix())}); err != nil {
		return err
	}
	if n == p.failAt {
		return errTick
	}
	if n == p.cancelAfter {
		p.wall.Cancel()
		p.wall.Cancel() // idempotent
	}
	return nil
}

func (p *ticker) Process(ctx context.Context, rec stream.Record[string, string]) error {
	p.seen = append(p.seen, fmt.Sprintf("%s@%d", rec.Value, p.pc.StreamTime().UnixMilli()))
	return p.pc.Forward(ctx, stream.Record[string, string]{Key: rec.Key, Value: rec.Value})
}

func (p *ticker) Close() error { return nil }

func tickerDriver(t *testing.T, p *ticker) *streamtest.Driver {
	t.Helper()
	b := stream.NewBuilder()
	stream.Process(stream.From(b, "in", str, str), func() stream.Processor[string, string, string, string] { return p },
		stream.WithStores(stream.BytesStoreSpec("ticks")), stream.Named("ticker")).
		To("out")
	topo, err := b.Build()
	require.NoError(t, err)
	d, err := streamtest.New(topo, streamtest.AppID("punct"))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, d.Close()) })
	return d
}

func TestPunctuateStreamTime(t *testing.T) {
	p := &ticker{}
	d := tickerDriver(t, p)
	in := streamtest.Input(d, "in", str, str)
	_, ok := d.StreamTime(0, 0)
	require.False(t, ok, "no stream time before the first record")
	for _, sec := range []int64{0, 5, 12, 3, 35, 39} {
		require.NoError(t, in.PipeAt(t.Context(), "k", fmt.Sprintf("r%d", sec), time.Unix(sec, 0)))
	}
	st, ok := d.StreamTime(0, 0)
	require.True(t, ok)
	require.Equal(t, time.Unix(39, 0).UTC(), st)
	// StreamTime in Process includes the record; an older record does not
	// move it back.
	require.Equal(t, []string{"r0@0", "r5@5000", "r12@12000", "r3@12000", "r35@35000", "r39@39000"}, p.seen)
	got, err := streamtest.Output(d, "out", str, str).ReadAll()
	require.NoError(t, err)
	var vals []string
	for _, r := range got {
		vals = append(vals, r.Value)
		if r.Key == "st" {
			// Forwarded from a punctuation: stamped with its time.
			require.Equal(t, r.Value, fmt.Sprintf("st@%d", r.Timestamp.UnixMilli()))
		}
	}
	// Due at 0, 10 s, 20 s, 40 s: 12 s fires the one due at 10 s, 35 s
	// the one due at 20 s once (30 s is skipped), 39 s nothing.
	require.Equal(t, []string{"r0", "st@0", "r5", "r12", "st@12000", "r3", "r35", "st@35000", "r39"}, vals)
	// The wall clock did not move: no tick.
	require.Empty(t, d.Records("punct-ticks-changelog"))
}

func TestPunctuateWallClock(t *testing.T) {
	p := &ticker{cancelAfter: 3}
	d := tickerDriver(t, p)
	out := streamtest.Output(d, "out", str, str)
	ticks := streamtest.Store(d, "ticks", str, str)
	step := func(dt time.Duration, want ...string) {
		t.Helper()
		require.NoError(t, d.AdvanceWallClock(t.Context(), dt))
		got, err := out.ReadValues()
		require.NoError(t, err)
		if len(want) == 0 {
			require.Empty(t, got, "after %v", dt)
			return
		}
		require.Equal(t, want, got, "after %v", dt)
	}
	step(30 * time.Second)
	step(30*time.Second, "tick1@60")
	// Several intervals at once fire once; due times stay aligned.
	step(3*time.Minute+10*time.Second, "tick2@250")
	step(49 * time.Second)
	step(time.Second, "tick3@300")
	// Canceled after the third call.
	step(time.Hour)
	n, ok, err := ticks.Get("n")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "3", n)
	// Each punctuation is a commit: one changelog record per call.
	require.Len(t, d.Records("punct-ticks-changelog"), 3)
	// Advance alone runs nothing.
	d.Advance(time.Hour)
	require.Empty(t, d.Records("out")[3:])
}

func TestPunctuatorErrorUndoesItsWrites(t *testing.T) {
	p := &ticker{failAt: 2}
	d := tickerDriver(t, p)
	require.NoError(t, d.AdvanceWallClock(t.Context(), time.Minute))
	err := d.AdvanceWallClock(t.Context(), time.Minute)
	var ne *stream.NodeError
	require.ErrorAs(t, err, &ne)
	require.Equal(t, "ticker", ne.Node)
	require.EqualValues(t, -1, ne.Offset)
	require.ErrorIs(t, err, errTick)
	n, _, err := streamtest.Store(d, "ticks", str, str).Get("n")
	require.NoError(t, err)
	require.Equal(t, "1", n, "the failed punctuation's write is undone")
	// The punctuation stays scheduled: the next call counts again from 1.
	p.failAt = 0
	require.NoError(t, d.AdvanceWallClock(t.Context(), time.Minute))
	n, _, err = streamtest.Store(d, "ticks", str, str).Get("n")
	require.NoError(t, err)
	require.Equal(t, "2", n)
	require.ErrorContains(t, d.AdvanceWallClock(t.Context(), -time.Second), "must not be negative")
}

func TestScheduleErrors(t *testing.T) {
	noop := func(context.Context, time.Time) error { return nil }
	for _, tt := range []struct {
		name     string
		interval time.Duration
		typ      stream.PunctuationType
		p        stream.Punctuator
	}{
		{"zero interval", 0, stream.PunctuateWallClock, noop},
		{"sub-millisecond", time.Microsecond, stream.PunctuateStreamTime, noop},
		{"unknown type", time.Second, 0, noop},
		{"nil punctuator", time.Second, stream.PunctuateWallClock, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := stream.NewBuilder()
			stream.Process(stream.From(b, "in", str, str), func() stream.Processor[string, string, string, string] {
				return &funcProcessor[string, string, string, string]{
					init: func(pc stream.ProcessorContext[string, string]) error {
						_, err := pc.Schedule(tt.interval, tt.typ, tt.p)
						return err
					},
				}
			}).To("out")
			topo, err := b.Build()
			require.NoError(t, err)
			_, err = streamtest.New(topo)
			require.ErrorIs(t, err, stream.ErrInvalidSchedule)
		})
	}
	require.Equal(t, "stream-time", stream.PunctuateStreamTime.String())
	require.Equal(t, "wall-clock", stream.PunctuateWallClock.String())
}

// A panic in a punctuator fails it like a panic in Process.
func TestPunctuatorPanic(t *testing.T) {
	b := stream.NewBuilder()
	stream.Process(stream.From(b, "in", str, str), func() stream.Processor[string, string, string, int64] {
		return &funcProcessor[string, string, string, int64]{
			init: func(pc stream.ProcessorContext[string, int64]) error {
				_, err := pc.Schedule(time.Second, stream.PunctuateWallClock, func(context.Context, time.Time) error { panic("boom") })
				return err
			},
		}
	}, stream.Named("panicky")).To("out")
	topo, err := b.Build()
	require.NoError(t, err)
	d, err := streamtest.New(topo)
	require.NoError(t, err)
	defer d.Close()
	err = d.AdvanceWallClock(t.Context(), time.Second)
	var pe *stream.PanicError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "boom", pe.Value)
}
