package table_test

import (
	"strings"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
)

// The foreign-key join's script topology (testdata/scripts/fk-join.txt).
func init() {
	strs := kvText{strText, strText}
	// fk-join: orders (key: order, value: "<customer>:<item>") joined with
	// customers (key: customer, value: name) on the customer, inner into
	// the store and topic "inner", left into "left" ("-" for no customer).
	scriptTopologies["fk-join"] = scriptTopology{
		build: func(b *stream.Builder) {
			str := codec.String()
			orders := table.From(b, "orders", str, str, "orders")
			customers := table.From(b, "customers", str, str, "customers")
			customer := func(o string) string { c, _, _ := strings.Cut(o, ":"); return c }
			item := func(o string) string { _, it, _ := strings.Cut(o, ":"); return it }
			table.JoinByForeignKey(orders, customers, customer,
				func(o, name string) string { return item(o) + " for " + name },
				"inner").ToStream().To("inner")
			table.LeftJoinByForeignKey(orders, customers, customer,
				func(o, name string, found bool) string {
					if !found {
						name = "-"
					}
					return item(o) + " for " + name
				},
				"left").ToStream().To("left")
		},
		topics: map[string]kvText{"orders": strs, "customers": strs, "inner": strs, "left": strs},
		stores: map[string]kvText{"inner": strs, "left": strs, "orders": strs, "customers": strs},
	}
}
