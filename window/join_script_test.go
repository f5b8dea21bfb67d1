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
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
)

// TestJoinScripts runs the join scripts in testdata/join. Commands:
//
//	new kind=inner|left|outer before=<ms> after=<ms> grace=<ms>
//	  joins topic "l" with topic "r" (string keys and values); the
//	  joiner makes "v1+v2", with "-" for a missing side.
//	pipe
//	l|r <key> <value> @<ms>
//	...
//	  pipes the records and prints the joined records as
//	  "key = value (ts)", and "late: n" when records were dropped.
func TestJoinScripts(t *testing.T) {
	datadriven.Walk(t, "testdata/join", func(t *testing.T, path string) {
		var s *joinScript
		datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
			switch td.Cmd {
			case "new":
				if s != nil {
					require.NoError(t, s.d.Close())
				}
				var err error
				s, err = newJoinScript(t, td)
				if err != nil {
					return "error: " + err.Error() + "\n"
				}
				return ""
			case "pipe":
				return s.pipe(t, td.Input)
			}
			t.Fatalf("unknown command %q", td.Cmd)
			return ""
		})
		if s != nil {
			require.NoError(t, s.d.Close())
		}
	})
}

type joinScript struct {
	d     *streamtest.Driver
	l, r  *streamtest.InputTopic[string, string]
	out   *streamtest.OutputTopic[string, string]
	stats *Stats
	late  int64
}

func newJoinScript(t *testing.T, td *datadriven.TestData) (*joinScript, error) {
	ms := func(name string) time.Duration {
		var v string
		td.ScanArgs(t, name, &v)
		n, err := strconv.ParseInt(v, 10, 64)
		require.NoError(t, err)
		return time.Duration(n) * time.Millisecond
	}
	var kind string
	td.ScanArgs(t, "kind", &kind)
	w := JoinTimeDifference(0, ms("grace")).Before(ms("before")).After(ms("after"))
	s := &joinScript{stats: new(Stats)}
	b := stream.NewBuilder()
	str := codec.String()
	l := stream.GroupByKey(stream.From(b, "l", str, str))
	r := stream.GroupByKey(stream.From(b, "r", str, str))
	side := func(v string, ok bool) string {
		if !ok {
			return "-"
		}
		return v
	}
	var out stream.Stream[string, string]
	switch kind {
	case "inner":
		out = Join(l, r, w, func(_, v1, v2 string) string { return v1 + "+" + v2 }, "join", WithStats(s.stats))
	case "left":
		out = LeftJoin(l, r, w, func(_, v1, v2 string, ok bool) string { return v1 + "+" + side(v2, ok) }, "join", WithStats(s.stats))
	case "outer":
		out = OuterJoin(l, r, w, func(_, v1 string, ok1 bool, v2 string, ok2 bool) string {
			return side(v1, ok1) + "+" + side(v2, ok2)
		}, "join", WithStats(s.stats))
	default:
		t.Fatalf("unknown kind %q", kind)
	}
	out.To("out")
	topo, err := b.Build()
	if err != nil {
		return nil, err
	}
	s.d, err = streamtest.New(topo)
	require.NoError(t, err)
	s.l = streamtest.Input(s.d, "l", str, str)
	s.r = streamtest.Input(s.d, "r", str, str)
	s.out = streamtest.Output(s.d, "out", str, str)
	return s, nil
}

func (s *joinScript) pipe(t *testing.T, input string) string {
	var b strings.Builder
	for line := range strings.Lines(input) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		require.Len(t, f, 4, "want l|r <key> <value> @<ms>: %q", line)
		ts, err := strconv.ParseInt(strings.TrimPrefix(f[3], "@"), 10, 64)
		require.NoError(t, err)
		in := s.l
		if f[0] == "r" {
			in = s.r
		}
		if err := in.PipeAt(t.Context(), f[1], f[2], time.UnixMilli(ts)); err != nil {
			fmt.Fprintf(&b, "error: %v\n", err)
		}
	}
	recs, err := s.out.ReadAll()
	require.NoError(t, err)
	for _, r := range recs {
		fmt.Fprintf(&b, "%s = %s (%d)\n", r.Key, r.Value, r.Timestamp.UnixMilli())
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
