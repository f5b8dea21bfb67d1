package table_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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

// TestJoinRuntimeRestore runs a customers table and an orders join on the
// embedded broker in two runs: the first reads the customers (updates and
// deletes), the second, after the state directory is deleted, rebuilds
// the table from its changelog and joins the orders with it.
func TestJoinRuntimeRestore(t *testing.T) {
	const customers = 50
	ctx := t.Context()
	b, err := embedded.Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	for _, topic := range []string{"customers", "orders", "shipments", "customer-changes"} {
		require.NoError(t, b.CreateTopic(ctx, topic, broker.TopicConfig{Partitions: 3}))
	}
	bld := stream.NewBuilder()
	cust := table.From(bld, "customers", codec.String(), codec.String(), "customers")
	cust.ToStream().To("customer-changes")
	orders := stream.From(bld, "orders", codec.String(), codec.String())
	table.LeftJoin(orders, cust, func(c, item, city string, found bool) string {
		if !found {
			return item + "@none"
		}
		return item + "@" + city
	}).To("shipments")
	topo, err := bld.Build()
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), "state")

	run := func(await string, n int) {
		t.Helper()
		app, err := duality.New("shop", topo, b, duality.CommitInterval(5*time.Millisecond), duality.StateDir(dir))
		require.NoError(t, err)
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- app.Run(runCtx) }()
		awaitCount(t, b, await, n)
		stop()
		require.NoError(t, <-done)
	}

	// Customer i lives in city i, then moves to city i+100; every third
	// customer is deleted afterwards.
	var recs []broker.Record
	want := map[string]string{}
	for _, move := range []int{0, 100} {
		for i := range customers {
			k := fmt.Sprint("c", i)
			recs = append(recs, broker.Record{Topic: "customers", Partition: broker.PartitionByKey, Key: []byte(k), Value: fmt.Append(nil, "city", i+move)})
			want[k] = fmt.Sprint("o-", k, "@city", i+move)
		}
	}
	for i := 0; i < customers; i += 3 {
		k := fmt.Sprint("c", i)
		recs = append(recs, broker.Record{Topic: "customers", Partition: broker.PartitionByKey, Key: []byte(k)})
		want[k] = fmt.Sprint("o-", k, "@none")
	}
	require.NoError(t, b.Produce(ctx, recs))
	run("customer-changes", len(recs))

	require.NoError(t, os.RemoveAll(dir))
	recs = recs[:0]
	for i := range customers {
		k := fmt.Sprint("c", i)
		recs = append(recs, broker.Record{Topic: "orders", Partition: broker.PartitionByKey, Key: []byte(k), Value: []byte("o-" + k)})
	}
	require.NoError(t, b.Produce(ctx, recs))
	run("shipments", customers)

	got := map[string]string{}
	for _, r := range readAll(t, b, "shipments") {
		got[string(r.Key)] = string(r.Value)
	}
	require.Equal(t, want, got)
	// Deletes reached the change stream as tombstones.
	var tombstones []string
	for _, r := range readAll(t, b, "customer-changes") {
		if r.Value == nil {
			tombstones = append(tombstones, string(r.Key))
		}
	}
	require.Len(t, tombstones, (customers+2)/3)
	require.True(t, slices.Contains(tombstones, "c0"))
}
