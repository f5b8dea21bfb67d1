// Package tablecore is the representation of a table handle and the
// protocol by which table steps pass changes, shared by package table,
// which defines its handle over it (type Table[K, V any]
// tablecore.Table[K, V]), package window, whose aggregations return such
// tables, and the root package, whose queries read a table's store.
//
// # Tables
//
// A [Table] is the output of one node (its changes) and a [Lookup]: the
// per-task reader of the table's current values, which joins use. A table
// made by [Stored] holds its rows in a store of its own (a table from a
// topic, an aggregation, Materialize): the store holds exactly its rows,
// encoded with its codecs, so it can be queried. A table made by
// [Derived] (Filter, MapValues, a table-table join) computes its rows
// from the stores of the tables it derives from.
//
// # Changes
//
// A table's node produces one change per update of a key (Kafka Streams'
// Change{newValue, oldValue} with sendOldValues): the key, the row's old
// value (hasOld false when the key had no row before) and its new value
// (hasNew false when the update deletes the row). The node's children
// come in two kinds, told apart once per task when the node instantiates
// them with [NewOutput]:
//
//   - stream children (the steps of t.ToStream(), the bridge of a
//     stream-table join) take func(context.Context, *stream.RecordContext,
//     K, V) error: they get the new value, or V's zero value with
//     rc.Tombstone set when !hasNew. So ToStream without options adds no
//     node.
//   - change children (Filter, MapValues, Materialize, table GroupBy,
//     table-table and foreign-key joins, ToStream with EmitPerCommit) are
//     nodes whose Instantiate returns a *[ChangeInput]: they get (k, old,
//     hasOld, new, hasNew), with rc.Tombstone == !hasNew.
//
// Old values are computed only when a change child asks for them
// ([ChangeInput].WantsOld, reported by [Output.WantsOld]): a table from a
// topic then reads its store before writing (one Get per record); an
// aggregation has the old aggregate anyway; Filter and MapValues derive
// the old value from their parent's old value. When no child wants them,
// hasOld is false and old is the zero value: a child that did not ask
// must not read them.
//
// A change may have neither an old nor a new value (a delete of a key the
// table did not hold, or an update that a Filter rejects both before and
// after): change children treat it as a no-op for their state, and may
// forward a tombstone (stream children of a Filter get one, as Kafka
// Streams emits for a filter that is not materialised).
//
// To consume a table's changes, add a node with [Table.AttachChanges] or
// [Table.Attach]; to produce them (a new kind of table), instantiate the
// children with [NewOutput] and return the new Table with a lookup.
package tablecore
