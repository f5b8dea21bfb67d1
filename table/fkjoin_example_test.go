package table_test

import (
	"context"
	"fmt"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
	"github.com/duality-streams/duality/table"
)

// Orders refer to customers by id; the foreign-key join keeps every order
// with its customer's current name, through customer renames and orders
// moving to another customer. The two tables have different partition
// counts.
func ExampleJoinByForeignKey() {
	type Order struct {
		Customer string
		Item     string
	}
	b := stream.NewBuilder()
	orders := table.From(b, "orders", codec.String(), codec.JSON[Order](), "orders")
	customers := table.From(b, "customers", codec.String(), codec.String(), "customers")
	shipping := table.JoinByForeignKey(orders, customers,
		func(o Order) string { return o.Customer },
		func(o Order, name string) string { return o.Item + " for " + name },
		"shipping")
	shipping.ToStream().To("shipping-updates")
	topo, err := b.Build()
	if err != nil {
		fmt.Println(err)
		return
	}

	d, err := streamtest.New(topo, streamtest.AppID("shop"),
		streamtest.Partitions("orders", 4), streamtest.Partitions("customers", 2), streamtest.Partitions("shipping-updates", 4))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()
	ctx := context.Background()
	o := streamtest.Input(d, "orders", codec.String(), codec.JSON[Order]())
	c := streamtest.Input(d, "customers", codec.String(), codec.String())
	updates := streamtest.Output(d, "shipping-updates", codec.String(), codec.String())
	show := func(what string, err error) {
		if err != nil {
			fmt.Println(err)
			return
		}
		recs, err := updates.ReadAll()
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Print(what + ":")
		for _, r := range recs {
			if r.Tombstone {
				fmt.Printf(" [%s deleted]", r.Key)
			} else {
				fmt.Printf(" [%s: %s]", r.Key, r.Value)
			}
		}
		fmt.Println()
	}
	show("customer c1", c.Pipe(ctx, "c1", "Ann"))
	show("order o1 by c1", o.Pipe(ctx, "o1", Order{Customer: "c1", Item: "book"}))
	show("order o2 by c2", o.Pipe(ctx, "o2", Order{Customer: "c2", Item: "pen"}))
	show("customer c2", c.Pipe(ctx, "c2", "Bob"))
	show("c1 renamed", c.Pipe(ctx, "c1", "Anna"))
	show("o1 moves to c2", o.Pipe(ctx, "o1", Order{Customer: "c2", Item: "book"}))
	show("c2 deleted", c.PipeTombstone(ctx, "c2"))
	// Output:
	// customer c1:
	// order o1 by c1: [o1: book for Ann]
	// order o2 by c2:
	// customer c2: [o2: pen for Bob]
	// c1 renamed: [o1: book for Anna]
	// o1 moves to c2: [o1: book for Bob]
	// c2 deleted: [o1 deleted] [o2 deleted]
}
