package table_test

import (
	"context"
	"fmt"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
	"github.com/duality-streams/duality/table"
)

// Users per region: a table GroupBy with Count retracts a user from the
// old region when the user moves, and from the region when the user is
// deleted.
func ExampleGroupBy() {
	b := stream.NewBuilder()
	users := table.From(b, "users", codec.String(), codec.String(), "users") // user -> region
	byRegion := table.GroupBy(users, func(user, region string) (string, string) { return region, user },
		stream.Named("by-region"))
	byRegion.Count("users-per-region").ToStream().To("region-counts")
	topo, err := b.Build()
	if err != nil {
		fmt.Println(err)
		return
	}

	d, err := streamtest.New(topo, streamtest.AppID("crm"), streamtest.DefaultPartitions(2))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()
	ctx := context.Background()
	in := streamtest.Input(d, "users", codec.String(), codec.String())
	for _, err := range []error{
		in.Pipe(ctx, "ann", "eu"),
		in.Pipe(ctx, "bob", "eu"),
		in.Pipe(ctx, "ann", "us"), // moves: eu -1, us +1
		in.PipeTombstone(ctx, "bob"),
	} {
		if err != nil {
			fmt.Println(err)
			return
		}
	}
	counts := streamtest.Store(d, "users-per-region", codec.String(), codec.Int64())
	for _, region := range []string{"eu", "us"} {
		n, _, err := counts.Get(region)
		fmt.Println(region, n, err)
	}
	// Output:
	// eu 0 <nil>
	// us 1 <nil>
}

// Customers joined with their accounts on the customer id: the left join
// keeps customers without an account, and follows updates and deletes of
// both tables.
func ExampleLeftJoinTables() {
	b := stream.NewBuilder()
	customers := table.From(b, "customers", codec.String(), codec.String(), "customers") // id -> name
	balances := table.From(b, "balances", codec.String(), codec.Int64(), "balances")     // id -> balance
	joined := table.LeftJoinTables(customers, balances, func(_ string, name string, balance int64, found bool) string {
		if !found {
			return name + ": no account"
		}
		return fmt.Sprintf("%s: %d", name, balance)
	})
	joined.ToStream().To("customer-balances")
	topo, err := b.Build()
	if err != nil {
		fmt.Println(err)
		return
	}

	d, err := streamtest.New(topo, streamtest.AppID("bank"), streamtest.DefaultPartitions(2))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()
	ctx := context.Background()
	cust := streamtest.Input(d, "customers", codec.String(), codec.String())
	bal := streamtest.Input(d, "balances", codec.String(), codec.Int64())
	for _, err := range []error{
		cust.Pipe(ctx, "c1", "ann"),
		bal.Pipe(ctx, "c1", 100),
		bal.Pipe(ctx, "c1", 80),
		bal.PipeTombstone(ctx, "c1"),
		cust.PipeTombstone(ctx, "c1"),
	} {
		if err != nil {
			fmt.Println(err)
			return
		}
	}
	changes, err := streamtest.Output(d, "customer-balances", codec.String(), codec.String()).ReadAll()
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
	// Output:
	// c1 = ann: no account
	// c1 = ann: 100
	// c1 = ann: 80
	// c1 = ann: no account
	// c1 deleted
}
