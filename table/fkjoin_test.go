package table_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
	"github.com/duality-streams/duality/table"
)

// fkOrder is the left value of the foreign-key join tests: an order of an
// item by a customer (the foreign key).
type fkOrder struct {
	Customer string `json:"customer"`
	Item     string `json:"item"`
}

// fkJoinTopology joins orders (left) with customers (right, name by id)
// into "enriched" and writes the result's changes to "enriched-changes".
func fkJoinTopology(t *testing.T, left bool) *stream.Topology {
	t.Helper()
	topo, err := fkJoinBuilderOf(left).Build()
	require.NoError(t, err)
	return topo
}

// fkJoinBuilder returns the builder of the inner fkJoinTopology.
func fkJoinBuilder() *stream.Builder { return fkJoinBuilderOf(false) }

func fkJoinBuilderOf(left bool) *stream.Builder {
	b := stream.NewBuilder()
	orders := table.From(b, "orders", codec.String(), codec.JSON[fkOrder](), "orders")
	customers := table.From(b, "customers", codec.String(), codec.String(), "customers")
	customer := func(o fkOrder) string { return o.Customer }
	var enriched table.Table[string, string]
	if left {
		enriched = table.LeftJoinByForeignKey(orders, customers, customer,
			func(o fkOrder, name string, found bool) string {
				if !found {
					return o.Item + " for nobody"
				}
				return o.Item + " for " + name
			},
			"enriched")
	} else {
		enriched = table.JoinByForeignKey(orders, customers, customer,
			func(o fkOrder, name string) string { return o.Item + " for " + name },
			"enriched")
	}
	enriched.ToStream().To("enriched-changes")
	return b
}

// fkStep is one input record of a foreign-key join script and the result
// changes it must cause: "key=value" or "key deleted".
type fkStep struct {
	order    string // order key, or "" for a customer record
	customer string
	value    fkOrder // an order's value
	name     string  // a customer's value
	del      bool
	want     []string
}

func runFKSteps(t *testing.T, d *streamtest.Driver, steps []fkStep) {
	t.Helper()
	ctx := t.Context()
	orders := streamtest.Input(d, "orders", codec.String(), codec.JSON[fkOrder]())
	customers := streamtest.Input(d, "customers", codec.String(), codec.String())
	out := streamtest.Output(d, "enriched-changes", codec.String(), codec.String())
	for i, s := range steps {
		var err error
		switch {
		case s.order != "" && s.del:
			err = orders.PipeTombstone(ctx, s.order)
		case s.order != "":
			err = orders.Pipe(ctx, s.order, s.value)
		case s.del:
			err = customers.PipeTombstone(ctx, s.customer)
		default:
			err = customers.Pipe(ctx, s.customer, s.name)
		}
		require.NoError(t, err, "step %d", i)
		recs, err := out.ReadAll()
		require.NoError(t, err)
		got := []string{}
		for _, r := range recs {
			if r.Tombstone {
				got = append(got, r.Key+" deleted")
			} else {
				got = append(got, r.Key+"="+r.Value)
			}
		}
		want := s.want
		if want == nil {
			want = []string{}
		}
		require.Equal(t, want, got, "step %d: %+v", i, s)
	}
}

func TestJoinByForeignKey(t *testing.T) {
	// The same input for both joins; each step lists the result changes
	// it causes (Kafka Streams emits one per step where listed).
	type exp struct{ inner, left []string }
	script := []struct {
		step fkStep
		exp  exp
	}{
		{fkStep{customer: "c1", name: "Ann"}, exp{}},
		{fkStep{order: "o1", value: fkOrder{"c1", "book"}}, exp{[]string{"o1=book for Ann"}, []string{"o1=book for Ann"}}},
		{fkStep{order: "o2", value: fkOrder{"c2", "pen"}}, exp{nil, []string{"o2=pen for nobody"}}},
		{fkStep{customer: "c2", name: "Bob"}, exp{[]string{"o2=pen for Bob"}, []string{"o2=pen for Bob"}}},
		// A right update re-emits every referring row.
		{fkStep{order: "o3", value: fkOrder{"c1", "cup"}}, exp{[]string{"o3=cup for Ann"}, []string{"o3=cup for Ann"}}},
		{fkStep{customer: "c1", name: "Anna"}, exp{[]string{"o1=book for Anna", "o3=cup for Anna"}, []string{"o1=book for Anna", "o3=cup for Anna"}}},
		// A foreign-key change moves the row: one result, and the old
		// customer no longer reaches it.
		{fkStep{order: "o2", value: fkOrder{"c1", "ink"}}, exp{[]string{"o2=ink for Anna"}, []string{"o2=ink for Anna"}}},
		{fkStep{customer: "c2", name: "Bobby"}, exp{}},
		// A left update that keeps the foreign key.
		{fkStep{order: "o3", value: fkOrder{"c1", "mug"}}, exp{[]string{"o3=mug for Anna"}, []string{"o3=mug for Anna"}}},
		// A move to a customer that does not exist retracts the result
		// of the inner join.
		{fkStep{order: "o1", value: fkOrder{"c3", "book"}}, exp{[]string{"o1 deleted"}, []string{"o1=book for nobody"}}},
		{fkStep{customer: "c3", name: "Cy"}, exp{[]string{"o1=book for Cy"}, []string{"o1=book for Cy"}}},
		// A right delete.
		{fkStep{customer: "c3", del: true}, exp{[]string{"o1 deleted"}, []string{"o1=book for nobody"}}},
		// A left delete.
		{fkStep{order: "o2", del: true}, exp{[]string{"o2 deleted"}, []string{"o2 deleted"}}},
		{fkStep{customer: "c1", name: "A."}, exp{[]string{"o3=mug for A."}, []string{"o3=mug for A."}}},
		// Deletes of keys that do not exist change nothing.
		{fkStep{customer: "c9", del: true}, exp{}},
		{fkStep{order: "o9", del: true}, exp{}},
		// A row without a right match that moves to another missing key:
		// the inner join had no row, so it emits no tombstone.
		{fkStep{order: "o4", value: fkOrder{"c7", "box"}}, exp{nil, []string{"o4=box for nobody"}}},
		{fkStep{order: "o4", value: fkOrder{"c8", "box"}}, exp{nil, []string{"o4=box for nobody"}}},
		// A deleted left row comes back.
		{fkStep{order: "o2", value: fkOrder{"c1", "pad"}}, exp{[]string{"o2=pad for A."}, []string{"o2=pad for A."}}},
	}
	for _, left := range []bool{false, true} {
		t.Run(map[bool]string{false: "inner", true: "left"}[left], func(t *testing.T) {
			d, err := streamtest.New(fkJoinTopology(t, left), streamtest.AppID("app"))
			require.NoError(t, err)
			defer d.Close()
			steps := make([]fkStep, len(script))
			for i, s := range script {
				steps[i] = s.step
				steps[i].want = s.exp.inner
				if left {
					steps[i].want = s.exp.left
				}
			}
			runFKSteps(t, d, steps)

			// The result table holds the newest result of every row.
			all, err := streamtest.Store(d, "enriched", codec.String(), codec.String()).All()
			require.NoError(t, err)
			want := []streamtest.KeyValue[string, string]{{Key: "o2", Value: "pad for A."}, {Key: "o3", Value: "mug for A."}}
			if left {
				want = append(want, streamtest.KV("o1", "book for nobody"), streamtest.KV("o4", "box for nobody"))
			}
			require.ElementsMatch(t, want, all)
			// The subscription store holds one subscription per order.
			n := 0
			seq, errf := d.StoreAll("enriched-subscription-store", 0)
			for range seq {
				n++
			}
			require.NoError(t, errf())
			require.Equal(t, 4, n)
		})
	}
}

// TestJoinByForeignKeyStaleResponse replays a response of right's side
// after the left row changed: its hash does not match the row's new value
// and it is dropped.
func TestJoinByForeignKeyStaleResponse(t *testing.T) {
	ctx := t.Context()
	d, err := streamtest.New(fkJoinTopology(t, false), streamtest.AppID("app"))
	require.NoError(t, err)
	defer d.Close()
	runFKSteps(t, d, []fkStep{
		{customer: "c1", name: "Ann"},
		{customer: "c2", name: "Bob"},
		{order: "o1", value: fkOrder{"c1", "book"}, want: []string{"o1=book for Ann"}},
	})
	responses := d.Records("app-enriched-subscription-response")
	require.Len(t, responses, 1)
	stale := responses[0]
	runFKSteps(t, d, []fkStep{
		{order: "o1", value: fkOrder{"c2", "pen"}, want: []string{"o1=pen for Bob"}},
	})
	// The response for "book" (customer Ann) arrives late: dropped.
	stale.Partition = broker.PartitionByKey
	require.NoError(t, d.PipeRaw(ctx, stale))
	recs, err := streamtest.Output(d, "enriched-changes", codec.String(), codec.String()).ReadAll()
	require.NoError(t, err)
	require.Empty(t, recs)
	got, ok, err := streamtest.Store(d, "enriched", codec.String(), codec.String()).Get("o1")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "pen for Bob", got)

	// A response for a row deleted since is dropped too, and so is a
	// delete's response for a row that came back.
	runFKSteps(t, d, []fkStep{
		{order: "o1", del: true, want: []string{"o1 deleted"}},
	})
	deleteResp := d.Records("app-enriched-subscription-response")
	require.NoError(t, d.PipeRaw(ctx, stale))
	runFKSteps(t, d, []fkStep{
		{order: "o1", value: fkOrder{"c2", "cup"}, want: []string{"o1=cup for Bob"}},
	})
	del := deleteResp[len(deleteResp)-1]
	require.Len(t, del.Value, 2, "a delete's response: format and flags, no hash, no right value")
	del.Partition = broker.PartitionByKey
	require.NoError(t, d.PipeRaw(ctx, del))
	recs, err = streamtest.Output(d, "enriched-changes", codec.String(), codec.String()).ReadAll()
	require.NoError(t, err)
	require.Empty(t, recs)
}

// TestJoinByForeignKeyPartitions joins a left table of 3 partitions with a
// right table of 2 and a result consumer: every order ends with the name
// of its newest customer, wherever the two live.
func TestJoinByForeignKeyPartitions(t *testing.T) {
	ctx := t.Context()
	d, err := streamtest.New(fkJoinTopology(t, false), streamtest.AppID("app"),
		streamtest.Partitions("orders", 3), streamtest.Partitions("customers", 2), streamtest.Partitions("enriched-changes", 3))
	require.NoError(t, err)
	defer d.Close()

	orders := streamtest.Input(d, "orders", codec.String(), codec.JSON[fkOrder]())
	customers := streamtest.Input(d, "customers", codec.String(), codec.String())
	const nOrders, nCustomers = 60, 7
	for c := range nCustomers {
		require.NoError(t, customers.Pipe(ctx, fmt.Sprint("c", c), fmt.Sprint("name", c)))
	}
	want := map[string]string{}
	for round := range 3 {
		for o := range nOrders {
			c := (o + round) % nCustomers
			k := fmt.Sprint("o", o)
			require.NoError(t, orders.Pipe(ctx, k, fkOrder{Customer: fmt.Sprint("c", c), Item: fmt.Sprint("item", round)}))
			want[k] = fmt.Sprintf("item%d for name%d", round, c)
		}
	}
	for c := range nCustomers {
		require.NoError(t, customers.Pipe(ctx, fmt.Sprint("c", c), fmt.Sprint("new", c)))
	}
	for o := range nOrders {
		want[fmt.Sprint("o", o)] = fmt.Sprintf("item2 for new%d", (o+2)%nCustomers)
	}
	all, err := streamtest.Store(d, "enriched", codec.String(), codec.String()).All()
	require.NoError(t, err)
	got := map[string]string{}
	for _, kv := range all {
		got[kv.Key] = kv.Value
	}
	require.Equal(t, want, got)
	// Subscriptions sit in the partition of their customer, and responses
	// and results in the partition of their order.
	for topic, n := range map[string]int32{"app-enriched-subscription-registration": 2, "app-enriched-subscription-response": 3, "enriched-changes": 3} {
		recs := d.Records(topic)
		require.NotEmpty(t, recs)
		for _, r := range recs {
			require.Equal(t, broker.KeyPartition(r.Key, n), r.Partition, topic)
		}
	}
}

// TestJoinByForeignKeyDerived joins a filtered left table with a mapped,
// filtered right table, and counts the results per customer name with a
// table GroupBy, which needs the result's old values to retract a row
// from its old group.
func TestJoinByForeignKeyDerived(t *testing.T) {
	ctx := t.Context()
	b := stream.NewBuilder()
	orders := table.From(b, "orders", codec.String(), codec.JSON[fkOrder](), "orders").
		FilterNot(func(_ string, o fkOrder) bool { return o.Item == "" })
	customers := table.MapValues(table.From(b, "customers", codec.String(), codec.String(), "customers"), strings.ToUpper).
		Filter(func(_, name string) bool { return name != "BANNED" })
	enriched := table.JoinByForeignKey(orders, customers, func(o fkOrder) string { return o.Customer },
		func(_ fkOrder, name string) string { return name },
		"enriched")
	perName := table.GroupBy(enriched, func(_, name string) (string, string) { return name, name }).Count("orders-per-name")
	perName.ToStream().To("per-name")
	topo, err := b.Build()
	require.NoError(t, err)
	d, err := streamtest.New(topo, streamtest.AppID("app"), streamtest.Partitions("orders", 2), streamtest.Partitions("customers", 3))
	require.NoError(t, err)
	defer d.Close()
	in := streamtest.Input(d, "orders", codec.String(), codec.JSON[fkOrder]())
	cust := streamtest.Input(d, "customers", codec.String(), codec.String())
	out := streamtest.Output(d, "per-name", codec.String(), codec.Int64())
	counts := func() map[string]int64 {
		t.Helper()
		all, err := streamtest.Store(d, "orders-per-name", codec.String(), codec.Int64()).All()
		require.NoError(t, err)
		m := map[string]int64{}
		for _, kv := range all {
			if kv.Value != 0 {
				m[kv.Key] = kv.Value
			}
		}
		return m
	}
	require.NoError(t, cust.Pipe(ctx, "c1", "ann"))
	require.NoError(t, cust.Pipe(ctx, "c2", "bob"))
	require.NoError(t, in.Pipe(ctx, "o1", fkOrder{"c1", "book"}))
	require.NoError(t, in.Pipe(ctx, "o2", fkOrder{"c1", "pen"}))
	require.NoError(t, in.Pipe(ctx, "o3", fkOrder{"c2", "cup"}))
	require.Equal(t, map[string]int64{"ANN": 2, "BOB": 1}, counts())
	// A foreign-key change moves o2 from Ann's group to Bob's.
	require.NoError(t, in.Pipe(ctx, "o2", fkOrder{"c2", "pen"}))
	require.Equal(t, map[string]int64{"ANN": 1, "BOB": 2}, counts())
	// A rename moves every referring row.
	require.NoError(t, cust.Pipe(ctx, "c2", "robert"))
	require.Equal(t, map[string]int64{"ANN": 1, "ROBERT": 2}, counts())
	// The right Filter rejects a customer: its rows leave the join.
	require.NoError(t, cust.Pipe(ctx, "c1", "banned"))
	require.Equal(t, map[string]int64{"ROBERT": 2}, counts())
	// The left Filter rejects an order: it leaves the join.
	require.NoError(t, in.Pipe(ctx, "o3", fkOrder{"c2", ""}))
	require.Equal(t, map[string]int64{"ROBERT": 1}, counts())
	recs, err := out.ReadKeyValues()
	require.NoError(t, err)
	require.Equal(t, []streamtest.KeyValue[string, int64]{
		{Key: "ANN", Value: 1}, {Key: "ANN", Value: 2}, {Key: "BOB", Value: 1},
		{Key: "ANN", Value: 1}, {Key: "BOB", Value: 2},
		{Key: "BOB", Value: 1}, {Key: "ROBERT", Value: 1}, {Key: "BOB", Value: 0}, {Key: "ROBERT", Value: 2},
		{Key: "ANN", Value: 0},
		{Key: "ROBERT", Value: 1},
	}, recs)
}

func TestJoinByForeignKeyBuildErrors(t *testing.T) {
	type (
		strT = table.Table[string, string]
		ordT = table.Table[string, fkOrder]
	)
	fk := func(o fkOrder) string { return o.Customer }
	joiner := func(o fkOrder, name string) string { return o.Item + name }
	orc := codec.JSON[fkOrder]()
	tests := []struct {
		name  string
		build func(b *stream.Builder)
		want  error
		msg   string
	}{
		{
			name: "nil functions",
			build: func(b *stream.Builder) {
				o, c := table.From(b, "orders", str, orc, "orders"), table.From(b, "customers", str, str, "customers")
				table.JoinByForeignKey(o, c, nil, joiner, "j1")
				table.LeftJoinByForeignKey[string, fkOrder, string, string, string](o, c, fk, nil, "j2")
			},
			want: stream.ErrNilFunc,
		},
		{
			name: "nil codecs",
			build: func(b *stream.Builder) {
				o, c := table.From(b, "orders", str, orc, "orders"), table.From[string, string](b, "customers", str, nil, "customers")
				table.JoinByForeignKey(o, c, fk, joiner, "j", stream.WithValueCodec[string](nil))
			},
			want: stream.ErrNilCodec,
			msg:  "right value codec",
		},
		{
			name: "tables of two builders",
			build: func(b *stream.Builder) {
				o := table.From(b, "orders", str, orc, "orders")
				c := table.From(stream.NewBuilder(), "customers", str, str, "customers")
				table.JoinByForeignKey(o, c, fk, joiner, "j")
			},
			want: stream.ErrForeignStream,
		},
		{
			name: "the zero table",
			build: func(b *stream.Builder) {
				table.JoinByForeignKey(table.From(b, "orders", str, orc, "orders"), strT{}, fk, joiner, "j")
				table.JoinByForeignKey(ordT{}, table.From(b, "customers", str, str, "customers"), fk, joiner, "j")
			},
			want: stream.ErrForeignStream,
		},
		{
			name: "a store name used twice",
			build: func(b *stream.Builder) {
				o, c := table.From(b, "orders", str, orc, "orders"), table.From(b, "customers", str, str, "customers")
				table.JoinByForeignKey(o, c, fk, joiner, "orders")
			},
			want: stream.ErrStoreConflict,
		},
		{
			name: "a subscription store name used twice",
			build: func(b *stream.Builder) {
				o, c := table.From(b, "orders", str, orc, "orders"), table.From(b, "customers", str, str, "j-subscription-store")
				table.JoinByForeignKey(o, c, fk, joiner, "j")
			},
			want: stream.ErrStoreConflict,
		},
		{
			name: "an invalid store name",
			build: func(b *stream.Builder) {
				o, c := table.From(b, "orders", str, orc, "orders"), table.From(b, "customers", str, str, "customers")
				table.JoinByForeignKey(o, c, fk, joiner, "no spaces")
			},
			want: stream.ErrInvalidOption,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := stream.NewBuilder()
			tc.build(b)
			_, err := b.Build()
			require.ErrorIs(t, err, tc.want)
			if tc.msg != "" {
				require.ErrorContains(t, err, tc.msg)
			}
		})
	}
}

// TestJoinByForeignKeyFailures checks that a panicking extractor or joiner
// fails the record with a *stream.NodeError naming the step, and that a
// corrupt internal record fails with a *codec.DecodeError.
func TestJoinByForeignKeyFailures(t *testing.T) {
	ctx := t.Context()
	build := func(t *testing.T, fk func(fkOrder) string, joiner func(fkOrder, string) string) *streamtest.Driver {
		b := stream.NewBuilder()
		orders := table.From(b, "orders", codec.String(), codec.JSON[fkOrder](), "orders")
		customers := table.From(b, "customers", codec.String(), codec.String(), "customers")
		table.JoinByForeignKey(orders, customers, fk, joiner,
			"enriched")
		topo, err := b.Build()
		require.NoError(t, err)
		d, err := streamtest.New(topo, streamtest.AppID("app"))
		require.NoError(t, err)
		t.Cleanup(func() { d.Close() })
		require.NoError(t, streamtest.Input(d, "customers", codec.String(), codec.String()).Pipe(ctx, "c1", "Ann"))
		return d
	}
	fk := func(o fkOrder) string { return o.Customer }
	joiner := func(o fkOrder, name string) string { return o.Item + " for " + name }
	boom := func(fkOrder) string { panic("boom") }
	for _, tc := range []struct {
		name   string
		fk     func(fkOrder) string
		joiner func(fkOrder, string) string
		step   string
	}{
		{"extractor", boom, joiner, `^fk-join-subscribe-\d+$`},
		{"joiner", fk, func(fkOrder, string) string { panic("boom") }, `^fk-join-\d+$`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := build(t, tc.fk, tc.joiner)
			err := streamtest.Input(d, "orders", codec.String(), codec.JSON[fkOrder]()).Pipe(ctx, "o1", fkOrder{"c1", "book"})
			var ne *stream.NodeError
			require.ErrorAs(t, err, &ne)
			require.Regexp(t, tc.step, ne.Node)
			var pe *stream.PanicError
			require.ErrorAs(t, err, &pe)
		})
	}
	t.Run("corrupt records", func(t *testing.T) {
		d := build(t, fk, joiner)
		for _, topic := range []string{"app-enriched-subscription-registration", "app-enriched-subscription-response"} {
			for _, value := range [][]byte{nil, {}, {1}, {9, 9, 9}, {1, 3, 1, 0}} {
				err := d.PipeRaw(ctx, broker.Record{Topic: topic, Partition: 0, Key: []byte("k"), Value: value})
				var de *codec.DecodeError
				require.ErrorAs(t, err, &de, "%s %v", topic, value)
				var ne *stream.NodeError
				require.ErrorAs(t, err, &ne)
			}
		}
	})
}

// BenchmarkJoinByForeignKey measures the foreign-key join in streamtest
// (in-memory stores, no broker): "left-update" is one order update that
// moves the order to another customer (subscribe, unsubscribe, response,
// result: four internal records and five store writes), "right-update"
// one customer rename re-emitting the 100 orders that refer to it.
func BenchmarkJoinByForeignKey(b *testing.B) {
	ctx := b.Context()
	setup := func(b *testing.B) (*streamtest.Driver, *streamtest.InputTopic[string, fkOrder], *streamtest.InputTopic[string, string]) {
		bld := stream.NewBuilder()
		orders := table.From(bld, "orders", codec.String(), codec.JSON[fkOrder](), "orders")
		customers := table.From(bld, "customers", codec.String(), codec.String(), "customers")
		table.JoinByForeignKey(orders, customers, func(o fkOrder) string { return o.Customer },
			func(o fkOrder, name string) string { return o.Item + " for " + name },
			"enriched")
		topo, err := bld.Build()
		require.NoError(b, err)
		d, err := streamtest.New(topo, streamtest.AppID("app"))
		require.NoError(b, err)
		b.Cleanup(func() { d.Close() })
		o := streamtest.Input(d, "orders", codec.String(), codec.JSON[fkOrder]())
		c := streamtest.Input(d, "customers", codec.String(), codec.String())
		for i := range 10 {
			require.NoError(b, c.Pipe(ctx, fmt.Sprint("c", i), fmt.Sprint("name", i)))
		}
		for i := range 100 {
			require.NoError(b, o.Pipe(ctx, fmt.Sprint("o", i), fkOrder{Customer: "c0", Item: "item"}))
		}
		return d, o, c
	}
	b.Run("left-update", func(b *testing.B) {
		_, o, _ := setup(b)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			if err := o.Pipe(ctx, "o1", fkOrder{Customer: fmt.Sprint("c", i%10), Item: "item"}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("right-update", func(b *testing.B) {
		_, _, c := setup(b)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i++
			if err := c.Pipe(ctx, "c0", fmt.Sprint("name", i)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestJoinByForeignKeySelf joins a table with itself (employees, key:
// employee, value: manager, with their manager's manager), directly and
// through a copy read back from a topic. Directly, the table's
// sub-topology reads the subscriptions and responses it writes.
func TestJoinByForeignKeySelf(t *testing.T) {
	for _, copied := range []bool{false, true} {
		t.Run(map[bool]string{false: "direct", true: "copy"}[copied], func(t *testing.T) {
			ctx := t.Context()
			b := stream.NewBuilder()
			people := table.From(b, "people", str, str, "people")
			managers := people
			if copied {
				people.ToStream().To("people-copy")
				managers = table.From(b, "people-copy", str, str, "managers")
			}
			table.LeftJoinByForeignKey(people, managers, func(manager string) string { return manager },
				func(manager, grand string, found bool) string {
					if !found {
						grand = "-"
					}
					return manager + "/" + grand
				}, "chain").ToStream().To("chains")
			topo, err := b.Build()
			require.NoError(t, err)
			d, err := streamtest.New(topo, streamtest.AppID("app"), streamtest.DefaultPartitions(2))
			require.NoError(t, err)
			defer d.Close()
			in := streamtest.Input(d, "people", str, str)
			for _, kv := range [][2]string{{"alice", "bob"}, {"bob", "carol"}, {"carol", "carol"}, {"bob", "dave"}} {
				require.NoError(t, in.Pipe(ctx, kv[0], kv[1]))
			}
			all, err := streamtest.Store(d, "chain", str, str).All()
			require.NoError(t, err)
			require.ElementsMatch(t, []streamtest.KeyValue[string, string]{
				{Key: "alice", Value: "bob/dave"}, {Key: "bob", Value: "dave/-"}, {Key: "carol", Value: "carol/carol"},
			}, all)
			// Dave arrives: bob's row (dave's subscriber) is re-joined.
			require.NoError(t, in.Pipe(ctx, "dave", "erin"))
			got, _, err := streamtest.Store(d, "chain", str, str).Get("bob")
			require.NoError(t, err)
			require.Equal(t, "dave/erin", got)
		})
	}
}

// TestJoinByForeignKeyFeedback joins orders with a table computed from the
// orders themselves (the number of orders per customer, a table GroupBy),
// so records go from the orders' sub-topology to the counts' and back
// through three internal topics.
func TestJoinByForeignKeyFeedback(t *testing.T) {
	ctx := t.Context()
	b := stream.NewBuilder()
	orders := table.From(b, "orders", str, codec.JSON[fkOrder](), "orders")
	perCustomer := table.GroupBy(orders, func(k string, o fkOrder) (string, string) { return o.Customer, k }).Count("per-customer")
	table.JoinByForeignKey(orders, perCustomer, func(o fkOrder) string { return o.Customer },
		func(o fkOrder, n int64) string { return fmt.Sprintf("%s: 1 of %d", o.Item, n) },
		"with-count")
	topo, err := b.Build()
	require.NoError(t, err)
	d, err := streamtest.New(topo, streamtest.AppID("app"), streamtest.Partitions("orders", 3))
	require.NoError(t, err)
	defer d.Close()
	in := streamtest.Input(d, "orders", str, codec.JSON[fkOrder]())
	for _, o := range []struct {
		k string
		v fkOrder
	}{{"o1", fkOrder{"c1", "book"}}, {"o2", fkOrder{"c1", "pen"}}, {"o3", fkOrder{"c2", "cup"}}, {"o2", fkOrder{"c2", "pen"}}} {
		require.NoError(t, in.Pipe(ctx, o.k, o.v))
	}
	require.NoError(t, in.PipeTombstone(ctx, "o3"))
	all, err := streamtest.Store(d, "with-count", str, str).All()
	require.NoError(t, err)
	require.ElementsMatch(t, []streamtest.KeyValue[string, string]{
		{Key: "o1", Value: "book: 1 of 1"}, {Key: "o2", Value: "pen: 1 of 1"},
	}, all)
}

// TestJoinByForeignKeyComposes uses a foreign-key join's result as a
// table: joined on its key with another table (JoinTables) and with a
// stream (LeftJoin), whose co-partitioning with the result (the left
// table's partitions) Build and streamtest accept.
func TestJoinByForeignKeyComposes(t *testing.T) {
	ctx := t.Context()
	b := stream.NewBuilder()
	orders := table.From(b, "orders", str, codec.JSON[fkOrder](), "orders")
	customers := table.From(b, "customers", str, str, "customers")
	enriched := table.JoinByForeignKey(orders, customers, func(o fkOrder) string { return o.Customer },
		func(o fkOrder, name string) string { return o.Item + " for " + name },
		"enriched")
	discounts := table.From(b, "discounts", str, i64, "discounts")
	table.JoinTables(enriched, discounts, func(_, e string, pct int64) string { return fmt.Sprintf("%s, %d%% off", e, pct) }).
		ToStream().To("discounted")
	shipments := stream.From(b, "shipments", str, str)
	table.LeftJoin(shipments, enriched, func(_, carrier, e string, found bool) string {
		if !found {
			return carrier + ": unknown order"
		}
		return carrier + ": " + e
	}).To("labels")
	topo, err := b.Build()
	require.NoError(t, err)
	d, err := streamtest.New(topo, streamtest.AppID("app"), streamtest.Partitions("customers", 3), streamtest.DefaultPartitions(2))
	require.NoError(t, err)
	defer d.Close()
	require.NoError(t, streamtest.Input(d, "customers", str, str).Pipe(ctx, "c1", "Ann"))
	require.NoError(t, streamtest.Input(d, "orders", str, codec.JSON[fkOrder]()).Pipe(ctx, "o1", fkOrder{"c1", "book"}))
	require.NoError(t, streamtest.Input(d, "discounts", str, i64).Pipe(ctx, "o1", 10))
	require.NoError(t, streamtest.Input(d, "customers", str, str).Pipe(ctx, "c1", "Anna"))
	ship := streamtest.Input(d, "shipments", str, str)
	require.NoError(t, ship.Pipe(ctx, "o1", "ups"))
	require.NoError(t, ship.Pipe(ctx, "o2", "dhl"))
	discounted, err := streamtest.Output(d, "discounted", str, str).ReadValues()
	require.NoError(t, err)
	require.Equal(t, []string{"book for Ann, 10% off", "book for Anna, 10% off"}, discounted)
	labels, err := streamtest.Output(d, "labels", str, str).ReadKeyValues()
	require.NoError(t, err)
	require.ElementsMatch(t, []streamtest.KeyValue[string, string]{{Key: "o1", Value: "ups: book for Anna"}, {Key: "o2", Value: "dhl: unknown order"}}, labels)
}
