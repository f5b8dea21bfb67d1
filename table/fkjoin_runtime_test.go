package table_test

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
)

// staleCounter is a slog.Handler that counts the join's drops of stale
// responses.
type staleCounter struct{ n *atomic.Int64 }

func (h staleCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h staleCounter) Handle(_ context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, "dropped a response for an older value") {
		h.n.Add(1)
	}
	return nil
}
func (h staleCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h staleCounter) WithGroup(string) slog.Handler      { return h }

// fkEndOffsets returns a fetch request per partition of topic, at its end.
func fkEndOffsets(t *testing.T, b broker.Broker, topic string) []broker.FetchRequest {
	t.Helper()
	info, err := b.DescribeTopic(t.Context(), topic)
	require.NoError(t, err)
	reqs := make([]broker.FetchRequest, info.Config.Partitions)
	for p := range reqs {
		offs, err := b.ListOffsets(t.Context(), topic, int32(p))
		require.NoError(t, err)
		reqs[p] = broker.FetchRequest{Topic: topic, Partition: int32(p), Offset: offs.Latest}
	}
	return reqs
}

// fkReadFrom returns the records of the partitions of reqs from their
// offsets to their current ends.
func fkReadFrom(t *testing.T, b broker.Broker, reqs []broker.FetchRequest) []broker.Record {
	t.Helper()
	from := make(map[broker.TopicPartition]int64, len(reqs))
	for _, r := range reqs {
		from[broker.TopicPartition{Topic: r.Topic, Partition: r.Partition}] = r.Offset
	}
	recs, err := broker.Read(t.Context(), b, from)
	require.NoError(t, err)
	return recs
}

// awaitLatest long-polls the partitions of reqs from their offsets until
// the newest value of every key it read (a tombstone removes the key)
// equals want, bounded by 20 s, and returns every record it read.
func awaitLatest(t *testing.T, b broker.Broker, reqs []broker.FetchRequest, want map[string]string, minRecords int) []broker.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	topic := reqs[0].Topic
	latest := map[string]string{}
	var all []broker.Record
	c := consumeFrom(t, b, reqs)
	for !maps.Equal(latest, want) || len(all) < minRecords {
		polled, err := c.Poll(ctx, time.Second)
		recs := polled.Records
		require.NoError(t, err, "waiting for the newest values of %q; have %d keys, want %d", topic, len(latest), len(want))
		for _, r := range recs {
			reqs[r.Partition].Offset = r.Offset + 1
			if r.Value == nil {
				delete(latest, string(r.Key))
			} else {
				latest[string(r.Key)] = string(r.Value)
			}
		}
		all = append(all, recs...)
	}
	return all
}

// TestJoinByForeignKeyRuntime runs the foreign-key join on the embedded
// broker with orders in 3 partitions and customers in 2, in two runs.
// The first run gets every order three times in one batch (each time with
// another customer), so responses for older values are still under way
// when newer ones are processed: no result may pair an order's value with
// another customer than the one that value names. The second run starts
// from an empty state directory, so both sides rebuild their stores (the
// subscription store included) from the changelogs; then every customer is
// renamed and two are deleted: each order is re-emitted exactly once with
// its customer's new name, and the orders of the deleted customers get one
// tombstone each.
func TestJoinByForeignKeyRuntime(t *testing.T) {
	const nOrders, nCustomers = 90, 7
	ctx := t.Context()
	b, err := embedded.Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	for topic, n := range map[string]int32{"orders": 3, "customers": 2, "enriched-changes": 3} {
		require.NoError(t, b.CreateTopic(ctx, topic, broker.TopicConfig{Partitions: n}))
	}
	topo := fkJoinTopology(t, false)
	dir := filepath.Join(t.TempDir(), "state")
	var stale atomic.Int64
	// run runs the app until the results are want (and at least
	// minRecords were written), and returns every result it wrote.
	run := func(produce []broker.Record, want map[string]string, minRecords int) []broker.Record {
		t.Helper()
		app, err := duality.New("shop", topo, b, duality.CommitInterval(5*time.Millisecond), duality.StateDir(dir), duality.Workers(2),
			duality.Logger(slog.New(staleCounter{&stale})))
		require.NoError(t, err)
		from := fkEndOffsets(t, b, "enriched-changes")
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- app.Run(runCtx) }()
		require.NoError(t, b.Produce(ctx, produce))
		awaitLatest(t, b, slices.Clone(from), want, minRecords)
		// The result store answers queries with the results: its keys
		// are the left keys, in the left table's partitions. Queries see
		// a commit once its state is applied, which the runtime does
		// after the commit's records are visible (commits are
		// pipelined): poll until they catch up.
		q, err := duality.Query(app, "enriched", codec.String(), codec.String())
		require.NoError(t, err)
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			for k := range nOrders {
				key := fmt.Sprint("o", k)
				got, ok, err := q.Get(ctx, key)
				require.NoError(c, err)
				w, found := want[key]
				require.Equal(c, found, ok, key)
				require.Equal(c, w, got, key)
			}
		}, 10*time.Second, 5*time.Millisecond)
		stop()
		require.NoError(t, <-done)
		return fkReadFrom(t, b, from)
	}
	customer := func(k, v string) broker.Record {
		r := broker.Record{Topic: "customers", Partition: broker.PartitionByKey, Key: []byte(k)}
		if v != "" {
			r.Value = []byte(v)
		}
		return r
	}
	order := func(o, round int) (broker.Record, int) {
		c := (o*3 + round) % nCustomers
		v, err := codec.JSON[fkOrder]().Append(nil, fkOrder{Customer: fmt.Sprint("c", c), Item: fmt.Sprint("item", round)})
		require.NoError(t, err)
		return broker.Record{Topic: "orders", Partition: broker.PartitionByKey, Key: []byte(fmt.Sprint("o", o)), Value: v}, c
	}

	var recs []broker.Record
	for c := range nCustomers {
		recs = append(recs, customer(fmt.Sprint("c", c), fmt.Sprint("name", c)))
	}
	want := map[string]string{}
	final := map[string]int{} // order -> customer
	for round := range 3 {
		for o := range nOrders {
			r, c := order(o, round)
			recs = append(recs, r)
			want[fmt.Sprint("o", o)] = fmt.Sprintf("item%d for name%d", round, c)
			final[fmt.Sprint("o", o)] = c
		}
	}
	first := run(recs, want, 0)
	result := regexp.MustCompile(`^item(\d) for name(\d)$`)
	for _, r := range first {
		m := result.FindStringSubmatch(string(r.Value))
		require.NotNil(t, m, "%s=%s", r.Key, r.Value)
		o, _ := strconv.Atoi(string(r.Key[1:]))
		round, _ := strconv.Atoi(m[1])
		_, c := order(o, round)
		require.Equal(t, strconv.Itoa(c), m[2], "order %s of round %d joined with another customer than its own", r.Key, round)
	}

	// How many responses the hash check dropped depends on timing.
	t.Logf("first run: %d results for %d order updates, %d stale responses dropped", len(first), 3*nOrders, stale.Load())

	require.NoError(t, os.RemoveAll(dir))
	recs = recs[:0]
	for c := range nCustomers {
		recs = append(recs, customer(fmt.Sprint("c", c), fmt.Sprint("new", c)))
	}
	recs = append(recs, customer("c0", ""), customer("c1", ""))
	tombstones := 0
	for k, c := range final {
		switch c {
		case 0, 1:
			delete(want, k)
			tombstones++
		default:
			want[k] = fmt.Sprintf("item2 for new%d", c)
		}
	}
	second := run(recs, want, nOrders+tombstones)
	var updates, deletes int
	seen := map[string]int{}
	for _, r := range second {
		if r.Value == nil {
			deletes++
		} else {
			updates++
			seen[string(r.Key)]++
		}
	}
	require.Equal(t, nOrders, updates, "one update per order and customer rename")
	require.Equal(t, tombstones, deletes, "one tombstone per order of a deleted customer")
	for k, n := range seen {
		require.Equal(t, 1, n, "updates of %s", k)
	}
	// The subscription store's changelog holds one live subscription per
	// order: each foreign-key change removed the old one.
	live := map[string]bool{}
	for _, r := range readAll(t, b, "shop-enriched-subscription-store-changelog") {
		live[string(r.Key)] = r.Value != nil
	}
	n := 0
	for _, ok := range live {
		if ok {
			n++
		}
	}
	require.Equal(t, nOrders, n)
}

// BenchmarkJoinByForeignKeyRuntime runs the foreign-key join on the
// embedded broker (orders in 3 partitions, customers in 2, Pebble state)
// over b.N orders of 1,000 customers, produced before the app starts, and
// reports left records joined per second end to end (until every result
// is in the output topic).
func BenchmarkJoinByForeignKeyRuntime(b *testing.B) {
	const nCustomers = 1000
	ctx := b.Context()
	brk, err := embedded.Open(b.TempDir())
	require.NoError(b, err)
	b.Cleanup(func() { require.NoError(b, brk.Close()) })
	for topic, n := range map[string]int32{"orders": 3, "customers": 2, "enriched-changes": 3} {
		require.NoError(b, brk.CreateTopic(ctx, topic, broker.TopicConfig{Partitions: n}))
	}
	var recs []broker.Record
	for c := range nCustomers {
		recs = append(recs, broker.Record{Topic: "customers", Partition: broker.PartitionByKey, Key: fmt.Append(nil, "c", c), Value: fmt.Append(nil, "name", c)})
	}
	for o := range b.N {
		v, err := codec.JSON[fkOrder]().Append(nil, fkOrder{Customer: fmt.Sprint("c", o%nCustomers), Item: "item"})
		require.NoError(b, err)
		recs = append(recs, broker.Record{Topic: "orders", Partition: broker.PartitionByKey, Key: fmt.Append(nil, "o", o), Value: v})
	}
	require.NoError(b, brk.Produce(ctx, recs))
	bld := fkJoinBuilder()
	topo, err := bld.Build()
	require.NoError(b, err)
	app, err := duality.New("shop", topo, brk, duality.StateDir(b.TempDir()))
	require.NoError(b, err)
	b.ResetTimer()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- app.Run(runCtx) }()
	// Wait until every order has a result (an order may get two when its
	// subscription and its customer's first record meet in either order).
	reqs := make([]broker.FetchRequest, 3)
	for p := range reqs {
		reqs[p] = broker.FetchRequest{Topic: "enriched-changes", Partition: int32(p)}
	}
	seen := map[string]bool{}
	c := consumeFrom(b, brk, reqs)
	for len(seen) < b.N {
		polled, err := c.Poll(ctx, time.Second)
		got := polled.Records
		require.NoError(b, err)
		for _, r := range got {
			reqs[r.Partition].Offset = r.Offset + 1
			seen[string(r.Key)] = true
		}
	}
	b.StopTimer()
	stop()
	require.NoError(b, <-done)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "orders/s")
}

// TestJoinByForeignKeyRuntimeFeedback runs on the embedded broker a join
// of orders with a table computed from the orders (orders per customer):
// the orders' sub-topology feeds the counts' through the GroupBy
// repartition topic and the subscription topic, and gets the responses
// back, a cycle of sub-topologies the runtime sizes and runs.
func TestJoinByForeignKeyRuntimeFeedback(t *testing.T) {
	ctx := t.Context()
	brk, err := embedded.Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, brk.Close()) })
	for _, topic := range []string{"orders", "with-count"} {
		require.NoError(t, brk.CreateTopic(ctx, topic, broker.TopicConfig{Partitions: 3}))
	}
	str, oc := codec.String(), codec.JSON[fkOrder]()
	b := stream.NewBuilder()
	orders := table.From(b, "orders", str, oc, "orders")
	perCustomer := table.GroupBy(orders, func(k string, o fkOrder) (string, string) { return o.Customer, k }).Count("per-customer")
	table.JoinByForeignKey(orders, perCustomer, func(o fkOrder) string { return o.Customer },
		func(o fkOrder, n int64) string { return fmt.Sprintf("%s: 1 of %d", o.Item, n) },
		"with-count").ToStream().To("with-count")
	topo, err := b.Build()
	require.NoError(t, err)
	app, err := duality.New("feedback", topo, brk, duality.CommitInterval(5*time.Millisecond))
	require.NoError(t, err)
	from := fkEndOffsets(t, brk, "with-count")
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- app.Run(runCtx) }()
	var recs []broker.Record
	want := map[string]string{}
	for o := range 30 {
		v, err := oc.Append(nil, fkOrder{Customer: fmt.Sprint("c", o%4), Item: fmt.Sprint("item", o)})
		require.NoError(t, err)
		recs = append(recs, broker.Record{Topic: "orders", Partition: broker.PartitionByKey, Key: fmt.Append(nil, "o", o), Value: v})
		n := 8 // customers c0 and c1 have 8 orders, c2 and c3 7
		if o%4 >= 2 {
			n = 7
		}
		want[fmt.Sprint("o", o)] = fmt.Sprintf("item%d: 1 of %d", o, n)
	}
	require.NoError(t, brk.Produce(ctx, recs))
	awaitLatest(t, brk, from, want, 0)
	stop()
	require.NoError(t, <-done)
}

// TestJoinByForeignKeyTwoInstances runs the join in two instances of one
// app (memory state) that split its five tasks; one instance leaves while
// customer renames are pending, and the other takes its tasks over,
// rebuilding their stores (the subscription store included) from the
// changelogs: every order is re-emitted exactly once with its customer's
// new name.
func TestJoinByForeignKeyTwoInstances(t *testing.T) {
	const nOrders, nCustomers = 60, 5
	ctx := t.Context()
	brk, err := embedded.Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, brk.Close()) })
	for topic, n := range map[string]int32{"orders": 3, "customers": 2, "enriched-changes": 3} {
		require.NoError(t, brk.CreateTopic(ctx, topic, broker.TopicConfig{Partitions: n}))
	}
	topo := fkJoinTopology(t, false)
	start := func() (*duality.App, func()) {
		app, err := duality.New("shared", topo, brk, duality.CommitInterval(2*time.Millisecond), duality.FetchMaxWait(20*time.Millisecond))
		require.NoError(t, err)
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- app.Run(runCtx) }()
		return app, func() { stop(); require.NoError(t, <-done) }
	}
	awaitTasks := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			require.True(t, time.Now().Before(deadline), "waiting until %s", what)
			time.Sleep(5 * time.Millisecond)
		}
	}
	a, stopA := start()
	b, stopB := start()
	awaitTasks("the instances split the 5 tasks", func() bool {
		return a.Metrics().Tasks > 0 && b.Metrics().Tasks > 0 && a.Metrics().Tasks+b.Metrics().Tasks == 5
	})

	start0 := fkEndOffsets(t, brk, "enriched-changes")
	var recs []broker.Record
	want := map[string]string{}
	for c := range nCustomers {
		recs = append(recs, broker.Record{Topic: "customers", Partition: broker.PartitionByKey, Key: fmt.Append(nil, "c", c), Value: fmt.Append(nil, "name", c)})
	}
	for o := range nOrders {
		v, err := codec.JSON[fkOrder]().Append(nil, fkOrder{Customer: fmt.Sprint("c", o%nCustomers), Item: "item"})
		require.NoError(t, err)
		recs = append(recs, broker.Record{Topic: "orders", Partition: broker.PartitionByKey, Key: fmt.Append(nil, "o", o), Value: v})
		want[fmt.Sprint("o", o)] = fmt.Sprint("item for name", o%nCustomers)
	}
	require.NoError(t, brk.Produce(ctx, recs))
	awaitLatest(t, brk, start0, want, 0)

	from := fkEndOffsets(t, brk, "enriched-changes")
	recs = recs[:0]
	for c := range nCustomers {
		recs = append(recs, broker.Record{Topic: "customers", Partition: broker.PartitionByKey, Key: fmt.Append(nil, "c", c), Value: fmt.Append(nil, "new", c)})
	}
	for o := range nOrders {
		want[fmt.Sprint("o", o)] = fmt.Sprint("item for new", o%nCustomers)
	}
	require.NoError(t, brk.Produce(ctx, recs))
	stopB()
	awaitTasks("the remaining instance owns all tasks", func() bool { return a.Metrics().Tasks == 5 })
	awaitLatest(t, brk, slices.Clone(from), want, nOrders)
	stopA()
	n := map[string]int{}
	for _, r := range fkReadFrom(t, brk, from) {
		n[string(r.Key)]++
	}
	require.Len(t, n, nOrders)
	for k, c := range n {
		require.Equal(t, 1, c, "re-emissions of %s", k)
	}
}

// TestJoinByForeignKeyRuntimeSelf runs a table joined with itself on the
// embedded broker (employees with their manager's manager, 3 partitions):
// one sub-topology reads the subscriptions and responses it writes.
// Managers change while the answers are under way; every result ends
// with the newest manager chain.
func TestJoinByForeignKeyRuntimeSelf(t *testing.T) {
	const n = 40
	ctx := t.Context()
	brk, err := embedded.Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, brk.Close()) })
	for _, topic := range []string{"people", "chains"} {
		require.NoError(t, brk.CreateTopic(ctx, topic, broker.TopicConfig{Partitions: 3}))
	}
	str := codec.String()
	b := stream.NewBuilder()
	people := table.From(b, "people", str, str, "people")
	table.JoinByForeignKey(people, people, func(manager string) string { return manager },
		func(manager, grand string) string { return manager + "/" + grand },
		"chain").ToStream().To("chains")
	topo, err := b.Build()
	require.NoError(t, err)
	app, err := duality.New("self", topo, brk, duality.CommitInterval(5*time.Millisecond))
	require.NoError(t, err)
	from := fkEndOffsets(t, brk, "chains")
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- app.Run(runCtx) }()
	// Person i reports to i/2 (person 0 to itself), then every person
	// with an odd number reports to 0 instead.
	manager := map[int]int{}
	var recs []broker.Record
	put := func(p, m int) {
		manager[p] = m
		recs = append(recs, broker.Record{Topic: "people", Partition: broker.PartitionByKey, Key: fmt.Append(nil, "p", p), Value: fmt.Append(nil, "p", m)})
	}
	for p := range n {
		put(p, p/2)
	}
	for p := 1; p < n; p += 2 {
		put(p, 0)
	}
	require.NoError(t, brk.Produce(ctx, recs))
	want := map[string]string{}
	for p := range n {
		want[fmt.Sprint("p", p)] = fmt.Sprintf("p%d/p%d", manager[p], manager[manager[p]])
	}
	awaitLatest(t, brk, from, want, 0)
	stop()
	require.NoError(t, <-done)
}
