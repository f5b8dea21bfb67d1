package window

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
)

// logLines is a slog.Handler that keeps the message and attributes (the
// logger's too) of every record at or above its level.
type logLines struct {
	level slog.Level
	mu    *sync.Mutex
	lines *[]map[string]any
	attrs []slog.Attr
}

func (h logLines) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }
func (h logLines) Handle(_ context.Context, r slog.Record) error {
	m := map[string]any{"msg": r.Message}
	for _, a := range h.attrs {
		m[a.Key] = a.Value.Any()
	}
	r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.Any(); return true })
	h.mu.Lock()
	*h.lines = append(*h.lines, m)
	h.mu.Unlock()
	return nil
}
func (h logLines) WithAttrs(attrs []slog.Attr) slog.Handler {
	h.attrs = append(h.attrs[:len(h.attrs):len(h.attrs)], attrs...)
	return h
}
func (h logLines) WithGroup(string) slog.Handler { return h }

// TestLateDropsLoggedAtWarn: records a windowed step drops as late are
// logged at Warn, at most once per 10 s of the app's clock per step, with
// the number dropped since the previous line, the largest lateness (stream
// time minus the record's timestamp) and the grace.
func TestLateDropsLoggedAtWarn(t *testing.T) {
	str := codec.String()
	for _, tc := range []struct {
		name  string
		build func(b *stream.Builder)
		grace time.Duration
	}{
		{"aggregation", func(b *stream.Builder) {
			g := stream.GroupByKey(stream.From(b, "in", str, str))
			Count(g, Tumbling(10*time.Millisecond, 5*time.Millisecond), "counts", stream.Named("counts")).
				ToStream().To("out")
		}, 5 * time.Millisecond},
		{"join", func(b *stream.Builder) {
			l := stream.GroupByKey(stream.From(b, "in", str, str))
			r := stream.GroupByKey(stream.From(b, "right", str, str))
			Join(l, r, JoinTimeDifference(10*time.Millisecond, 2*time.Millisecond),
				func(_ string, a, b string) string { return a + b }, "joins", stream.Named("counts")).
				To("out")
		}, 2 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := stream.NewBuilder()
			tc.build(b)
			topo, err := b.Build()
			require.NoError(t, err)
			var lines []map[string]any
			h := logLines{level: slog.LevelWarn, mu: new(sync.Mutex), lines: &lines}
			d, err := streamtest.New(topo, streamtest.Logger(slog.New(h)))
			require.NoError(t, err)
			defer func() { require.NoError(t, d.Close()) }()
			in := streamtest.Input(d, "in", str, str)
			ctx := t.Context()
			pipe := func(ms int64) { require.NoError(t, in.PipeAt(ctx, "k", "v", time.UnixMilli(ms))) }
			pipe(100) // stream time 100
			pipe(50)  // late by 50 ms: the first drop is logged at once
			require.Len(t, lines, 1)
			require.Equal(t, "counts", lines[0]["node"])
			require.Equal(t, int64(1), lines[0]["dropped"])
			require.Equal(t, 50*time.Millisecond, lines[0]["lateness"])
			require.Equal(t, tc.grace, lines[0]["grace"])
			require.Equal(t, int64(1), lines[0]["offset"])
			pipe(80) // late by 20 ms
			pipe(10) // late by 90 ms
			require.Len(t, lines, 1, "at most one line per 10 s")
			d.Advance(10 * time.Second)
			pipe(60) // late by 40 ms: a line for the three drops since the last
			require.Len(t, lines, 2)
			require.Equal(t, int64(3), lines[1]["dropped"])
			require.Equal(t, 90*time.Millisecond, lines[1]["lateness"])
		})
	}
}

// TestLateDropAllocatesNothing: a late record dropped between two Warn
// lines costs no allocation when Debug is off (a backlog can make half
// the records late).
func TestLateDropAllocatesNothing(t *testing.T) {
	var lines []map[string]any
	logger := slog.New(logLines{level: slog.LevelInfo, mu: new(sync.Mutex), lines: &lines})
	var l lateLog
	rc := &stream.RecordContext{Topic: "in", Partition: 3, Offset: 1 << 40}
	now := time.Unix(1000, 0)
	l.drop(t.Context(), logger, now, rc, 1<<41, 1<<42, 5000) // the Warn line
	require.Len(t, lines, 1)
	allocs := testing.AllocsPerRun(100, func() {
		l.drop(t.Context(), logger, now, rc, 1<<41, 1<<42, 5000)
	})
	require.Zero(t, allocs)
	require.Len(t, lines, 1)
}
