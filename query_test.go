package duality_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
)

// queryTopology counts the words of "lines" into the store "counts".
func queryTopology(t *testing.T) *stream.Topology {
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

// produceWords appends n lines of two words each to "lines" and returns the
// expected counts.
func produceWords(t *testing.T, b broker.Broker, n int) map[string]int64 {
	t.Helper()
	want := map[string]int64{}
	var recs []broker.Record
	for i := range n {
		line := fmt.Sprintf("w%02d w%02d", i%37, i%11)
		for w := range strings.FieldsSeq(line) {
			want[w]++
		}
		recs = append(recs, broker.Record{Topic: "lines", Partition: broker.PartitionByKey,
			Key: fmt.Appendf(nil, "l%d", i), Value: []byte(line)})
	}
	require.NoError(t, b.Produce(t.Context(), recs))
	return want
}

// collect drains seq, returning its pairs and the error after it.
func collect[K comparable, V any](seq iter.Seq2[K, V], errf func() error) ([]K, map[K]V, error) {
	var keys []K
	m := map[K]V{}
	for k, v := range seq {
		keys = append(keys, k)
		m[k] = v
	}
	return keys, m, errf()
}

func TestQueryGetRange(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "lines", 3)
	want := produceWords(t, b, 400)
	app, err := duality.New("iq", queryTopology(t), b,
		duality.StateDir(t.TempDir()), duality.CommitInterval(5*time.Millisecond))
	require.NoError(t, err)
	counts, err := duality.Query(app, "counts", codec.String(), codec.Int64())
	require.NoError(t, err)
	_, err = duality.Query(app, "nope", codec.String(), codec.Int64())
	require.ErrorIs(t, err, stream.ErrUnknownStore)
	_, err = duality.Query[string, int64](app, "counts", nil, codec.Int64())
	require.ErrorIs(t, err, duality.ErrInvalidConfig)

	_, _, err = counts.Get(t.Context(), "w01")
	require.ErrorIs(t, err, duality.ErrStoreNotReady, "before Run")
	require.True(t, duality.IsRetryableQueryError(err))

	stop, _ := runApp(t, app)
	eventually(t, "committed counts", func() bool {
		_, got, err := collect(counts.All(t.Context()))
		return err == nil && maps.Equal(got, want)
	})
	for w, n := range want {
		got, ok, err := counts.Get(t.Context(), w)
		require.NoError(t, err)
		require.True(t, ok, w)
		require.Equal(t, n, got, w)
	}
	_, ok, err := counts.Get(t.Context(), "absent")
	require.NoError(t, err)
	require.False(t, ok)

	keys, _, err := collect(counts.All(t.Context()))
	require.NoError(t, err)
	require.True(t, slices.IsSorted(keys), "merged in key order: %v", keys)
	require.Len(t, keys, len(want))

	tests := []struct{ from, to string }{
		{"w05", "w10"}, {"w00", "w99"}, {"", "w03"}, {"w10", "w05"}, {"x", "y"},
	}
	for _, tt := range tests {
		t.Run(tt.from+"-"+tt.to, func(t *testing.T) {
			var exp []string
			for w := range want {
				if w >= tt.from && w < tt.to {
					exp = append(exp, w)
				}
			}
			slices.Sort(exp)
			keys, got, err := collect(counts.Range(t.Context(), tt.from, tt.to))
			require.NoError(t, err)
			require.Equal(t, exp, keys)
			for _, k := range keys {
				require.Equal(t, want[k], got[k])
			}
		})
	}

	// An iteration stopped early closes its cursors (or Run would hang).
	seq, _ := counts.All(t.Context())
	for range seq {
		break
	}
	require.NoError(t, stop())
	_, _, err = counts.Get(t.Context(), "w01")
	require.ErrorIs(t, err, duality.ErrStoreNotReady, "after Run")
	_, _, err = collect(counts.All(t.Context()))
	require.ErrorIs(t, err, duality.ErrStoreNotReady, "after Run")
}

// TestQueryNotOwned runs two instances: each key is served by exactly one
// of them, the other answers with its partition as not owned.
func TestQueryNotOwned(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "lines", 4)
	want := produceWords(t, b, 300)
	topo := queryTopology(t)
	var views []*duality.ReadOnlyStore[string, int64]
	for range 2 {
		app, err := duality.New("iq2", topo, b, duality.CommitInterval(5*time.Millisecond))
		require.NoError(t, err)
		q, err := duality.Query(app, "counts", codec.String(), codec.Int64())
		require.NoError(t, err)
		views = append(views, q)
		runApp(t, app)
	}
	// Both instances own partitions and the union of their ranges is the
	// whole table.
	eventually(t, "two owners, all counts", func() bool {
		union := map[string]int64{}
		for _, q := range views {
			keys, got, err := collect(q.All(t.Context()))
			if err != nil || len(keys) == 0 {
				return false
			}
			maps.Copy(union, got)
		}
		return maps.Equal(union, want)
	})
	for w, n := range want {
		served := 0
		for _, q := range views {
			got, ok, err := q.Get(t.Context(), w)
			if err == nil {
				served++
				require.True(t, ok)
				require.Equal(t, n, got)
				continue
			}
			var no *duality.NotOwnedError
			require.ErrorAs(t, err, &no)
			require.ErrorIs(t, err, duality.ErrNotOwned)
			require.Equal(t, "counts", no.Store)
			require.Equal(t, broker.KeyPartition([]byte(w), 4), no.Partition)
		}
		require.Equal(t, 1, served, w)
	}
}

// TestQueryDuringRebalance queries from several goroutines while a second
// instance joins and leaves (closing and reopening store partitions): the
// only errors are retryable ones, and the race detector sees no race.
func TestQueryDuringRebalance(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "lines", 4)
	want := produceWords(t, b, 300)
	topo := queryTopology(t)
	app, err := duality.New("iq3", topo, b, duality.StateDir(t.TempDir()), duality.CommitInterval(5*time.Millisecond))
	require.NoError(t, err)
	counts, err := duality.Query(app, "counts", codec.String(), codec.Int64())
	require.NoError(t, err)
	stop, _ := runApp(t, app)
	eventually(t, "all counts", func() bool {
		_, got, err := collect(counts.All(t.Context()))
		return err == nil && maps.Equal(got, want)
	})

	done := make(chan struct{})
	var okN, retryN atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				var err error
				if g%2 == 0 {
					w := fmt.Sprintf("w%02d", i%37)
					var n int64
					var ok bool
					n, ok, err = counts.Get(t.Context(), w)
					if err == nil && (!ok || n != want[w]) {
						err = fmt.Errorf("%s = %d, %v; want %d", w, n, ok, want[w])
					}
				} else {
					var got map[string]int64
					_, got, err = collect(counts.All(t.Context()))
					for k, v := range got {
						if want[k] != v {
							err = errors.Join(err, fmt.Errorf("%s = %d; want %d", k, v, want[k]))
						}
					}
				}
				switch {
				case err == nil:
					okN.Add(1)
				case duality.IsRetryableQueryError(err):
					retryN.Add(1)
				default:
					errc <- err
					return
				}
			}
		})
	}
	for range 2 {
		app2, err := duality.New("iq3", topo, b, duality.CommitInterval(5*time.Millisecond))
		require.NoError(t, err)
		q2, err := duality.Query(app2, "counts", codec.String(), codec.Int64())
		require.NoError(t, err)
		stop2, _ := runApp(t, app2)
		eventually(t, "second instance serving", func() bool {
			_, got, err := collect(q2.All(t.Context()))
			return err == nil && len(got) > 0
		})
		require.NoError(t, stop2())
	}
	require.NoError(t, stop())
	close(done)
	wg.Wait()
	close(errc)
	for err := range errc {
		require.NoError(t, err)
	}
	t.Logf("queries: %d served, %d retryable errors", okN.Load(), retryN.Load())
	require.Positive(t, okN.Load())
}

// TestQueryShutdownDuringRange stops the app while a Range is being
// iterated, with a Get in the loop body: the Gets turn retryable once the
// stores are closed, the iteration can go on over its snapshot, and Run
// returns only after the iteration ends (no deadlock, no panic).
func TestQueryShutdownDuringRange(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "lines", 2)
	want := produceWords(t, b, 100)
	app, err := duality.New("iq4", queryTopology(t), b, duality.StateDir(t.TempDir()), duality.CommitInterval(5*time.Millisecond))
	require.NoError(t, err)
	counts, err := duality.Query(app, "counts", codec.String(), codec.Int64())
	require.NoError(t, err)
	stop, _ := runApp(t, app)
	eventually(t, "all counts", func() bool {
		_, got, err := collect(counts.All(t.Context()))
		return err == nil && maps.Equal(got, want)
	})

	stopped := make(chan error, 1)
	seq, errf := counts.All(t.Context())
	n := 0
	for k, v := range seq {
		require.Equal(t, want[k], v)
		if n == 0 {
			go func() { stopped <- stop() }()
			eventually(t, "stores closed", func() bool {
				_, _, err := counts.Get(t.Context(), k)
				return errors.Is(err, duality.ErrStoreNotReady)
			})
		}
		n++
		select {
		case err := <-stopped:
			require.FailNow(t, "Run returned during a range iteration", "%v", err)
		default:
		}
	}
	require.NoError(t, errf())
	require.Equal(t, len(want), n, "the snapshot is read to the end")
	require.NoError(t, <-stopped)
	_, _, err = counts.Get(t.Context(), "w01")
	require.ErrorIs(t, err, duality.ErrStoreNotReady)
}

// TestQueryCommittedOnly processes records without committing them (a
// one-hour commit interval): the task's uncommitted counts are not visible
// to queries. Once they are committed (at shutdown), a new run serves them.
func TestQueryCommittedOnly(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "words", 2)
	sb := stream.NewBuilder()
	words := stream.From(sb, "words", codec.String(), codec.String())
	table.Count(stream.GroupByKey(words), "counts")
	topo, err := sb.Build()
	require.NoError(t, err)
	var recs []broker.Record
	want := map[string]int64{}
	for i := range 50 {
		w := fmt.Sprintf("w%d", i%5)
		want[w]++
		recs = append(recs, broker.Record{Topic: "words", Partition: broker.PartitionByKey, Key: []byte(w), Value: []byte("x")})
	}
	require.NoError(t, b.Produce(t.Context(), recs))
	dir := t.TempDir()

	app, err := duality.New("iq5", topo, b, duality.StateDir(dir), duality.CommitInterval(time.Hour))
	require.NoError(t, err)
	counts, err := duality.Query(app, "counts", codec.String(), codec.Int64())
	require.NoError(t, err)
	stop, _ := runApp(t, app)
	eventually(t, "all records processed", func() bool { return app.Metrics().RecordsProcessed == 50 })
	require.Zero(t, app.Metrics().Commits)
	for w := range want {
		_, ok, err := counts.Get(t.Context(), w)
		require.NoError(t, err)
		require.False(t, ok, "%s: uncommitted count visible", w)
	}
	keys, _, err := collect(counts.All(t.Context()))
	require.NoError(t, err)
	require.Empty(t, keys)
	require.NoError(t, stop()) // commits

	app2, err := duality.New("iq5", topo, b, duality.StateDir(dir))
	require.NoError(t, err)
	counts2, err := duality.Query(app2, "counts", codec.String(), codec.Int64())
	require.NoError(t, err)
	runApp(t, app2)
	eventually(t, "committed counts served", func() bool {
		_, got, err := collect(counts2.All(t.Context()))
		return err == nil && maps.Equal(got, want)
	})
}

// TestQueryDuringRestore queries a partition from the OnRestore hook, while
// it is being restored from its changelog: ErrStoreNotReady.
func TestQueryDuringRestore(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "lines", 2)
	want := produceWords(t, b, 100)
	topo := queryTopology(t)
	app, err := duality.New("iq6", topo, b, duality.CommitInterval(5*time.Millisecond))
	require.NoError(t, err)
	counts, err := duality.Query(app, "counts", codec.String(), codec.Int64())
	require.NoError(t, err)
	stop, _ := runApp(t, app)
	eventually(t, "all counts", func() bool {
		_, got, err := collect(counts.All(t.Context()))
		return err == nil && maps.Equal(got, want)
	})
	require.NoError(t, stop())

	// In memory, the second run restores every partition from the changelog.
	var mu sync.Mutex
	var during []error
	var counts2 *duality.ReadOnlyStore[string, int64]
	app2, err := duality.New("iq6", topo, b, duality.CommitInterval(5*time.Millisecond),
		duality.OnRestore(func(p duality.RestoreProgress) {
			if !p.Done || p.Store != "counts" {
				return
			}
			for w := range want {
				if broker.KeyPartition([]byte(w), 2) == p.Partition {
					_, _, err := counts2.Get(t.Context(), w)
					mu.Lock()
					during = append(during, err)
					mu.Unlock()
				}
			}
		}))
	require.NoError(t, err)
	counts2, err = duality.Query(app2, "counts", codec.String(), codec.Int64())
	require.NoError(t, err)
	runApp(t, app2)
	eventually(t, "restored counts", func() bool {
		_, got, err := collect(counts2.All(t.Context()))
		return err == nil && maps.Equal(got, want)
	})
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, during, len(want), "every key queried during its partition's restore")
	for _, err := range during {
		require.ErrorIs(t, err, duality.ErrStoreNotReady)
	}
}

// BenchmarkQueryGet measures Get on a running app's Pebble store.
func BenchmarkQueryGet(b *testing.B) {
	br, err := embedded.Open(b.TempDir())
	require.NoError(b, err)
	defer br.Close()
	require.NoError(b, br.CreateTopic(b.Context(), "words", broker.TopicConfig{Partitions: 4}))
	sb := stream.NewBuilder()
	table.Count(stream.GroupByKey(stream.From(sb, "words", codec.String(), codec.String())), "counts")
	topo, err := sb.Build()
	require.NoError(b, err)
	const keys = 1000
	var recs []broker.Record
	for i := range keys {
		recs = append(recs, broker.Record{Topic: "words", Partition: broker.PartitionByKey, Key: fmt.Appendf(nil, "k%04d", i), Value: []byte("x")})
	}
	require.NoError(b, br.Produce(b.Context(), recs))
	app, err := duality.New("bq", topo, br, duality.StateDir(b.TempDir()), duality.CommitInterval(5*time.Millisecond))
	require.NoError(b, err)
	counts, err := duality.Query(app, "counts", codec.String(), codec.Int64())
	require.NoError(b, err)
	ctx, cancel := context.WithCancel(b.Context())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	defer func() { cancel(); require.NoError(b, <-done) }()
	for deadline := time.Now().Add(10 * time.Second); ; {
		ks, _, err := collect(counts.All(b.Context()))
		if err == nil && len(ks) == keys {
			break
		}
		require.True(b, time.Now().Before(deadline), "timed out")
		time.Sleep(2 * time.Millisecond) // polling bound, as eventually
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		_, ok, err := counts.Get(b.Context(), fmt.Sprintf("k%04d", i%keys))
		if err != nil || !ok {
			b.Fatal(err, ok)
		}
		i++
	}
}
