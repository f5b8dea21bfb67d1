package window_test

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/window"
)

func buildCount(w window.Windows, opts ...stream.Option) error {
	b := stream.NewBuilder()
	g := stream.GroupByKey(stream.From(b, "in", codec.String(), codec.String()))
	window.Count(g, w, "counts", opts...)
	_, err := b.Build()
	return err
}

func TestBuildErrors(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name string
		w    window.Windows
		want []string // substrings, one per expected error
	}{
		{"zero windows", window.Windows{}, []string{"the zero Windows"}},
		{"zero size", window.Tumbling(0, 0), []string{"size 0s must be positive"}},
		{"negative size", window.Tumbling(-ms, 0), []string{"size -1ms must be positive"}},
		{"sub-millisecond size", window.Tumbling(1500*time.Microsecond, 0), []string{"size 1.5ms must be a whole number of milliseconds"}},
		{"advance > size", window.Hopping(10*ms, 20*ms, 0), []string{"advance 20ms must not exceed the size 10ms"}},
		{"zero advance", window.Hopping(10*ms, 0, 0), []string{"advance 0s must be positive"}},
		{"negative grace", window.Tumbling(10*ms, -ms), []string{"grace -1ms must not be negative"}},
		{"sub-millisecond grace", window.Tumbling(10*ms, time.Microsecond), []string{"grace 1µs must be a whole number"}},
		{"short retention", window.Tumbling(10*ms, 5*ms).WithRetention(14 * ms), []string{"retention 14ms must be at least 15ms"}},
		{"short sliding retention", window.Sliding(10*ms, 0).WithRetention(20 * ms), []string{"retention 20ms must be at least 21ms"}},
		{"negative retention", window.Session(10*ms, 0).WithRetention(-ms), []string{"retention -1ms must be a positive"}},
		{"zero gap", window.Session(0, 0), []string{"inactivity gap 0s must be positive"}},
		{"zero difference", window.Sliding(0, 0), []string{"time difference 0s must be positive"}},
		{"several", window.Hopping(0, -ms, -ms), []string{"size 0s", "advance -1ms", "grace -1ms"}},
		{"sliding overflow", window.Sliding(200*365*24*time.Hour, 0), []string{"time difference plus grace overflows"}},
		{"tumbling overflow", window.Tumbling(150*365*24*time.Hour, 150*365*24*time.Hour), []string{"size plus grace overflows"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := buildCount(tc.w)
			require.ErrorIs(t, err, window.ErrInvalidWindow)
			errs := err.(interface{ Unwrap() []error }).Unwrap()
			require.Len(t, errs, len(tc.want), "%v", err)
			for i, s := range tc.want {
				require.ErrorContains(t, errs[i], s)
				require.ErrorContains(t, errs[i], `windowed-count "windowed-count-1"`)
			}
		})
	}
	for _, w := range []window.Windows{
		window.Tumbling(time.Minute, window.NoGrace),
		window.Hopping(10*time.Second, 2*time.Second, time.Second),
		window.Hopping(10*time.Second, 10*time.Second, 0),
		window.Sliding(time.Second, 0).WithRetention(time.Hour),
		window.Session(30*time.Minute, 5*time.Minute),
	} {
		require.NoError(t, buildCount(w), "%s", w)
	}
}

func TestBuildErrorsOfSteps(t *testing.T) {
	b := stream.NewBuilder()
	g := stream.GroupByKey(stream.From(b, "in", codec.String(), codec.String()))
	w := window.Tumbling(time.Second, 0)
	window.Count(g, w, "a")
	window.Count(g, w, "a", stream.Named("again"))
	window.Count(g, w, "bad name!", stream.Named(""))
	window.Reduce(g, w, nil, "r")
	window.Aggregate(g, w, func() int64 { return 0 }, nil, "x")
	window.Aggregate(g, w, func() int64 { return 0 }, func(string, string, int64) int64 { return 0 }, "y", stream.WithValueCodec[int64](nil))
	window.Aggregate(g, window.Session(time.Second, 0), func() int64 { return 0 }, func(string, string, int64) int64 { return 0 }, "z")
	window.AggregateSessions(g, w, func() int64 { return 0 }, func(string, string, int64) int64 { return 0 }, nil, "s")
	window.Count(g, w, "late", window.OnLate(func(window.LateRecord[string, int64]) {}))
	_, err := b.Build()
	errs := err.(interface{ Unwrap() []error }).Unwrap()
	checks := []struct {
		is   error
		text string
	}{
		{stream.ErrStoreConflict, `windowed-count "again": store "a" is already used by step "windowed-count-1"`},
		{stream.ErrInvalidOption, `store name "bad name!"`},
		{stream.ErrInvalidOption, `Named with an empty name`},
		{stream.ErrNilFunc, `windowed-reduce "windowed-reduce-4"`},
		{stream.ErrNilFunc, `windowed-aggregate "windowed-aggregate-5"`},
		{stream.ErrNilCodec, `windowed-aggregate "windowed-aggregate-6": aggregate codec`},
		{window.ErrInvalidWindow, `session windows merge aggregates; use window.AggregateSessions`},
		{window.ErrInvalidWindow, `AggregateSessions needs session windows`},
		{stream.ErrNilFunc, `session-aggregate "session-aggregate-8"`},
		{stream.ErrInvalidOption, `OnLate callback is a func(window.LateRecord[string,int64]), the aggregation needs a func(window.LateRecord[string,string])`},
	}
	for _, c := range checks {
		found := false
		for _, e := range errs {
			if errors.Is(e, c.is) && bytes.Contains([]byte(e.Error()), []byte(c.text)) {
				found = true
			}
		}
		require.True(t, found, "no error matching %v with %q in:\n%v", c.is, c.text, err)
	}
	require.Len(t, errs, len(checks))
}

func TestWindowedCodec(t *testing.T) {
	c := window.WindowedCodec(codec.String())
	require.True(t, c.OrderPreserving())
	require.False(t, window.WindowedCodec(codec.JSON[string]()).OrderPreserving())
	at := time.UnixMilli
	// Sorted by key, then start, then end; keys with zero bytes and
	// prefixes of each other included.
	ws := []window.Windowed[string]{
		{Key: "", Start: at(5), End: at(6)},
		{Key: "a", Start: at(-10), End: at(0)},
		{Key: "a", Start: at(0), End: at(10)},
		{Key: "a", Start: at(0), End: at(20)},
		{Key: "a", Start: at(1 << 40), End: at(1<<40 + 10)},
		{Key: "a\x00", Start: at(0), End: at(10)},
		{Key: "a\x00\x00b", Start: at(0), End: at(10)},
		{Key: "a\x01", Start: at(0), End: at(10)},
		{Key: "ab", Start: at(0), End: at(1)},
		{Key: "b", Start: at(0), End: at(1)},
	}
	var encs [][]byte
	for _, w := range ws {
		enc, err := c.Append([]byte("prefix"), w)
		require.NoError(t, err)
		require.Equal(t, []byte("prefix"), enc[:6], "Append appends")
		enc = enc[6:]
		got, err := c.Decode(enc)
		require.NoError(t, err)
		require.Equal(t, w.Key, got.Key)
		require.True(t, w.Start.Equal(got.Start) && w.End.Equal(got.End), "%v != %v", w, got)
		encs = append(encs, enc)
	}
	require.True(t, slices.IsSortedFunc(encs, bytes.Compare), "encodings sort like the windowed keys")

	for _, bad := range [][]byte{nil, {}, []byte("a"), []byte("a\x00"), []byte("a\x00\x02"), []byte("a\x00\x01short")} {
		_, err := c.Decode(bad)
		require.ErrorIs(t, err, codec.ErrInvalid, "%q", bad)
	}
}

func FuzzWindowedCodec(f *testing.F) {
	c := window.WindowedCodec(codec.String())
	seed, _ := c.Append(nil, window.Windowed[string]{Key: "k\x00", Start: time.UnixMilli(1), End: time.UnixMilli(2)})
	f.Add(seed)
	f.Add([]byte{0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := c.Decode(b)
		if err != nil {
			return
		}
		enc, err := c.Append(nil, w)
		require.NoError(t, err)
		require.Equal(t, b, enc, "a valid encoding re-encodes the same")
	})
}

func TestWindowsAccessors(t *testing.T) {
	w := window.Hopping(10*time.Second, 2*time.Second, time.Second)
	require.Equal(t, window.KindHopping, w.Kind())
	require.Equal(t, 10*time.Second, w.Size())
	require.Equal(t, 2*time.Second, w.Advance())
	require.Equal(t, time.Second, w.Grace())
	require.Equal(t, 11*time.Second, w.Retention())
	require.Equal(t, time.Hour, w.WithRetention(time.Hour).Retention())
	require.Equal(t, "hopping(size 10s, advance 2s, grace 1s)", w.String())
	require.Equal(t, 21*time.Millisecond, window.Sliding(10*time.Millisecond, 0).Retention())
	require.Equal(t, "session", window.Session(time.Second, 0).Kind().String())
	k := window.Windowed[string]{Key: "k", Start: time.UnixMilli(0), End: time.UnixMilli(1000)}
	require.Equal(t, "k@[1970-01-01T00:00:00Z,1970-01-01T00:00:01Z)", k.String())
}

func TestJoinBuildErrors(t *testing.T) {
	b := stream.NewBuilder()
	str := codec.String()
	l := stream.GroupByKey(stream.From(b, "l", str, str))
	r := stream.GroupByKey(stream.From(b, "r", str, str))
	ok := window.JoinTimeDifference(time.Second, 0)
	window.Join(l, r, window.JoinTimeDifference(-time.Millisecond, time.Microsecond), func(_, a, b string) string { return a + b }, "j1")
	window.Join[string, string, string, string](l, r, ok, nil, "j2")
	window.LeftJoin(l, r, ok, func(_, a, b string, _ bool) string { return a + b }, "j2")
	window.OuterJoin(l, r, ok, func(_, a string, _ bool, b string, _ bool) string { return a + b }, "j3", window.EmitOnWindowClose())
	other := stream.NewBuilder()
	o := stream.GroupByKey(stream.From(other, "o", str, str))
	window.Join(l, o, ok, func(_, a, b string) string { return a + b }, "j4")
	window.Join(l, r, window.JoinTimeDifference(100*365*24*time.Hour, 0), func(_, a, b string) string { return a + b }, "j5")
	_, err := b.Build()
	errs := err.(interface{ Unwrap() []error }).Unwrap()
	checks := []struct {
		is   error
		text string
	}{
		{window.ErrInvalidWindow, `join "join-4": window: invalid window definition: join(before -1ms, after -1ms, grace 1µs): before -1ms`},
		{window.ErrInvalidWindow, `after -1ms must be a non-negative whole number of milliseconds`},
		{window.ErrInvalidWindow, `grace 1µs must be a non-negative whole number of milliseconds`},
		{stream.ErrNilFunc, `join "join-7": joiner`},
		{stream.ErrStoreConflict, `store "j2" is already used by step "join-left-5"`},
		{stream.ErrInvalidOption, `EmitOnWindowClose, CacheUpdates and OnLate do not apply to joins`},
		{stream.ErrForeignStream, `join-right`},
		{window.ErrInvalidWindow, `before, after and grace must each be at most`},
	}
	for _, c := range checks {
		found := false
		for _, e := range errs {
			if errors.Is(e, c.is) && bytes.Contains([]byte(e.Error()), []byte(c.text)) {
				found = true
			}
		}
		require.True(t, found, "no error matching %v with %q in:\n%v", c.is, c.text, err)
	}
	require.Len(t, errs, len(checks))
}
