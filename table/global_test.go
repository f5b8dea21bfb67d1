package table_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
	"github.com/duality-streams/duality/table"
)

// purchase is an order of a customer; orders are keyed by order id.
type purchase struct {
	Customer string
	Amount   int
}

// globalJoinTopology joins "orders" with the global table of "customers"
// (customer id -> name) by the order's customer, inner into
// "orders-named", left into "orders-all".
func globalJoinTopology(t *testing.T) *stream.Topology {
	t.Helper()
	b := stream.NewBuilder()
	customers := table.Global(b, "customers", codec.String(), codec.String(), "customers-global")
	orders := stream.From(b, "orders", codec.String(), codec.JSON[purchase]())
	byCustomer := func(_ string, o purchase) string { return o.Customer }
	table.JoinGlobal(orders, customers, byCustomer, func(id string, o purchase, name string) string {
		return fmt.Sprintf("%s:%s:%d", id, name, o.Amount)
	}).To("orders-named")
	table.LeftJoinGlobal(orders, customers, byCustomer, func(id string, o purchase, name string, found bool) string {
		if !found {
			return fmt.Sprintf("%s:?%s:%d", id, o.Customer, o.Amount)
		}
		return fmt.Sprintf("%s:%s:%d", id, name, o.Amount)
	}).To("orders-all")
	topo, err := b.Build()
	require.NoError(t, err)
	return topo
}

// TestGlobalJoinDriver joins orders with a global customers table in the
// test driver: the global topic has more partitions than the stream's, a
// customer piped later is seen by later orders, a deleted customer no
// longer joins, and the global store answers every key.
func TestGlobalJoinDriver(t *testing.T) {
	ctx := t.Context()
	d, err := streamtest.New(globalJoinTopology(t), streamtest.Partitions("customers", 5), streamtest.Partitions("orders", 2))
	require.NoError(t, err)
	defer func() { require.NoError(t, d.Close()) }()
	customers := streamtest.Input(d, "customers", codec.String(), codec.String())
	orders := streamtest.Input(d, "orders", codec.String(), codec.JSON[purchase]())
	named := streamtest.Output(d, "orders-named", codec.String(), codec.String())
	all := streamtest.Output(d, "orders-all", codec.String(), codec.String())

	for i := range 10 {
		require.NoError(t, customers.Pipe(ctx, fmt.Sprintf("c%d", i), fmt.Sprintf("name%d", i)))
	}
	for i := range 10 {
		require.NoError(t, orders.Pipe(ctx, fmt.Sprintf("o%d", i), purchase{Customer: fmt.Sprintf("c%d", 9-i), Amount: i}))
	}
	require.NoError(t, orders.Pipe(ctx, "o-unknown", purchase{Customer: "nobody", Amount: 1}))
	require.NoError(t, customers.Pipe(ctx, "c3", "renamed"))
	require.NoError(t, d.PipeRaw(ctx, broker.Record{Topic: "customers", Partition: broker.PartitionByKey, Key: []byte("c4")})) // delete
	require.NoError(t, d.PipeRaw(ctx, broker.Record{Topic: "customers", Partition: 0, Value: []byte("no key")}))               // ignored
	require.NoError(t, orders.Pipe(ctx, "o-3", purchase{Customer: "c3", Amount: 3}))
	require.NoError(t, orders.Pipe(ctx, "o-4", purchase{Customer: "c4", Amount: 4}))

	got, err := named.ReadValues()
	require.NoError(t, err)
	var want []string
	for i := range 10 {
		want = append(want, fmt.Sprintf("o%d:name%d:%d", i, 9-i, i))
	}
	require.ElementsMatch(t, append(want, "o-3:renamed:3"), got)
	got, err = all.ReadValues()
	require.NoError(t, err)
	require.ElementsMatch(t, append(want, "o-unknown:?nobody:1", "o-3:renamed:3", "o-4:?c4:4"), got)

	view := streamtest.Store(d, "customers-global", codec.String(), codec.String())
	name, ok, err := view.Get("c3")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "renamed", name)
	_, ok, err = view.Get("c4")
	require.NoError(t, err)
	require.False(t, ok)
	kvs, err := view.All()
	require.NoError(t, err)
	require.Len(t, kvs, 9)
}

// TestGlobalBuildErrors checks the wiring mistakes Build reports for global
// tables and their joins.
func TestGlobalBuildErrors(t *testing.T) {
	str := codec.String()
	tests := []struct {
		name  string
		build func(b *stream.Builder)
		is    error
		msg   string
	}{
		{"nil key codec", func(b *stream.Builder) {
			table.Global[string, string](b, "g", nil, str, "gs")
		}, stream.ErrNilCodec, `global table "gs": key codec`},
		{"nil value codec", func(b *stream.Builder) {
			table.Global[string, string](b, "g", str, nil, "gs")
		}, stream.ErrNilCodec, `global table "gs": value codec`},
		{"bad store name", func(b *stream.Builder) {
			table.Global(b, "g", str, str, "bad name")
		}, stream.ErrInvalidOption, `global store name "bad name"`},
		{"bad topic", func(b *stream.Builder) {
			table.Global(b, "bad/topic", str, str, "gs")
		}, broker.ErrInvalidTopicName, "bad/topic"},
		{"topic read by a stream", func(b *stream.Builder) {
			table.Global(b, "in", str, str, "gs")
		}, stream.ErrTopicConflict, `topic "in" is read by source "source-0" and global store "gs"`},
		{"topic of two global tables", func(b *stream.Builder) {
			table.Global(b, "g", str, str, "gs1")
			table.Global(b, "g", str, str, "gs2")
		}, stream.ErrTopicConflict, `feeds global stores "gs1" and "gs2"`},
		{"store twice", func(b *stream.Builder) {
			table.Global(b, "g1", str, str, "gs")
			table.Global(b, "g2", str, str, "gs")
		}, stream.ErrStoreConflict, `global store "gs" is declared twice`},
		{"store also local", func(b *stream.Builder) {
			table.Global(b, "g", str, str, "counts")
			in := stream.From(b, "in2", str, str)
			table.Count(stream.GroupByKey(in), "counts")
		}, stream.ErrStoreConflict, `store "counts" is also a global store`},
		{"nil key mapper", func(b *stream.Builder) {
			g := table.Global(b, "g", str, str, "gs")
			table.JoinGlobal(stream.From(b, "in2", str, str), g, nil, func(k, v, gv string) string { return v })
		}, stream.ErrNilFunc, `join-global`},
		{"nil joiner", func(b *stream.Builder) {
			g := table.Global(b, "g", str, str, "gs")
			table.LeftJoinGlobal[string, string, string, string, string](stream.From(b, "in2", str, str), g,
				func(k, v string) string { return v }, nil)
		}, stream.ErrNilFunc, `left-join-global`},
		{"named, nil key codec", func(b *stream.Builder) {
			table.Global[string, string](b, "g", nil, str, "gs", stream.Named("customers"))
		}, stream.ErrNilCodec, `global table "customers" (store "gs"): key codec`},
		{"timestamp extractor", func(b *stream.Builder) {
			table.Global(b, "g", str, str, "gs", stream.WithTimestamp(func(_, _ string, ts time.Time) time.Time { return ts }))
		}, stream.ErrInvalidOption, `global table "gs" does not take WithTimestamp`},
		{"codec option", func(b *stream.Builder) {
			table.Global(b, "g", str, str, "gs", stream.Named("customers"), stream.WithValueCodec(str))
		}, stream.ErrInvalidOption, `global table "customers" does not take WithValueCodec`},
		{"name of a step", func(b *stream.Builder) {
			table.Global(b, "g", str, str, "gs", stream.Named("source-0"))
		}, stream.ErrDuplicateName, `"source-0" names both a source step and global table of store "gs"`},
		{"name of two global tables", func(b *stream.Builder) {
			table.Global(b, "g1", str, str, "gs1", stream.Named("customers"))
			table.Global(b, "g2", str, str, "gs2", stream.Named("customers"))
		}, stream.ErrDuplicateName, `"customers" names two global tables`},
		{"other builder", func(b *stream.Builder) {
			g := table.Global(stream.NewBuilder(), "g", str, str, "gs")
			table.JoinGlobal(stream.From(b, "in2", str, str), g, func(k, v string) string { return v },
				func(k, v, gv string) string { return v })
		}, stream.ErrForeignStream, "different builders"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := stream.NewBuilder()
			stream.From(b, "in", str, str).To("out")
			tt.build(b)
			_, err := b.Build()
			require.ErrorIs(t, err, tt.is)
			require.ErrorContains(t, err, tt.msg)
		})
	}
}

// TestGlobalDescribe checks that Describe lists global stores.
func TestGlobalDescribe(t *testing.T) {
	desc := globalJoinTopology(t).Describe()
	require.True(t, strings.HasSuffix(desc, "  Global stores\n    customers-global (topic: customers, every partition on every instance)\n"), desc)
	require.Regexp(t, `Processor: join-global-\d+ \(global stores: \[customers-global\]\)`, desc)
	require.Regexp(t, `Processor: left-join-global-\d+ \(global stores: \[customers-global\]\)`, desc)
}

// TestGlobalDescribeNamed: a global table named with stream.Named shows
// its name beside its store.
func TestGlobalDescribeNamed(t *testing.T) {
	str := codec.String()
	b := stream.NewBuilder()
	g := table.Global(b, "customers", str, str, "customers-global", stream.Named("customers-table"))
	table.JoinGlobal(stream.From(b, "orders", str, str), g, func(_, v string) string { return v },
		func(_, v, name string) string { return name + ": " + v }).To("out")
	topo, err := b.Build()
	require.NoError(t, err)
	require.True(t, strings.HasSuffix(topo.Describe(),
		"  Global stores\n    customers-global (global table: customers-table, topic: customers, every partition on every instance)\n"), topo.Describe())
}

// ExampleJoinGlobal enriches orders with a global table of customers,
// looked up by the customer id each order carries: the orders need no
// repartitioning, and a customer update is seen by later orders.
func ExampleJoinGlobal() {
	b := stream.NewBuilder()
	customers := table.Global(b, "customers", codec.String(), codec.String(), "customers-global")
	orders := stream.From(b, "orders", codec.String(), codec.String()) // order id -> customer id
	table.JoinGlobal(orders, customers,
		func(_, customer string) string { return customer },
		func(order, customer, name string) string { return order + " for " + name },
	).To("enriched")
	topo, err := b.Build()
	if err != nil {
		panic(err)
	}

	ctx := context.Background()
	d, err := streamtest.New(topo, streamtest.Partitions("customers", 4))
	if err != nil {
		panic(err)
	}
	defer d.Close()
	cust := streamtest.Input(d, "customers", codec.String(), codec.String())
	in := streamtest.Input(d, "orders", codec.String(), codec.String())
	_ = cust.Pipe(ctx, "c1", "Ada")
	_ = in.Pipe(ctx, "o1", "c1")
	_ = in.Pipe(ctx, "o2", "c2") // no such customer: dropped
	_ = cust.Pipe(ctx, "c1", "Ada Lovelace")
	_ = in.Pipe(ctx, "o3", "c1")
	out, _ := streamtest.Output(d, "enriched", codec.String(), codec.String()).ReadValues()
	fmt.Println(strings.Join(out, "\n"))
	// Output:
	// o1 for Ada
	// o3 for Ada Lovelace
}

func init() {
	// global-join: orders (key: order id, value: "<customer> <item>")
	// enriched with the global table of customers (key: customer, value:
	// name), looked up by the customer in the order's value.
	strs := kvText{strText, strText}
	scriptTopologies["global-join"] = scriptTopology{
		build: func(b *stream.Builder) {
			customers := table.Global(b, "customers", codec.String(), codec.String(), "customers")
			orders := stream.From(b, "orders", codec.String(), codec.String())
			customer := func(_, v string) string { c, _, _ := strings.Cut(v, " "); return c }
			item := func(v string) string { _, it, _ := strings.Cut(v, " "); return it }
			table.JoinGlobal(orders, customers, customer, func(_, v, name string) string {
				return item(v) + " for " + name
			}).To("enriched")
			table.LeftJoinGlobal(orders, customers, customer, func(_, v, name string, found bool) string {
				return item(v) + " for " + show(name, found)
			}).To("enriched-left")
		},
		topics: map[string]kvText{"customers": strs, "orders": strs, "enriched": strs, "enriched-left": strs},
		stores: map[string]kvText{"customers": strs},
	}
}
