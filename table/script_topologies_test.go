package table_test

import (
	"errors"
	"slices"
	"strings"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
)

// The topologies of the semantic scripts (see script_test.go).
func init() {
	strs := kvText{strText, strText}
	ints := kvText{strText, i64Text}

	// count: words (key: user, value: word) counted per word.
	scriptTopologies["count"] = scriptTopology{
		build: func(b *stream.Builder) {
			words := stream.From(b, "words", codec.String(), codec.String())
			byWord := stream.GroupBy(words, func(_, w string) string { return w }, stream.Named("by-word"))
			table.Count(byWord, "counts").ToStream().To("counts")
		},
		topics: map[string]kvText{"words": strs, "counts": ints},
		stores: map[string]kvText{"counts": ints},
	}

	// reduce: the largest amount per account.
	scriptTopologies["reduce"] = scriptTopology{
		build: func(b *stream.Builder) {
			amounts := stream.From(b, "amounts", codec.String(), codec.Int64())
			table.Reduce(stream.GroupByKey(amounts), func(a, v int64) int64 { return max(a, v) }, "largest").
				ToStream().To("largest")
		},
		topics: map[string]kvText{"amounts": ints, "largest": ints},
		stores: map[string]kvText{"largest": ints},
	}

	// aggregate: count and sum of the amounts per account.
	scriptTopologies["aggregate"] = scriptTopology{
		build: func(b *stream.Builder) {
			amounts := stream.From(b, "amounts", codec.String(), codec.Int64())
			table.Aggregate(stream.GroupByKey(amounts),
				func() total { return total{} },
				func(_ string, v int64, t total) total { return total{Orders: t.Orders + 1, Amount: t.Amount + v} },
				"totals", stream.WithValueCodec(codec.JSON[total]())).
				ToStream().To("totals")
		},
		topics: map[string]kvText{"amounts": ints, "totals": {strText, jsonText[total]()}},
		stores: map[string]kvText{"totals": {strText, jsonText[total]()}},
	}

	// table-group-by: users (key: user, value: region) counted per
	// region, and the users of each region listed (a reduce of their
	// names with an adder and a subtractor).
	scriptTopologies["table-group-by"] = scriptTopology{
		build: func(b *stream.Builder) {
			users := table.From(b, "users", codec.String(), codec.String(), "users")
			byRegion := table.GroupBy(users, func(user, region string) (string, string) { return region, user },
				stream.Named("by-region"))
			byRegion.Count("users-per-region").ToStream().To("users-per-region")
			byRegion.Reduce(addName, removeName, "names-per-region").ToStream().To("names-per-region")
		},
		topics: map[string]kvText{"users": strs, "users-per-region": ints, "names-per-region": strs,
			"app-by-region-repartition": {strText, rowChangeText(codec.String(), func(s string) string { return s })}},
		stores: map[string]kvText{"users": strs, "users-per-region": ints, "names-per-region": strs},
	}

	// table-group-by-aggregate: open orders (key: order id, value:
	// {"customer", "amount"}) totalled per customer.
	scriptTopologies["table-group-by-aggregate"] = scriptTopology{
		build: func(b *stream.Builder) {
			orders := table.From(b, "orders", codec.String(), codec.JSON[order](), "orders")
			byCustomer := table.GroupBy(orders, func(_ string, o order) (string, int64) { return o.Customer, o.Amount },
				stream.Named("by-customer"))
			table.AggregateTable(byCustomer,
				func() total { return total{} },
				func(_ string, amount int64, t total) total {
					return total{Orders: t.Orders + 1, Amount: t.Amount + amount}
				},
				func(_ string, amount int64, t total) total {
					return total{Orders: t.Orders - 1, Amount: t.Amount - amount}
				},
				"totals", stream.WithValueCodec(codec.JSON[total]())).
				ToStream().To("totals")
		},
		topics: map[string]kvText{"orders": {strText, jsonText[order]()}, "totals": {strText, jsonText[total]()}},
		stores: map[string]kvText{"totals": {strText, jsonText[total]()}},
	}

	// table-joins: names (key: id, value: name) joined with balances
	// (key: id, value: balance) three ways; absent sides print as "-".
	scriptTopologies["table-joins"] = scriptTopology{
		build: func(b *stream.Builder) {
			names := table.From(b, "names", codec.String(), codec.String(), "names")
			balances := table.From(b, "balances", codec.String(), codec.Int64(), "balances")
			table.JoinTables(names, balances, func(_ string, n string, b int64) string {
				return n + "|" + showInt(b, true)
			}).ToStream().To("inner")
			table.LeftJoinTables(names, balances, func(_ string, n string, b int64, found bool) string {
				return n + "|" + showInt(b, found)
			}).ToStream().To("left")
			outer := table.OuterJoinTables(names, balances, func(_ string, n string, hasN bool, b int64, hasB bool) string {
				return show(n, hasN) + "|" + showInt(b, hasB)
			})
			table.Materialize(outer, "outer").ToStream().To("outer")
		},
		topics: map[string]kvText{"names": strs, "balances": ints, "inner": strs, "left": strs, "outer": strs},
		stores: map[string]kvText{"names": strs, "balances": ints, "outer": strs},
	}

	// stream-table-join: orders (key: customer, value: item) enriched
	// with the customers table (key: customer, value: name).
	scriptTopologies["stream-table-join"] = scriptTopology{
		build: func(b *stream.Builder) {
			customers := table.From(b, "customers", codec.String(), codec.String(), "customers")
			orders := stream.From(b, "orders", codec.String(), codec.String())
			table.Join(orders, customers, func(_ string, item, name string) string { return item + " for " + name }).
				To("enriched")
			table.LeftJoin(orders, customers, func(_ string, item, name string, found bool) string {
				return item + " for " + show(name, found)
			}).To("enriched-left")
		},
		topics: map[string]kvText{"customers": strs, "orders": strs, "enriched": strs, "enriched-left": strs},
		stores: map[string]kvText{"customers": strs},
	}
}

// addName and removeName keep a sorted, comma-separated list of names.
func addName(list, name string) string {
	names := splitNames(list)
	names = append(names, name)
	slices.Sort(names)
	return strings.Join(names, ",")
}

func removeName(list, name string) string {
	names := splitNames(list)
	if i := slices.Index(names, name); i >= 0 {
		names = slices.Delete(names, i, i+1)
	}
	return strings.Join(names, ",")
}

func splitNames(list string) []string {
	if list == "" {
		return nil
	}
	return strings.Split(list, ",")
}

// rowChangeText is the text form of a table GroupBy's repartition records
// ("-<old> +<new>"); scripts only read them.
func rowChangeText[V any](vc codec.Codec[V], show func(V) string) text {
	return text{
		parse:  func(string) ([]byte, error) { return nil, errors.New("repartition records are not piped") },
		format: func(b []byte) (string, error) { return table.RowChangeText(vc, show, b) },
	}
}
