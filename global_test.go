package duality_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
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
	"github.com/duality-streams/duality/httpquery"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
)

const globalStore = "customers-global"

// globalTopology left-joins "orders" (order id -> customer id) with the
// global table of "customers" (customer id -> name) into "out": the value
// is "<name>" or "?" for an unknown customer.
func globalTopology(t *testing.T) *stream.Topology {
	t.Helper()
	topo, err := buildGlobal()
	require.NoError(t, err)
	return topo
}

func buildGlobal() (*stream.Topology, error) {
	b := stream.NewBuilder()
	customers := table.Global(b, "customers", codec.String(), codec.String(), globalStore)
	orders := stream.From(b, "orders", codec.String(), codec.String())
	table.LeftJoinGlobal(orders, customers, func(_, customer string) string { return customer },
		func(_, _, name string, found bool) string {
			if !found {
				return "?"
			}
			return name
		}).To("out")
	return b.Build()
}

// produceKV appends records with the given keys and values (a "" value is
// a tombstone) to topic, partitioned by key.
func produceKV(t *testing.T, b broker.Broker, topic string, kvs ...string) {
	t.Helper()
	var recs []broker.Record
	for i := 0; i < len(kvs); i += 2 {
		r := broker.Record{Topic: topic, Partition: broker.PartitionByKey, Key: []byte(kvs[i])}
		if kvs[i+1] != "" {
			r.Value = []byte(kvs[i+1])
		}
		recs = append(recs, r)
	}
	require.NoError(t, b.Produce(t.Context(), recs))
}

// globalSetup creates the topics (customers with more partitions than
// orders) and n customers c<i> named n<i>.
func globalSetup(t *testing.T, n int) broker.Broker {
	b := openBroker(t)
	createTopic(t, b, "customers", 3)
	createTopic(t, b, "orders", 2)
	createTopic(t, b, "out", 2)
	var kvs []string
	for i := range n {
		kvs = append(kvs, fmt.Sprintf("c%d", i), fmt.Sprintf("n%d", i))
	}
	produceKV(t, b, "customers", kvs...)
	return b
}

// joined returns the output of "out" as order id -> value.
func joined(t *testing.T, b broker.Broker) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, r := range readTopic(t, b, "out") {
		require.NotContains(t, m, string(r.Key), "order joined twice")
		m[string(r.Key)] = string(r.Value)
	}
	return m
}

func newGlobalApp(t *testing.T, b broker.Broker, opts ...duality.Option) *duality.App {
	t.Helper()
	opts = append([]duality.Option{duality.CommitInterval(5 * time.Millisecond), duality.Workers(1)}, opts...)
	app, err := duality.New("gapp", globalTopology(t), b, opts...)
	require.NoError(t, err)
	return app
}

// TestGlobalTwoInstances runs two instances that split the orders
// partitions: each holds every customer (all three partitions of the
// global topic), answers queries for every key, and joins its orders.
func TestGlobalTwoInstances(t *testing.T) {
	const customers, orders = 30, 40
	b := globalSetup(t, customers)
	apps := []*duality.App{newGlobalApp(t, b), newGlobalApp(t, b)}
	for _, app := range apps {
		runApp(t, app)
	}
	eventually(t, "one orders partition each", func() bool {
		return apps[0].Metrics().Tasks == 1 && apps[1].Metrics().Tasks == 1
	})
	var kvs []string
	for i := range orders {
		kvs = append(kvs, fmt.Sprintf("o%d", i), fmt.Sprintf("c%d", i%(customers+5))) // c30..c34 are unknown
	}
	produceKV(t, b, "orders", kvs...)
	awaitRecords(t, b, "out", orders)
	got := joined(t, b)
	for i := range orders {
		want := "?"
		if c := i % (customers + 5); c < customers {
			want = fmt.Sprintf("n%d", c)
		}
		require.Equal(t, want, got[fmt.Sprintf("o%d", i)], "order o%d", i)
	}
	for i, app := range apps {
		require.NotZero(t, app.Metrics().RecordsProcessed, "instance %d processed orders", i)
		q, err := duality.Query(app, globalStore, codec.String(), codec.String())
		require.NoError(t, err)
		for c := range customers {
			name, ok, err := q.Get(t.Context(), fmt.Sprintf("c%d", c))
			require.NoError(t, err)
			require.True(t, ok, "instance %d has customer c%d", i, c)
			require.Equal(t, fmt.Sprintf("n%d", c), name)
		}
		all, errf := q.All(t.Context())
		n := 0
		for range all {
			n++
		}
		require.NoError(t, errf())
		require.Equal(t, customers, n, "instance %d: All", i)
	}
}

// TestGlobalUpdatesAfterStart checks that updates and deletes of the
// global topic made while the app runs reach the store and the orders
// processed after them.
func TestGlobalUpdatesAfterStart(t *testing.T) {
	b := globalSetup(t, 3)
	app := newGlobalApp(t, b)
	stop, _ := runApp(t, app)
	produceKV(t, b, "orders", "o1", "c0", "o2", "c1", "o3", "c9")
	awaitRecords(t, b, "out", 3)

	produceKV(t, b, "customers", "c0", "renamed", "c1", "", "c9", "new")
	q, err := duality.Query(app, globalStore, codec.String(), codec.String())
	require.NoError(t, err)
	eventually(t, "updates in the global store", func() bool {
		v0, _, err0 := q.Get(t.Context(), "c0")
		_, ok1, err1 := q.Get(t.Context(), "c1")
		v9, _, err9 := q.Get(t.Context(), "c9")
		return err0 == nil && err1 == nil && err9 == nil && v0 == "renamed" && !ok1 && v9 == "new"
	})
	produceKV(t, b, "orders", "o4", "c0", "o5", "c1", "o6", "c9")
	awaitRecords(t, b, "out", 6)

	// The same over HTTP: every key, as JSON.
	h, err := httpquery.Handler(app, httpquery.StringKeys(globalStore, codec.String()))
	require.NoError(t, err)
	for _, tc := range []struct {
		path   string
		status int
		body   string
	}{
		{"/stores/" + globalStore + "/keys/c0", http.StatusOK, `{"key":"c0","value":"renamed"}`},
		{"/stores/" + globalStore + "/keys/c1", http.StatusNotFound, `"error"`},
		{"/stores/" + globalStore, http.StatusOK, `{"items":[{"key":"c0","value":"renamed"},{"key":"c2","value":"n2"},{"key":"c9","value":"new"}],"more":false}`},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
		require.Equal(t, tc.status, rec.Code, tc.path)
		require.Contains(t, rec.Body.String(), tc.body, tc.path)
	}
	require.NoError(t, stop())
	require.Equal(t, map[string]string{
		"o1": "n0", "o2": "n1", "o3": "?",
		"o4": "renamed", "o5": "?", "o6": "new",
	}, joined(t, b))

	_, _, err = q.Get(t.Context(), "c0")
	require.ErrorIs(t, err, duality.ErrStoreNotReady, "a stopped app answers no query")
}

// TestGlobalRestart runs three instances one after the other: the second
// keeps the first's state directory and reads only the customers appended
// since, the third has no state directory and reads them all; all join
// with the current customers.
func TestGlobalRestart(t *testing.T) {
	b := globalSetup(t, 20)
	dir := t.TempDir()
	var mu sync.Mutex
	var restored int64
	onRestore := duality.OnRestore(func(p duality.RestoreProgress) {
		require.Equal(t, globalStore, p.Store)
		if p.Done {
			mu.Lock()
			restored += p.Restored
			mu.Unlock()
		}
	})
	restoredSince := func() int64 {
		mu.Lock()
		defer mu.Unlock()
		n := restored
		restored = 0
		return n
	}
	run := func(from, to int, opts ...duality.Option) {
		var kvs []string
		for i := from; i < to; i++ {
			kvs = append(kvs, fmt.Sprintf("o%d", i), fmt.Sprintf("c%d", i%20))
		}
		produceKV(t, b, "orders", kvs...)
		app := newGlobalApp(t, b, append(opts, onRestore)...)
		stop, _ := runApp(t, app)
		awaitRecords(t, b, "out", to)
		require.NoError(t, stop())
	}
	run(0, 10, duality.StateDir(dir))
	require.Equal(t, int64(20), restoredSince(), "first run reads every customer")

	produceKV(t, b, "customers", "c1", "one", "c2", "", "c3", "three")
	run(10, 30, duality.StateDir(dir))
	require.Equal(t, int64(3), restoredSince(), "the kept state reads only the new records")

	produceKV(t, b, "customers", "c4", "four")
	run(30, 50)
	require.Equal(t, int64(24), restoredSince(), "in-memory state reads everything")

	got := joined(t, b)
	name := func(c int, order int) string {
		switch {
		case c == 1 && order >= 10:
			return "one"
		case c == 2 && order >= 10:
			return "?"
		case c == 3 && order >= 10:
			return "three"
		case c == 4 && order >= 30:
			return "four"
		}
		return fmt.Sprintf("n%d", c)
	}
	for i := range 50 {
		require.Equal(t, name(i%20, i), got[fmt.Sprintf("o%d", i)], "order o%d", i)
	}
}

// TestGlobalMissingTopic checks that Run refuses to start without the
// global table's topic.
func TestGlobalMissingTopic(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "orders", 1)
	createTopic(t, b, "out", 1)
	err := newGlobalApp(t, b).Run(t.Context())
	var missing *duality.MissingTopicsError
	require.ErrorAs(t, err, &missing)
	require.Equal(t, []string{"customers"}, missing.Topics)
}

// TestGlobalTopicRecreated checks that a kept global store whose positions
// lie beyond its topic (the topic was deleted and recreated) is dropped
// and rebuilt from the new topic.
func TestGlobalTopicRecreated(t *testing.T) {
	b := globalSetup(t, 10)
	dir := t.TempDir()
	produceKV(t, b, "orders", "o1", "c1")
	app := newGlobalApp(t, b, duality.StateDir(dir))
	stop, _ := runApp(t, app)
	awaitRecords(t, b, "out", 1)
	require.NoError(t, stop())

	require.NoError(t, b.DeleteTopic(t.Context(), "customers"))
	createTopic(t, b, "customers", 3)
	produceKV(t, b, "customers", "c1", "new1", "c2", "new2")
	produceKV(t, b, "orders", "o2", "c1", "o3", "c5")
	app = newGlobalApp(t, b, duality.StateDir(dir))
	stop, _ = runApp(t, app)
	awaitRecords(t, b, "out", 3)
	q, err := duality.Query(app, globalStore, codec.String(), codec.String())
	require.NoError(t, err)
	all, errf := q.All(t.Context())
	got := map[string]string{}
	for k, v := range all {
		got[k] = v
	}
	require.NoError(t, errf())
	require.NoError(t, stop())
	require.Equal(t, map[string]string{"c1": "new1", "c2": "new2"}, got)
	require.Equal(t, map[string]string{"o1": "n1", "o2": "new1", "o3": "?"}, joined(t, b))
}

// globalFetches calls hook before every Poll of a consumer that reads the
// "customers" topic, with the partitions it reads; an error it returns is
// the Poll's.
type globalFetches struct {
	*embedded.Broker
	hook func(ctx context.Context, reqs []broker.FetchRequest) error
}

func (g *globalFetches) NewConsumer(opts broker.ConsumerOptions) (broker.Consumer, error) {
	return newHookedConsumer(g.Broker, opts, func(ctx context.Context, reqs []broker.FetchRequest) (func(broker.TopicPartition) bool, error) {
		if len(reqs) > 0 && reqs[0].Topic == "customers" {
			return nil, g.hook(ctx, reqs)
		}
		return nil, nil
	})
}

// requireRuntimeGone waits (yielding, 5 s at most) until no goroutine of
// the runtime is left.
func requireRuntimeGone(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for left := runtimeGoroutines(); len(left) > 0; left = runtimeGoroutines() {
		require.True(t, time.Now().Before(deadline), "goroutines left after Run returned:\n%s", strings.Join(left, "\n\n"))
		runtime.Gosched()
	}
}

// TestGlobalStopDuringBootstrap cancels Run while a global store is being
// bootstrapped: Run returns nil without starting any task, and no
// goroutine is left.
func TestGlobalStopDuringBootstrap(t *testing.T) {
	b := globalSetup(t, 5)
	produceKV(t, b, "orders", "o1", "c1")
	started := make(chan struct{})
	var once sync.Once
	blocking := &globalFetches{Broker: b.(*embedded.Broker), hook: func(ctx context.Context, _ []broker.FetchRequest) error {
		once.Do(func() { close(started) })
		<-ctx.Done()
		return ctx.Err()
	}}
	app := newGlobalApp(t, blocking)
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- app.Run(ctx) }()
	<-started
	q, err := duality.Query(app, globalStore, codec.String(), codec.String())
	require.NoError(t, err)
	_, _, err = q.Get(t.Context(), "c1")
	require.ErrorIs(t, err, duality.ErrStoreNotReady, "no query before the bootstrap ends")
	require.ErrorContains(t, err, "bootstrapping")
	cancel()
	require.NoError(t, <-errc)
	require.Zero(t, app.Metrics().Assignments, "no task starts before the bootstrap")
	require.Empty(t, readTopic(t, b, "out"))
	requireRuntimeGone(t)
}

// TestGlobalFollowFails checks that a fatal error of the goroutine that
// follows the global topics stops Run with that error, and that a
// retryable one is retried.
func TestGlobalFollowFails(t *testing.T) {
	b := globalSetup(t, 5)
	var fetches atomic.Int32
	failing := &globalFetches{Broker: b.(*embedded.Broker), hook: func(ctx context.Context, reqs []broker.FetchRequest) error {
		if len(reqs) == 1 {
			return nil // bootstrap, one partition at a time
		}
		switch fetches.Add(1) {
		case 1, 2:
			return fmt.Errorf("fetch: %w", transient{})
		case 3:
			return nil
		}
		return errors.New("disk on fire")
	}}
	app := newGlobalApp(t, failing)
	err := app.Run(t.Context())
	require.ErrorContains(t, err, `duality: app "gapp": global stores: fetch: disk on fire`)
	require.GreaterOrEqual(t, fetches.Load(), int32(4))
	requireRuntimeGone(t)
}

// TestGlobalRebuildInvisible: when following a global topic hits an
// offset out of range (records deleted under the store's position), the
// store is rebuilt from the beginning of the topic; meanwhile tasks and
// queries keep reading the complete store as it was, the rebuilt one
// replaces it once caught up, and a restart from the state directory
// keeps the rebuilt store without bootstrapping it again.
func TestGlobalRebuildInvisible(t *testing.T) {
	b := globalSetup(t, 5)
	dir := t.TempDir()
	var phase atomic.Int32 // 1: fail the next follow fetch; 2: hold the rebuild
	rebuilding, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	faulty := &globalFetches{Broker: b.(*embedded.Broker), hook: func(ctx context.Context, reqs []broker.FetchRequest) error {
		switch {
		case len(reqs) > 1 && phase.CompareAndSwap(1, 2): // follow: every partition at once
			offs, err := b.ListOffsets(ctx, "customers", reqs[0].Partition)
			if err != nil {
				return err
			}
			return &broker.OffsetOutOfRangeError{Topic: "customers", Partition: reqs[0].Partition, Offset: reqs[0].Offset, Offsets: offs}
		case len(reqs) == 1 && phase.Load() == 2: // bootstrap: one partition
			once.Do(func() { close(rebuilding) })
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}}
	var bootstrapped atomic.Int64
	onRestore := duality.OnRestore(func(p duality.RestoreProgress) {
		if p.Done {
			bootstrapped.Add(p.Restored)
		}
	})
	app := newGlobalApp(t, faulty, duality.StateDir(dir), onRestore)
	stop, _ := runApp(t, app)
	produceKV(t, b, "orders", "o1", "c1")
	awaitRecords(t, b, "out", 1)
	require.EqualValues(t, 5, bootstrapped.Load())

	phase.Store(1)
	<-rebuilding
	produceKV(t, b, "orders", "o2", "c2")
	awaitRecords(t, b, "out", 2)
	q, err := duality.Query(app, globalStore, codec.String(), codec.String())
	require.NoError(t, err)
	v, ok, err := q.Get(t.Context(), "c3")
	require.NoError(t, err)
	require.True(t, ok, "a query during the rebuild sees the complete store")
	require.Equal(t, "n3", v)

	close(release)
	produceKV(t, b, "customers", "c5", "n5")
	// A global store follows its topic on its own goroutine: an order
	// joins c5 once the store holds it (queries see the rebuilt store).
	eventually(t, "c5 in the rebuilt global store", func() bool {
		v, ok, err := q.Get(t.Context(), "c5")
		return err == nil && ok && v == "n5"
	})
	produceKV(t, b, "orders", "o3", "c5")
	awaitRecords(t, b, "out", 3)
	require.NoError(t, stop())
	require.Equal(t, map[string]string{"o1": "n1", "o2": "n2", "o3": "n5"}, joined(t, b))

	// The rebuilt store is the one kept: a restart bootstraps nothing.
	bootstrapped.Store(0)
	app = newGlobalApp(t, b, duality.StateDir(dir), onRestore)
	stop, _ = runApp(t, app)
	produceKV(t, b, "orders", "o4", "c4", "o5", "c5")
	awaitRecords(t, b, "out", 5)
	require.NoError(t, stop())
	require.Zero(t, bootstrapped.Load())
	require.Equal(t, map[string]string{"o1": "n1", "o2": "n2", "o3": "n5", "o4": "n4", "o5": "n5"}, joined(t, b))
}
