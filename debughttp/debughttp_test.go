package debughttp_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/debughttp"
	"github.com/duality-streams/duality/httpquery"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
)

// wordCount counts the words of "lines" into the store "counts" and
// writes the counts to "word-counts": two sub-topologies joined by a
// repartition topic.
func wordCount(t *testing.T) *stream.Topology {
	t.Helper()
	b := stream.NewBuilder()
	lines := stream.From(b, "lines", codec.String(), codec.String())
	words := stream.FlatMapValues(lines, func(line string) iter.Seq[string] {
		return strings.FieldsSeq(line)
	}, stream.Named("split-words"))
	byWord := stream.GroupBy(words, func(_, w string) string { return w }, stream.Named("by-word"))
	table.Count(byWord, "counts", stream.Named("count-words")).ToStream().To("word-counts", stream.Named("write-counts"))
	topo, err := b.Build()
	require.NoError(t, err)
	return topo
}

// setup opens an embedded broker with the topics of wordCount and n lines
// of words in "lines".
func setup(t *testing.T, n int) *embedded.Broker {
	t.Helper()
	b, err := embedded.Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	for _, topic := range []string{"lines", "word-counts"} {
		require.NoError(t, b.CreateTopic(t.Context(), topic, broker.TopicConfig{Partitions: 2}))
	}
	produceLines(t.Context(), t, b, 0, n)
	return b
}

func produceLines(ctx context.Context, t *testing.T, b broker.Broker, from, to int) {
	var recs []broker.Record
	for i := from; i < to; i++ {
		recs = append(recs, broker.Record{Topic: "lines", Partition: broker.PartitionByKey,
			Key: fmt.Appendf(nil, "l%d", i), Value: fmt.Appendf(nil, "w%d w%d", i%13, i%5)})
	}
	if err := b.Produce(ctx, recs); err != nil && ctx.Err() == nil {
		t.Errorf("produce: %v", err)
	}
}

func run(t *testing.T, app *duality.App) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
}

// get does a GET and returns the status, the headers and the body.
func get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, string(body)
}

// getJSON does a GET of a JSON route and decodes its body into v.
func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	code, h, body := get(t, url)
	require.Equal(t, "application/json", h.Get("Content-Type"), body)
	require.NoError(t, json.Unmarshal([]byte(body), v), body)
	return code
}

// eventually polls cond for at most 20 s (a bound, not a delay).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			require.FailNow(t, "timed out waiting: "+what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type metrics struct {
	App     string    `json:"app"`
	Time    time.Time `json:"time"`
	Metrics struct {
		RecordsProcessed uint64
		Tasks            int
	} `json:"metrics"`
	Tasks []struct {
		ID         string `json:"id"`
		Active     bool
		Partitions []struct {
			Topic                    string
			Partition                int32
			Position, Committed, End int64
			Lag                      int64
		}
		Steps []struct {
			Step      string
			RecordsIn uint64
		}
	} `json:"tasks"`
}

func TestHandler(t *testing.T) {
	const lines = 300
	b := setup(t, lines)
	app, err := duality.New("dbg", wordCount(t), b, duality.StateDir(t.TempDir()), duality.CommitInterval(5*time.Millisecond))
	require.NoError(t, err)
	h, err := debughttp.Handler(app, debughttp.Queries(httpquery.StringKeys("counts", codec.Int64())), debughttp.Refresh(250*time.Millisecond))
	require.NoError(t, err)
	srv := httptest.NewServer(h) // 127.0.0.1
	defer srv.Close()

	// Before Run: the topology and zero counters are served.
	var topo struct {
		App           string       `json:"app"`
		RefreshMillis int64        `json:"refreshMillis"`
		Queries       bool         `json:"queries"`
		Graph         stream.Graph `json:"graph"`
		Describe      string       `json:"describe"`
		Mermaid       string       `json:"mermaid"`
	}
	require.Equal(t, http.StatusOK, getJSON(t, srv.URL+"/api/topology", &topo))
	require.Equal(t, "dbg", topo.App)
	require.Equal(t, int64(250), topo.RefreshMillis)
	require.True(t, topo.Queries)
	require.Equal(t, app.Graph(), topo.Graph)
	require.Equal(t, app.Describe(), topo.Describe)
	require.Equal(t, app.Mermaid(), topo.Mermaid)
	names := map[string]string{}
	for _, n := range topo.Graph.Nodes {
		names[n.Name] = n.Kind
	}
	for name, kind := range map[string]string{
		"lines": "topic", "split-words": "processor", "count-words": "processor", "counts": "store",
		"dbg-by-word-repartition": "internal-topic", "dbg-counts-changelog": "internal-topic",
		"write-counts": "sink", "word-counts": "topic",
	} {
		require.Equal(t, kind, names[name], name)
	}
	var m metrics
	require.Equal(t, http.StatusOK, getJSON(t, srv.URL+"/api/metrics", &m))
	require.Equal(t, "dbg", m.App)
	require.Zero(t, m.Metrics.RecordsProcessed)
	require.Empty(t, m.Tasks)
	var stores struct {
		Sizes      []duality.StoreSize   `json:"sizes"`
		State      *struct{ Stores int } `json:"state"`
		StateError string                `json:"stateError"`
	}
	require.Equal(t, http.StatusOK, getJSON(t, srv.URL+"/api/stores", &stores))
	require.Empty(t, stores.Sizes)
	require.Nil(t, stores.State)
	require.Contains(t, stores.StateError, duality.ErrStoreNotReady.Error())

	run(t, app)
	eventually(t, "every line processed and committed", func() bool {
		getJSON(t, srv.URL+"/api/metrics", &m)
		var committed int64
		var splitIn uint64
		for _, tm := range m.Tasks {
			for _, p := range tm.Partitions {
				if p.Topic == "lines" {
					committed += p.Committed
				}
			}
			for _, s := range tm.Steps {
				if s.Step == "split-words" {
					splitIn += s.RecordsIn
				}
			}
		}
		return committed == lines && splitIn == lines
	})
	require.Equal(t, 4, m.Metrics.Tasks) // 2 sub-topologies x 2 partitions
	ids := map[string]bool{}
	for _, tm := range m.Tasks {
		require.True(t, tm.Active)
		ids[tm.ID] = true
		for _, p := range tm.Partitions {
			if p.End >= 0 {
				require.Equal(t, p.End-p.Position, p.Lag, "%s[%d]", p.Topic, p.Partition)
			}
		}
	}
	require.Equal(t, map[string]bool{"0_0": true, "0_1": true, "1_0": true, "1_1": true}, ids)

	eventually(t, "store sizes", func() bool {
		getJSON(t, srv.URL+"/api/stores", &stores)
		var keys int64
		for _, s := range stores.Sizes {
			require.Equal(t, "counts", s.Store)
			keys += s.Keys
		}
		return keys == 13 // w0 to w12
	})
	require.NotNil(t, stores.State)
	require.NotZero(t, stores.State.Stores)

	// Store queries go to httpquery under /query/.
	var list struct {
		Stores []struct{ Name, Kind string } `json:"stores"`
	}
	require.Equal(t, http.StatusOK, getJSON(t, srv.URL+"/query/", &list))
	require.Equal(t, []struct{ Name, Kind string }{{"counts", "key-value"}}, list.Stores)
	var kv struct {
		Key   string `json:"key"`
		Value int64  `json:"value"`
	}
	var w3 int64 // lines with "w3" once or twice
	for i := range lines {
		if i%13 == 3 {
			w3++
		}
		if i%5 == 3 {
			w3++
		}
	}
	eventually(t, "count of w3 committed", func() bool {
		return getJSON(t, srv.URL+"/query/stores/counts/keys/w3", &kv) == http.StatusOK && kv.Value == w3
	})

	// The page and its assets, from the handler alone.
	code, hdr, body := get(t, srv.URL+"/")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "text/html; charset=utf-8", hdr.Get("Content-Type"))
	require.Contains(t, hdr.Get("Content-Security-Policy"), "default-src 'none'")
	require.Contains(t, body, `<script src="debug.js"></script>`)
	require.NotContains(t, body, "://", "the page loads nothing from elsewhere")
	for _, asset := range []string{"/debug.js", "/debug.css"} {
		code, hdr, body := get(t, srv.URL+asset)
		require.Equal(t, http.StatusOK, code, asset)
		require.NotEmpty(t, body, asset)
		require.NotContains(t, hdr.Get("Content-Type"), "text/plain", asset)
	}
}

func TestHandlerErrors(t *testing.T) {
	b := setup(t, 0)
	app, err := duality.New("dbg", wordCount(t), b)
	require.NoError(t, err)

	_, err = debughttp.Handler(nil)
	require.ErrorContains(t, err, "debughttp: nil app")
	_, err = debughttp.Handler(app, debughttp.Refresh(time.Millisecond),
		debughttp.Queries(httpquery.StringKeys("nope", codec.Int64())))
	require.ErrorContains(t, err, "debughttp: Refresh(1ms): want at least 100ms")
	require.ErrorIs(t, err, stream.ErrUnknownStore)

	h, err := debughttp.Handler(app)
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, c := range []struct {
		method, path string
		code         int
		err          string
	}{
		{"GET", "/nope", http.StatusNotFound, `no route \"/nope\"`},
		{"GET", "/api/", http.StatusNotFound, "no route"},
		{"POST", "/api/metrics", http.StatusMethodNotAllowed, "method POST not allowed"},
		{"DELETE", "/", http.StatusMethodNotAllowed, "method DELETE not allowed"},
		{"GET", "/query/", http.StatusNotFound, "create the handler with debughttp.Queries"},
		{"GET", "/query/stores/counts/keys/a", http.StatusNotFound, "create the handler with debughttp.Queries"},
	} {
		req, err := http.NewRequestWithContext(t.Context(), c.method, srv.URL+c.path, nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, c.code, resp.StatusCode, "%s %s: %s", c.method, c.path, body)
		require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
		require.Contains(t, string(body), c.err)
		if c.code == http.StatusMethodNotAllowed {
			require.Equal(t, "GET, HEAD", resp.Header.Get("Allow"))
		}
	}
}

// TestHandlerPrefix: mounted under a prefix, the page is at the prefix
// with a slash, and its relative links reach the handler.
func TestHandlerPrefix(t *testing.T) {
	b := setup(t, 0)
	app, err := duality.New("dbg", wordCount(t), b)
	require.NoError(t, err)
	h, err := debughttp.Handler(app)
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/debug/", http.StripPrefix("/debug", h))
	mux.Handle("/debug", http.StripPrefix("/debug", h))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	code, _, body := get(t, srv.URL+"/debug") // follows the redirect
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `<script src="debug.js"></script>`)
	var topo struct {
		App string `json:"app"`
	}
	require.Equal(t, http.StatusOK, getJSON(t, srv.URL+"/debug/api/topology", &topo))
	require.Equal(t, "dbg", topo.App)
	code, _, _ = get(t, srv.URL+"/debug/debug.js")
	require.Equal(t, http.StatusOK, code)
}

func TestServe(t *testing.T) {
	b := setup(t, 0)
	app, err := duality.New("dbg", wordCount(t), b)
	require.NoError(t, err)
	h, err := debughttp.Handler(app)
	require.NoError(t, err)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- debughttp.Serve(ctx, ln, h) }()
	url := "http://" + ln.Addr().String()
	code, _, _ := get(t, url+"/")
	require.Equal(t, http.StatusOK, code)

	// The address is taken: ListenAndServe says so at once.
	err = debughttp.ListenAndServe(t.Context(), ln.Addr().String(), h)
	require.ErrorContains(t, err, "debughttp: listen tcp "+ln.Addr().String())

	cancel()
	require.NoError(t, <-done)
	_, err = http.Get(url + "/")
	require.Error(t, err, "the listener is closed")

	require.ErrorContains(t, debughttp.Serve(t.Context(), nil, h), "needs a listener")

	// A listener that fails is Serve's error.
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	require.NoError(t, ln.Close())
	err = debughttp.Serve(t.Context(), ln, h)
	require.True(t, errors.Is(err, net.ErrClosed), "%v", err)
}
