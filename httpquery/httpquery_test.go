package httpquery_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/httpquery"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
	"github.com/duality-streams/duality/window"
)

func wordCount(t *testing.T) *stream.Topology {
	t.Helper()
	b := stream.NewBuilder()
	lines := stream.From(b, "lines", codec.String(), codec.String())
	words := stream.FlatMapValues(lines, func(line string) iter.Seq[string] {
		return strings.FieldsSeq(line)
	})
	byWord := stream.GroupBy(words, func(_, w string) string { return w })
	table.Count(byWord, "counts")
	topo, err := b.Build()
	require.NoError(t, err)
	return topo
}

// setup opens an embedded broker with n lines of words in "lines" (4
// partitions) and returns it with the expected counts.
func setup(t *testing.T, n int) (*embedded.Broker, map[string]int64) {
	t.Helper()
	b, err := embedded.Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	require.NoError(t, b.CreateTopic(t.Context(), "lines", broker.TopicConfig{Partitions: 4}))
	want := map[string]int64{}
	var recs []broker.Record
	for i := range n {
		line := fmt.Sprintf("w%02d w%02d", i%23, i%7)
		for w := range strings.FieldsSeq(line) {
			want[w]++
		}
		recs = append(recs, broker.Record{Topic: "lines", Partition: broker.PartitionByKey,
			Key: fmt.Appendf(nil, "l%d", i), Value: []byte(line)})
	}
	require.NoError(t, b.Produce(t.Context(), recs))
	return b, want
}

func run(t *testing.T, app *duality.App) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			require.NoError(t, <-done)
		}
	}
	t.Cleanup(stop)
	return stop
}

// get does a GET like curl and decodes the JSON body.
func get(t *testing.T, rawURL string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(rawURL)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var m map[string]any
	require.NoError(t, json.Unmarshal(body, &m), string(body))
	return resp.StatusCode, m
}

// eventually polls cond for at most 10 s (a bound, not a delay).
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

func TestHandler(t *testing.T) {
	b, want := setup(t, 200)
	app, err := duality.New("hq", wordCount(t), b, duality.StateDir(t.TempDir()), duality.CommitInterval(5*time.Millisecond))
	require.NoError(t, err)
	onlyW := httpquery.Store("counts", codec.String(), codec.Int64(), func(s string) (string, error) {
		if !strings.HasPrefix(s, "w") {
			return "", errors.New("words start with w")
		}
		return s, nil
	})
	h, err := httpquery.Handler(app, onlyW)
	require.NoError(t, err)
	srv := httptest.NewServer(h) // 127.0.0.1
	defer srv.Close()

	code, body := get(t, srv.URL+"/stores/counts/keys/w01")
	require.Equal(t, http.StatusServiceUnavailable, code, "before Run: %v", body)

	run(t, app)
	eventually(t, "counts served", func() bool {
		code, body := get(t, srv.URL+"/stores/counts?limit=100")
		if code != http.StatusOK {
			return false
		}
		got := map[string]int64{}
		for _, it := range body["items"].([]any) {
			m := it.(map[string]any)
			got[m["key"].(string)] = int64(m["value"].(float64))
		}
		return maps.Equal(got, want)
	})
	for w, n := range want {
		code, body := get(t, srv.URL+"/stores/counts/keys/"+url.PathEscape(w))
		require.Equal(t, http.StatusOK, code, body)
		require.Equal(t, map[string]any{"key": w, "value": float64(n)}, body)
	}

	tests := []struct {
		name, path string
		code       int
		check      func(t *testing.T, body map[string]any)
	}{
		{"missing key", "/stores/counts/keys/w99", http.StatusNotFound, nil},
		{"bad key", "/stores/counts/keys/x%2Fy", http.StatusBadRequest, nil},
		{"unknown store", "/stores/nope/keys/w01", http.StatusNotFound, nil},
		{"unknown route", "/other", http.StatusNotFound, nil},
		{"bad limit", "/stores/counts?limit=-3", http.StatusBadRequest, nil},
		{"huge limit", "/stores/counts?limit=99999999999999999999", http.StatusBadRequest, nil},
		{"bad bound", "/stores/counts?from=a", http.StatusBadRequest, nil},
		{"range", "/stores/counts?from=w03&to=w06", http.StatusOK, func(t *testing.T, body map[string]any) {
			require.Equal(t, []any{
				map[string]any{"key": "w03", "value": float64(want["w03"])},
				map[string]any{"key": "w04", "value": float64(want["w04"])},
				map[string]any{"key": "w05", "value": float64(want["w05"])},
			}, body["items"])
			require.Equal(t, false, body["more"])
		}},
		{"limit", "/stores/counts?from=w10&limit=2", http.StatusOK, func(t *testing.T, body map[string]any) {
			items := body["items"].([]any)
			require.Len(t, items, 2)
			require.Equal(t, "w10", items[0].(map[string]any)["key"])
			require.Equal(t, "w11", items[1].(map[string]any)["key"])
			require.Equal(t, true, body["more"])
		}},
		{"empty range", "/stores/counts?from=w06&to=w03", http.StatusOK, func(t *testing.T, body map[string]any) {
			require.Equal(t, []any{}, body["items"])
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := get(t, srv.URL+tt.path)
			require.Equal(t, tt.code, code, body)
			if tt.code != http.StatusOK {
				require.NotEmpty(t, body["error"])
			}
			if tt.check != nil {
				tt.check(t, body)
			}
		})
	}

	resp, err := http.Post(srv.URL+"/stores/counts/keys/w01", "text/plain", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)

	_, err = httpquery.Handler(app, httpquery.StringKeys("nope", codec.Int64()), onlyW, onlyW,
		httpquery.Store[string, int64]("counts", codec.String(), codec.Int64(), nil))
	require.ErrorIs(t, err, stream.ErrUnknownStore)
	require.ErrorContains(t, err, "given twice")
}

// TestHandlerNotOwned runs two instances, each with its handler: a key is
// served by exactly one, the other answers 409 with the partition.
func TestHandlerNotOwned(t *testing.T) {
	b, want := setup(t, 200)
	topo := wordCount(t)
	var urls []string
	for range 2 {
		app, err := duality.New("hq2", topo, b, duality.CommitInterval(5*time.Millisecond))
		require.NoError(t, err)
		h, err := httpquery.Handler(app, httpquery.StringKeys("counts", codec.Int64()))
		require.NoError(t, err)
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		urls = append(urls, srv.URL)
		run(t, app)
	}
	eventually(t, "both instances serve their partitions", func() bool {
		union := map[string]int64{}
		for _, u := range urls {
			code, body := get(t, u+"/stores/counts")
			if code != http.StatusOK || len(body["items"].([]any)) == 0 {
				return false
			}
			for _, it := range body["items"].([]any) {
				m := it.(map[string]any)
				union[m["key"].(string)] = int64(m["value"].(float64))
			}
		}
		return maps.Equal(union, want)
	})
	for w, n := range want {
		served := 0
		for _, u := range urls {
			code, body := get(t, u+"/stores/counts/keys/"+w)
			switch code {
			case http.StatusOK:
				served++
				require.Equal(t, float64(n), body["value"])
			case http.StatusConflict:
				require.Equal(t, float64(broker.KeyPartition([]byte(w), 4)), body["partition"])
			default:
				require.Fail(t, "unexpected status", "%d %v", code, body)
			}
		}
		require.Equal(t, 1, served, w)
	}
}

// FuzzHandler sends arbitrary request targets to a handler of an app that
// is not running: every answer is a JSON error or object, never a panic.
func FuzzHandler(f *testing.F) {
	for _, s := range []string{"/stores/counts/keys/w01", "/stores/counts?from=a&to=b&limit=3",
		"/stores/%ff/keys/%00", "/stores//keys/", "/stores/counts?limit=0", "/stores/counts?from=%zz",
		"/stores/counts/keys/a/b/c", "/", "/stores",
		"/stores/counts-1m/keys/w01?from=0&to=2026-01-01T00:00:00Z", "/stores/counts-1m?from=x"} {
		f.Add(s)
	}
	b, err := embedded.Open(f.TempDir())
	require.NoError(f, err)
	f.Cleanup(func() { b.Close() })
	bld := stream.NewBuilder()
	byWord := stream.GroupByKey(stream.From(bld, "words", codec.String(), codec.String()))
	table.Count(byWord, "counts")
	perMinute := window.Count(byWord, window.Tumbling(time.Minute, window.NoGrace), "counts-1m")
	topo, err := bld.Build()
	require.NoError(f, err)
	app, err := duality.New("fz", topo, b)
	require.NoError(f, err)
	h, err := httpquery.Handler(app, httpquery.StringKeys("counts", codec.Int64()),
		httpquery.Windows(perMinute, func(s string) (string, error) { return s, nil }))
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, target string) {
		u, err := url.ParseRequestURI(target)
		if err != nil || u.Host != "" {
			return
		}
		req, err := http.NewRequest(http.MethodGet, "http://127.0.0.1"+u.RequestURI(), nil)
		if err != nil {
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
			return // ServeMux cleaning the path
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &m), rec.Body.String())
		if req.URL.Path == "/" {
			require.Equal(t, http.StatusOK, rec.Code, "the list of stores")
			require.NotEmpty(t, m["stores"])
			return
		}
		require.Contains(t, []int{http.StatusBadRequest, http.StatusNotFound, http.StatusServiceUnavailable}, rec.Code, rec.Body.String())
		require.NotEmpty(t, m["error"])
	})
}

// TestHandlerIntKeys serves a store with int64 keys through a key parser.
func TestHandlerIntKeys(t *testing.T) {
	b, want := setup(t, 100) // words w00..w22 (3 bytes each)
	sb := stream.NewBuilder()
	words := stream.FlatMapValues(stream.From(sb, "lines", codec.String(), codec.String()),
		func(line string) iter.Seq[string] { return strings.FieldsSeq(line + " x") })
	byLen := stream.GroupBy(words, func(_, w string) int64 { return int64(len(w)) })
	table.Count(byLen, "by-len")
	topo, err := sb.Build()
	require.NoError(t, err)
	app, err := duality.New("hq3", topo, b, duality.CommitInterval(5*time.Millisecond))
	require.NoError(t, err)
	h, err := httpquery.Handler(app, httpquery.Store("by-len", codec.Int64(), codec.Int64(),
		func(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) }))
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	defer srv.Close()
	run(t, app)

	var words3 int64
	for _, n := range want {
		words3 += n
	}
	exp := map[string]any{"items": []any{
		map[string]any{"key": float64(1), "value": float64(100)}, // one "x" per line
		map[string]any{"key": float64(3), "value": float64(words3)},
	}, "more": false}
	eventually(t, "counts by length", func() bool {
		code, body := get(t, srv.URL+"/stores/by-len?from=0&to=10")
		return code == http.StatusOK && reflect.DeepEqual(body, exp)
	})
	code, body := get(t, srv.URL+"/stores/by-len/keys/3")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, map[string]any{"key": float64(3), "value": float64(words3)}, body)
	code, _ = get(t, srv.URL+"/stores/by-len/keys/2")
	require.Equal(t, http.StatusNotFound, code)
	code, body = get(t, srv.URL+"/stores/by-len/keys/three")
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body["error"], "bad key")
}
