package streamtest_test

import (
	"context"
	"fmt"
	"time"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
)

type order struct {
	ID     string  `json:"id"`
	Amount float64 `json:"amount"`
}

// Test a topology that keeps big orders, re-keyed by customer through a
// repartition topic, on four partitions.
func Example() {
	b := stream.NewBuilder()
	orders := stream.From(b, "orders", codec.String(), codec.JSON[order]())
	big := orders.Filter(func(_ string, o order) bool { return o.Amount >= 100 })
	byCustomer := stream.SelectKey(big, func(customer string, _ order) string { return customer }).
		Repartition(stream.Named("by-customer"))
	stream.MapValues(byCustomer, func(o order) string { return o.ID }).
		To("big-order-ids")
	topo, err := b.Build()
	if err != nil {
		fmt.Println(err)
		return
	}

	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d, err := streamtest.New(topo, streamtest.DefaultPartitions(4), streamtest.StartTime(start))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()
	ctx := context.Background()
	in := streamtest.Input(d, "orders", codec.String(), codec.JSON[order]())
	_ = in.Pipe(ctx, "alice", order{ID: "o-1", Amount: 250})
	_ = in.Pipe(ctx, "bob", order{ID: "o-2", Amount: 20})
	d.Advance(time.Minute)
	_ = in.Pipe(ctx, "carol", order{ID: "o-3", Amount: 120})

	recs, err := streamtest.Output(d, "big-order-ids", codec.String(), codec.String()).ReadAll()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range recs {
		fmt.Printf("%s %s partition=%d at %s\n", r.Key, r.Value, r.Partition, r.Timestamp.Format(time.TimeOnly))
	}
	fmt.Println(len(d.Records("test-by-customer-repartition")), "records went through the repartition topic")
	// Output:
	// alice o-1 partition=1 at 00:00:00
	// carol o-3 partition=2 at 00:01:00
	// 2 records went through the repartition topic
}
