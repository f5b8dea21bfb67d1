package table_test

import (
	"fmt"
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
			codec.String(), codec.JSON[fkOrder](), codec.String(), codec.String(), codec.String(), "enriched")
	} else {
		enriched = table.JoinByForeignKey(orders, customers, customer,
			func(o fkOrder, name string) string { return o.Item + " for " + name },
			codec.String(), codec.JSON[fkOrder](), codec.String(), codec.String(), codec.String(), "enriched")
	}
	enriched.ToStream().To("enriched-changes", codec.String(), codec.String())
	topo, err := b.Build()
	require.NoError(t, err)
	return topo
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
			want := []streamtest.KeyValue[string, string]{{Key: "o1", Value: "book for nobody"}, {Key: "o2", Value: "pad for A."}, {Key: "o3", Value: "mug for A."}}
			if !left {
				want = want[1:]
			}
			require.ElementsMatch(t, want, all)
			// The subscription store holds one subscription per order.
			n := 0
			seq, errf := d.StoreAll("enriched-subscription-store", 0)
			for range seq {
				n++
			}
			require.NoError(t, errf())
			require.Equal(t, 3, n)
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
