package httpquery_test

import (
	"iter"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/httpquery"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
	"github.com/duality-streams/duality/window"
)

// TestHandlerWrongKind: a store served as another kind than it is is an
// error of Handler (a windowed store served with plain codecs used to
// answer GET /stores/<windowed>?limit=2 with garbage or a JSON decode
// error).
func TestHandlerWrongKind(t *testing.T) {
	b, _ := setup(t, 10)
	sb := stream.NewBuilder()
	words := stream.FlatMapValues(stream.From(sb, "lines", codec.String(), codec.String()),
		func(line string) iter.Seq[string] { return strings.FieldsSeq(line) })
	byWord := stream.GroupBy(words, func(_, w string) string { return w })
	window.Count(byWord, window.Tumbling(time.Minute, window.NoGrace), "words-1m")
	table.Count(byWord, "counts")
	// A key-value table whose keys are windowed keys.
	windowedKeys := table.From(sb, "windowed", window.WindowedCodec(codec.String()), codec.Int64(), "windowed-keys")
	topo, err := sb.Build()
	require.NoError(t, err)
	app, err := duality.New("hqk", topo, b)
	require.NoError(t, err)
	_, err = httpquery.Handler(app, httpquery.StringKeys("words-1m", codec.Int64()))
	require.ErrorIs(t, err, duality.ErrWrongStoreKind)
	require.ErrorContains(t, err, `store "words-1m" is a window store`)
	require.ErrorContains(t, err, "httpquery.Windows")

	_, err = httpquery.Handler(app, httpquery.Windows(windowedKeys, func(s string) (string, error) { return s, nil }))
	require.ErrorIs(t, err, duality.ErrWrongStoreKind)
	require.ErrorContains(t, err, `store "windowed-keys" is a key-value store`)
}

// TestHandlerWindows serves a windowed store and a key-value store, and
// lists them at /.
func TestHandlerWindows(t *testing.T) {
	b, _ := setup(t, 0)
	require.NoError(t, b.CreateTopic(t.Context(), "clicks", broker.TopicConfig{Partitions: 2}))
	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	var recs []broker.Record
	for _, c := range []struct {
		user string
		sec  int
	}{{"alice", 5}, {"bob", 20}, {"alice", 40}, {"alice", 70}, {"bob", 125}, {"carol", 130}} {
		recs = append(recs, broker.Record{Topic: "clicks", Partition: broker.PartitionByKey,
			Key: []byte(c.user), Value: []byte("/page"), Timestamp: start.Add(time.Duration(c.sec) * time.Second)})
	}
	require.NoError(t, b.Produce(t.Context(), recs))
	sb := stream.NewBuilder()
	byUser := stream.GroupByKey(stream.From(sb, "clicks", codec.String(), codec.String()))
	perMinute := window.Count(byUser, window.Tumbling(time.Minute, window.NoGrace).WithRetention(24*time.Hour), "clicks-1m")
	table.Count(byUser, "clicks")
	topo, err := sb.Build()
	require.NoError(t, err)
	app, err := duality.New("hqw", topo, b, duality.CommitInterval(5*time.Millisecond))
	require.NoError(t, err)
	h, err := httpquery.Handler(app, httpquery.StringKeys("clicks", codec.Int64()),
		httpquery.Windows(perMinute, func(s string) (string, error) { return s, nil }))
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	defer srv.Close()

	code, body := get(t, srv.URL+"/")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, map[string]any{"stores": []any{
		map[string]any{"name": "clicks", "kind": "key-value"},
		map[string]any{"name": "clicks-1m", "kind": "windows"},
	}}, body)
	code, _ = get(t, srv.URL+"/stores/clicks-1m/keys/alice")
	require.Equal(t, http.StatusServiceUnavailable, code, "before Run")

	run(t, app)
	win := func(user, from, to string, n int) map[string]any {
		return map[string]any{"key": user, "start": "2026-01-01T" + from + ":00Z", "end": "2026-01-01T" + to + ":00Z", "value": float64(n)}
	}
	eventually(t, "every click counted", func() bool {
		code, body := get(t, srv.URL+"/stores/clicks-1m")
		return code == http.StatusOK && len(body["items"].([]any)) == 5
	})
	code, body = get(t, srv.URL+"/stores/clicks-1m/keys/alice")
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, map[string]any{"items": []any{win("alice", "12:00", "12:01", 2), win("alice", "12:01", "12:02", 1)}, "more": false}, body)

	tests := []struct {
		name, path string
		code       int
		want       map[string]any
	}{
		{"key from RFC 3339", "/stores/clicks-1m/keys/alice?from=2026-01-01T12:01:00Z", http.StatusOK,
			map[string]any{"items": []any{win("alice", "12:01", "12:02", 1)}, "more": false}},
		{"key to Unix ms", "/stores/clicks-1m/keys/alice?to=" + itoa(start.Add(time.Minute).UnixMilli()), http.StatusOK,
			map[string]any{"items": []any{win("alice", "12:00", "12:01", 2)}, "more": false}},
		{"key without windows", "/stores/clicks-1m/keys/dave", http.StatusOK, map[string]any{"items": []any{}, "more": false}},
		{"limit", "/stores/clicks-1m?limit=2", http.StatusOK, nil},
		{"range", "/stores/clicks-1m?from=" + itoa(start.Add(2*time.Minute).UnixMilli()), http.StatusOK,
			map[string]any{"items": []any{win("bob", "12:02", "12:03", 1), win("carol", "12:02", "12:03", 1)}, "more": false}},
		{"bad time", "/stores/clicks-1m?from=noon", http.StatusBadRequest, nil},
		{"bad key time", "/stores/clicks-1m/keys/alice?to=noon", http.StatusBadRequest, nil},
		{"key-value store", "/stores/clicks/keys/alice", http.StatusOK, map[string]any{"key": "alice", "value": float64(3)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := get(t, srv.URL+tt.path)
			require.Equal(t, tt.code, code, body)
			switch {
			case tt.code != http.StatusOK:
				require.NotEmpty(t, body["error"])
			case tt.want != nil:
				require.Equal(t, tt.want, body)
			default: // limit
				require.Len(t, body["items"], 2)
				require.Equal(t, true, body["more"])
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
