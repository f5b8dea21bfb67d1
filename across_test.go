package duality_test

import (
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
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

// The tests of this file run three instances of one app in one group,
// each advertising the endpoint of its own httpquery server: every
// instance answers every key, also after one of them stops and the group
// rebalances.

const (
	acrossApp   = "across"
	acrossLines = "across-lines"
)

// acrossTopology counts the words of acrossLines by word (through the
// repartition topic "by-word") into the store "counts", and per hour into
// the windowed store "counts-1h", whose table it returns.
func acrossTopology(t *testing.T) (*stream.Topology, table.Table[window.Windowed[string], int64]) {
	t.Helper()
	sb := stream.NewBuilder()
	lines := stream.From(sb, acrossLines, codec.String(), codec.String())
	words := stream.FlatMapValues(lines, func(line string) iter.Seq[string] { return strings.FieldsSeq(line) })
	byWord := stream.GroupBy(words, func(_, w string) string { return w }, stream.Named("by-word"))
	table.Count(byWord, "counts")
	hourly := window.Count(byWord, window.Tumbling(time.Hour, time.Hour), "counts-1h")
	topo, err := sb.Build()
	require.NoError(t, err)
	return topo, hourly
}

// acrossTime is the timestamp of every line: all counts fall in one
// hourly window.
var acrossTime = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// produceLines appends lines [from, to) of two words each to acrossLines
// and adds their words to model.
func produceLines(t *testing.T, b broker.Broker, from, to int, model map[string]int64) {
	t.Helper()
	var recs []broker.Record
	for i := from; i < to; i++ {
		line := fmt.Sprintf("w%02d w%02d", i%29, (i*7)%13)
		for w := range strings.FieldsSeq(line) {
			model[w]++
		}
		recs = append(recs, broker.Record{Topic: acrossLines, Partition: broker.PartitionByKey,
			Key: fmt.Appendf(nil, "line-%d", i), Value: []byte(line), Timestamp: acrossTime})
	}
	require.NoError(t, b.Produce(t.Context(), recs))
}

// instance is one running instance of the app with its httpquery server.
type instance struct {
	endpoint string
	counts   *duality.ReadOnlyStore[string, int64]
	hourly   *duality.ReadOnlyWindowStore[string, int64]
	stop     func() error
}

// startInstance starts an instance of the app on b, with a state
// directory of its own and an httpquery server on 127.0.0.1, whose URL
// it advertises with duality.Endpoint.
func startInstance(t *testing.T, b broker.Broker) *instance {
	t.Helper()
	topo, hourly := acrossTopology(t)
	srv := httptest.NewUnstartedServer(nil) // listens on 127.0.0.1:0
	endpoint := "http://" + srv.Listener.Addr().String()
	app, err := duality.New(acrossApp, topo, b, duality.Endpoint(endpoint), duality.StateDir(t.TempDir()),
		duality.Workers(1), duality.CommitInterval(10*time.Millisecond))
	require.NoError(t, err)
	counts, err := duality.Query(app, "counts", codec.String(), codec.Int64())
	require.NoError(t, err)
	hourlyView, err := duality.QueryWindows(app, hourly)
	require.NoError(t, err)
	h, err := httpquery.Handler(app, httpquery.StringKeys("counts", codec.Int64()),
		httpquery.Windows(hourly, func(s string) (string, error) { return s, nil }))
	require.NoError(t, err)
	srv.Config.Handler = h
	srv.Start()
	t.Cleanup(srv.Close)
	stop, _ := runApp(t, app)
	return &instance{endpoint: endpoint, counts: counts, hourly: hourlyView, stop: stop}
}

// within polls cond until it holds, for at most d (a bound, not a
// synchronisation delay), and fails the test if it never does.
func within(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			require.FailNow(t, "timed out waiting: "+what, "%v", err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// awaitSettled waits until the group has consumed all its input (lag 0:
// every count is committed), the running instances agree on the owner of
// every word (one of them, which knows it owns it, named by its endpoint,
// each instance owning some), and the owner's queries see the word's
// committed count (a worker applies a commit's writes to its stores once
// the broker has taken the commit).
func awaitSettled(t *testing.T, b broker.Broker, running []*instance, model map[string]int64) {
	t.Helper()
	within(t, 60*time.Second, "group settled", func() error {
		for _, topic := range []string{acrossLines, acrossApp + "-by-word-repartition"} {
			lag, err := broker.GroupLag(t.Context(), b, acrossApp, topic)
			if err != nil {
				return err
			}
			if lag != 0 {
				return fmt.Errorf("lag %d on %s", lag, topic)
			}
		}
		owning := map[string]bool{}
		for w, n := range model {
			var owner string
			for i, in := range running {
				o, err := in.counts.Owner(w)
				if err != nil {
					return err
				}
				if i == 0 {
					owner = o.Endpoint
				}
				if o.Endpoint != owner || o.Local != (o.Endpoint == in.endpoint) {
					return fmt.Errorf("views differ on %q: %+v at %s, owner %q at the first", w, o, in.endpoint, owner)
				}
				if o.Local {
					got, _, err := in.counts.Get(t.Context(), w)
					if err != nil {
						return err
					}
					if got != n {
						return fmt.Errorf("%s = %d at its owner %s, want %d", w, got, in.endpoint, n)
					}
					var hourly int64
					seq, errf := in.hourly.Fetch(t.Context(), w, acrossTime, acrossTime.Add(time.Millisecond))
					for _, v := range seq {
						hourly += v
					}
					if err := errf(); err != nil {
						return err
					}
					if hourly != n {
						return fmt.Errorf("%s = %d in its hourly window at its owner %s, want %d", w, hourly, in.endpoint, n)
					}
				}
			}
			owning[owner] = true
		}
		var want []string
		for _, in := range running {
			want = append(want, in.endpoint)
		}
		if got := slices.Sorted(maps.Keys(owning)); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
			return fmt.Errorf("owners %v, want %v", got, want)
		}
		return nil
	})
}

// getJSON does a GET of path at in's server, retrying on 503 (a
// partition restoring after a rebalance) for a bounded time, and returns
// the status, the ForwardedHeader and the decoded body.
func getJSON(t *testing.T, in *instance, path string) (int, string, map[string]any) {
	t.Helper()
	var code int
	var fwd string
	var body map[string]any
	within(t, 20*time.Second, "answer to "+path, func() error {
		resp, err := http.Get(in.endpoint + path)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		body = nil
		if err := json.Unmarshal(b, &body); err != nil {
			return fmt.Errorf("%s: %w", b, err)
		}
		code, fwd = resp.StatusCode, resp.Header.Get(httpquery.ForwardedHeader)
		if code == http.StatusServiceUnavailable {
			return fmt.Errorf("%d %v", code, body)
		}
		return nil
	})
	return code, fwd, body
}

// requireAnswers checks every word at every running instance: the count
// and the hourly window over HTTP, served by the owner (forwarded to it
// by the others), and the NotOwnedError of a local query naming the
// owner.
func requireAnswers(t *testing.T, running []*instance, model map[string]int64) {
	t.Helper()
	for w, n := range model {
		o, err := running[0].counts.Owner(w)
		require.NoError(t, err)
		for _, in := range running {
			code, fwd, body := getJSON(t, in, "/stores/counts/keys/"+url.PathEscape(w))
			require.Equal(t, http.StatusOK, code, "%s at %s: %v", w, in.endpoint, body)
			require.Equal(t, map[string]any{"key": w, "value": float64(n)}, body, "%s at %s", w, in.endpoint)
			if o.Endpoint == in.endpoint {
				require.Empty(t, fwd, "%s answered by its owner %s", w, in.endpoint)
			} else {
				require.Equal(t, o.Endpoint, fwd, "%s forwarded by %s", w, in.endpoint)
			}

			code, _, body = getJSON(t, in, "/stores/counts-1h/keys/"+url.PathEscape(w))
			require.Equal(t, http.StatusOK, code, "%s at %s: %v", w, in.endpoint, body)
			start := acrossTime.Truncate(time.Hour)
			require.Equal(t, []any{map[string]any{"key": w, "start": start.Format(time.RFC3339),
				"end": start.Add(time.Hour).Format(time.RFC3339), "value": float64(n)}}, body["items"], "%s at %s", w, in.endpoint)

			got, ok, err := in.counts.Get(t.Context(), w)
			if o.Endpoint == in.endpoint {
				require.NoError(t, err)
				require.True(t, ok)
				require.Equal(t, n, got)
				continue
			}
			var no *duality.NotOwnedError
			require.ErrorAs(t, err, &no)
			require.Equal(t, o.Endpoint, no.Owner, "%s at %s", w, in.endpoint)
			require.Equal(t, o.Partition, no.Partition)
		}
	}
}

func testQueriesAcrossInstances(t *testing.T, b broker.Broker) {
	createTopic(t, b, acrossLines, 6)
	model := map[string]int64{}
	produceLines(t, b, 0, 300, model)
	running := []*instance{startInstance(t, b), startInstance(t, b), startInstance(t, b)}
	awaitSettled(t, b, running, model)
	requireAnswers(t, running, model)

	// One instance stops and leaves the group: the others take its
	// partitions (restoring its stores from their changelogs) and answer
	// for them, also with the counts of new lines.
	require.NoError(t, running[0].stop())
	running = running[1:]
	produceLines(t, b, 300, 500, model)
	awaitSettled(t, b, running, model)
	requireAnswers(t, running, model)
}

func TestQueriesAcrossInstances(t *testing.T) {
	t.Run("embedded", func(t *testing.T) { testQueriesAcrossInstances(t, openBroker(t)) })
	t.Run("kafka", func(t *testing.T) { testQueriesAcrossInstances(t, newKafkaBroker(t)) })
}

func TestEndpointInvalid(t *testing.T) {
	topo, _ := acrossTopology(t)
	b := openBroker(t)
	for _, e := range []string{"", "127.0.0.1:8080", "ftp://h", "http://u:p@h:1", "http://h:1/?a=b"} {
		_, err := duality.New("bad-endpoint", topo, b, duality.Endpoint(e))
		require.ErrorIs(t, err, duality.ErrInvalidConfig, "%q", e)
		require.ErrorContains(t, err, "Endpoint", "%q", e)
	}
	_, err := duality.New("good-endpoint", topo, b, duality.Endpoint("http://10.0.0.7:8080"))
	require.NoError(t, err)
}

// TestKeyOwner: Owner before, during and after Run, and an owner that
// advertises no endpoint: of two instances, one with an endpoint and one
// without, the first names no owner for the second's keys, the second
// names the first for its keys.
func TestKeyOwner(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, acrossLines, 4)
	model := map[string]int64{}
	produceLines(t, b, 0, 100, model)
	topo, _ := acrossTopology(t)
	const endpoint = "http://10.0.0.7:8080"
	var views [2]*duality.ReadOnlyStore[string, int64]
	var stops [2]func() error
	for i, opts := range [][]duality.Option{{duality.Endpoint(endpoint)}, nil} {
		app, err := duality.New("key-owner", topo, b, append(opts, duality.CommitInterval(5*time.Millisecond))...)
		require.NoError(t, err)
		views[i], err = duality.Query(app, "counts", codec.String(), codec.Int64())
		require.NoError(t, err)
		if i == 0 {
			_, err = views[0].Owner("w01")
			require.ErrorIs(t, err, duality.ErrStoreNotReady, "before Run")
		}
		stops[i], _ = runApp(t, app)
	}
	within(t, 20*time.Second, "both instances own some words", func() error {
		var owns [2]int
		for w := range model {
			for i, v := range views {
				o, err := v.Owner(w)
				if err != nil {
					return err
				}
				if o.Local {
					owns[i]++
				}
			}
		}
		if owns[0] == 0 || owns[1] == 0 || owns[0]+owns[1] != len(model) {
			return fmt.Errorf("owned words %v of %d", owns, len(model))
		}
		return nil
	})
	for w := range model {
		o0, err := views[0].Owner(w)
		require.NoError(t, err)
		o1, err := views[1].Owner(w)
		require.NoError(t, err)
		require.Equal(t, o0.Partition, o1.Partition)
		require.Equal(t, broker.KeyPartition([]byte(w), 4), o0.Partition)
		if o0.Local {
			require.Equal(t, duality.KeyOwner{Store: "counts", Partition: o0.Partition, Endpoint: endpoint, Local: true}, o0)
			require.Equal(t, duality.KeyOwner{Store: "counts", Partition: o0.Partition, Endpoint: endpoint}, o1)
			_, _, err := views[1].Get(t.Context(), w)
			var no *duality.NotOwnedError
			require.ErrorAs(t, err, &no)
			require.Equal(t, endpoint, no.Owner)
			require.ErrorContains(t, err, "owner "+endpoint)
		} else {
			require.Equal(t, duality.KeyOwner{Store: "counts", Partition: o0.Partition}, o0, "the owner advertises no endpoint")
			require.Equal(t, duality.KeyOwner{Store: "counts", Partition: o0.Partition, Local: true}, o1)
			_, _, err := views[0].Get(t.Context(), w)
			var no *duality.NotOwnedError
			require.ErrorAs(t, err, &no)
			require.Empty(t, no.Owner, "the owner advertises no endpoint")
		}
	}
	require.NoError(t, stops[0]())
	_, err := views[0].Owner("w01")
	require.ErrorIs(t, err, duality.ErrStoreNotReady, "after Run")
}
