package window

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/internal/windowstore"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
	"github.com/duality-streams/duality/table"
)

// TestScripts runs the window scripts in testdata/windows. Commands:
//
//	new kind=tumbling|hopping|sliding|session size=<ms> [advance=<ms>]
//	    grace=<ms> [retention=<ms>] [agg=count|concat] [emit=final]
//	  builds an aggregation of topic "in" (string keys and values) and
//	  prints nothing, or the Build error.
//	pipe
//	<key> <value> @<ms>
//	...
//	  pipes the records and prints the records the aggregation emitted,
//	  as "key@[start,end) = value (ts)" or "key@[start,end) <tombstone>",
//	  and "late: n" when records were dropped as late.
//	store
//	  prints the windows in the store as "key@[start,end) = value (ts)",
//	  in store order (segment, key, start).
//	stats
//	  prints the Stats counters.
func TestScripts(t *testing.T) {
	datadriven.Walk(t, "testdata/windows", func(t *testing.T, path string) {
		var s *script
		datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
			switch td.Cmd {
			case "new":
				if s != nil {
					require.NoError(t, s.d.Close())
				}
				var err error
				s, err = newScript(t, td)
				if err != nil {
					return "error: " + err.Error() + "\n"
				}
				return ""
			case "pipe":
				return s.pipe(t, td.Input)
			case "store":
				return s.store(t)
			case "stats":
				return fmt.Sprintf("late: %d, final: %d\n", s.stats.LateRecords(), s.stats.FinalResults())
			}
			t.Fatalf("unknown command %q", td.Cmd)
			return ""
		})
		if s != nil {
			require.NoError(t, s.d.Close())
		}
	})
}

type script struct {
	d     *streamtest.Driver
	in    *streamtest.InputTopic[string, string]
	out   *streamtest.OutputTopic[Windowed[string], string]
	stats *Stats
	late  int64
	count bool
}

func newScript(t *testing.T, td *datadriven.TestData) (*script, error) {
	ms := func(name string) time.Duration {
		var v string
		if !td.MaybeScanArgs(t, name, &v) {
			return 0
		}
		n, err := strconv.ParseInt(v, 10, 64)
		require.NoError(t, err)
		return time.Duration(n) * time.Millisecond
	}
	var kind, agg, emitMode string
	td.ScanArgs(t, "kind", &kind)
	agg = "count"
	td.MaybeScanArgs(t, "agg", &agg)
	td.MaybeScanArgs(t, "emit", &emitMode)
	var w Windows
	switch kind {
	case "tumbling":
		w = Tumbling(ms("size"), ms("grace"))
	case "hopping":
		w = Hopping(ms("size"), ms("advance"), ms("grace"))
	case "sliding":
		w = Sliding(ms("size"), ms("grace"))
	case "session":
		w = Session(ms("size"), ms("grace"))
	default:
		t.Fatalf("unknown kind %q", kind)
	}
	if r := ms("retention"); r != 0 {
		w = w.WithRetention(r)
	}
	s := &script{stats: new(Stats)}
	opts := []stream.Option{WithStats(s.stats)}
	if emitMode == "final" {
		opts = append(opts, EmitOnWindowClose())
	}
	b := stream.NewBuilder()
	g := stream.GroupByKey(stream.From(b, "in", codec.String(), codec.String()))
	wc := WindowedCodec(codec.String())
	concat := func(a, b string) string { return a + "+" + b }
	switch agg {
	case "count":
		s.count = true
		counts := Count(g, w, "windows", opts...)
		stream.MapValues(counts.ToStream(), func(n int64) string { return strconv.FormatInt(n, 10) }).
			To("out")
	case "concat":
		var tbl table.Table[Windowed[string], string]
		if kind == "session" {
			tbl = AggregateSessions(g, w, func() string { return "" },
				func(_ string, v, a string) string {
					if a == "" {
						return v
					}
					return concat(a, v)
				},
				func(_ string, a, b string) string {
					if a == "" {
						return b
					}
					return concat(a, b)
				}, "windows", opts...)
		} else {
			tbl = Reduce(g, w, concat, "windows", opts...)
		}
		tbl.ToStream().To("out")
	default:
		t.Fatalf("unknown agg %q", agg)
	}
	topo, err := b.Build()
	if err != nil {
		return nil, err
	}
	s.d, err = streamtest.New(topo)
	require.NoError(t, err)
	s.in = streamtest.Input(s.d, "in", codec.String(), codec.String())
	s.out = streamtest.Output(s.d, "out", wc, codec.String())
	return s, nil
}

func fmtWindow(k string, start, end time.Time) string {
	return fmt.Sprintf("%s@[%d,%d)", k, start.UnixMilli(), end.UnixMilli())
}

func (s *script) pipe(t *testing.T, input string) string {
	var b strings.Builder
	for line := range strings.Lines(input) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		require.Len(t, f, 3, "want <key> <value> @<ms>: %q", line)
		ts, err := strconv.ParseInt(strings.TrimPrefix(f[2], "@"), 10, 64)
		require.NoError(t, err)
		if err := s.in.PipeAt(t.Context(), f[0], f[1], time.UnixMilli(ts)); err != nil {
			fmt.Fprintf(&b, "error: %v\n", err)
		}
	}
	recs, err := s.out.ReadAll()
	require.NoError(t, err)
	for _, r := range recs {
		w := fmtWindow(r.Key.Key, r.Key.Start, r.Key.End)
		if r.Tombstone {
			fmt.Fprintf(&b, "%s <tombstone>\n", w)
			continue
		}
		fmt.Fprintf(&b, "%s = %s (%d)\n", w, r.Value, r.Timestamp.UnixMilli())
	}
	if n := s.stats.LateRecords(); n != s.late {
		fmt.Fprintf(&b, "late: %d\n", n-s.late)
		s.late = n
	}
	if b.Len() == 0 {
		return "(nothing)\n"
	}
	return b.String()
}

// store prints the windows of the store's partition 0.
func (s *script) store(t *testing.T) string {
	var b strings.Builder
	seq, errf := s.d.StoreAll("windows", 0)
	var lines []string
	for k, v := range seq {
		if len(k) == 0 || k[0] != windowstore.SpaceWindow {
			continue
		}
		raw, rest, err := windowstore.Unescape(k[9:])
		require.NoError(t, err)
		var val string
		if s.count {
			n, err := codec.Int64().Decode(v[8:])
			require.NoError(t, err)
			val = strconv.FormatInt(n, 10)
		} else {
			val = string(v[8:])
		}
		lines = append(lines, fmt.Sprintf("%s = %s (%d)\n", fmtWindow(string(raw), time.UnixMilli(windowstore.ReadTime(rest)), time.UnixMilli(windowstore.ReadTime(rest[8:]))), val, windowstore.ReadTime(v)))
	}
	require.NoError(t, errf())
	if len(lines) == 0 {
		return "(empty)\n"
	}
	for _, l := range lines {
		b.WriteString(l)
	}
	return b.String()
}
