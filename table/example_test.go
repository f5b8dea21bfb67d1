package table_test

import (
	"context"
	"fmt"
	"iter"
	"strings"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
	"github.com/duality-streams/duality/table"
)

// Word count: lines are split into words, grouped by word through a
// repartition topic, and counted into the store "word-counts".
func Example() {
	b := stream.NewBuilder()
	lines := stream.From(b, "text-lines", codec.String(), codec.String())
	words := stream.FlatMapValues(lines, func(line string) iter.Seq[string] {
		return strings.FieldsSeq(strings.ToLower(line))
	})
	byWord := stream.GroupBy(words, func(_, w string) string { return w }, stream.Named("by-word"))
	counts := table.Count(byWord, "word-counts")
	counts.ToStream().To("word-count-updates")
	topo, err := b.Build()
	if err != nil {
		fmt.Println(err)
		return
	}

	d, err := streamtest.New(topo, streamtest.AppID("wc"), streamtest.DefaultPartitions(2))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()
	ctx := context.Background()
	in := streamtest.Input(d, "text-lines", codec.String(), codec.String())
	for i, line := range []string{"the cat sat", "The dog sat", "a cat"} {
		if err := in.Pipe(ctx, fmt.Sprint("line-", i), line); err != nil {
			fmt.Println(err)
			return
		}
	}

	store := streamtest.Store(d, "word-counts", codec.String(), codec.Int64())
	var state []string
	for _, w := range []string{"the", "cat", "sat", "dog", "a"} {
		n, _, err := store.Get(w)
		if err != nil {
			fmt.Println(err)
			return
		}
		state = append(state, fmt.Sprintf("%s=%d", w, n))
	}
	fmt.Println(strings.Join(state, " "))
	updates, err := streamtest.Output(d, "word-count-updates", codec.String(), codec.Int64()).ReadKeyValues()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("updates:", updates)
	// Output:
	// the=2 cat=2 sat=2 dog=1 a=1
	// updates: [{the 1} {cat 1} {sat 1} {the 2} {dog 1} {sat 2} {a 1} {cat 2}]
}

// Orders are enriched with the customer's city by a stream-table join.
// Customers are a table read from a compacted topic: an update replaces a
// customer's city and a tombstone deletes the customer.
func ExampleLeftJoin() {
	b := stream.NewBuilder()
	customers := table.From(b, "customers", codec.String(), codec.String(), "customers")
	orders := stream.From(b, "orders", codec.String(), codec.String())
	table.LeftJoin(orders, customers, func(customer, item, city string, found bool) string {
		if !found {
			city = "unknown city"
		}
		return item + " to " + city
	}).To("shipments")
	customers.ToStream().To("customer-changes")
	topo, err := b.Build()
	if err != nil {
		fmt.Println(err)
		return
	}

	d, err := streamtest.New(topo, streamtest.AppID("shop"), streamtest.DefaultPartitions(2))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()
	ctx := context.Background()
	cust := streamtest.Input(d, "customers", codec.String(), codec.String())
	ord := streamtest.Input(d, "orders", codec.String(), codec.String())
	for _, err := range []error{
		cust.Pipe(ctx, "ann", "Paris"),
		ord.Pipe(ctx, "ann", "book"),
		cust.Pipe(ctx, "ann", "Berlin"),
		ord.Pipe(ctx, "ann", "pen"),
		cust.PipeTombstone(ctx, "ann"),
		ord.Pipe(ctx, "ann", "cup"),
	} {
		if err != nil {
			fmt.Println(err)
			return
		}
	}

	shipments, err := streamtest.Output(d, "shipments", codec.String(), codec.String()).ReadValues()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(strings.Join(shipments, "; "))
	changes, err := streamtest.Output(d, "customer-changes", codec.String(), codec.String()).ReadAll()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, c := range changes {
		if c.Tombstone {
			fmt.Println(c.Key, "deleted")
			continue
		}
		fmt.Println(c.Key, "=", c.Value)
	}
	_, found, err := streamtest.Store(d, "customers", codec.String(), codec.String()).Get("ann")
	fmt.Println("ann in store:", found, err)
	// Output:
	// book to Paris; pen to Berlin; cup to unknown city
	// ann = Paris
	// ann = Berlin
	// ann deleted
	// ann in store: false <nil>
}
