// Package table turns streams into tables: tables read from topics,
// aggregations that keep the newest result per key in a state store, the
// stream of a table's changes, table GroupBy with retraction, and joins
// (stream-table, table-table on the primary key, and by foreign key).
//
// A stream is a log read as inserts; a table is the same log read as
// upserts. [Count], [Reduce] and [Aggregate] fold a stream grouped by key
// (stream.GroupByKey, stream.GroupBy) into a [Table] whose state lives in
// the runtime's state stores and is logged to a compacted changelog topic,
// so it is rebuilt exactly after a restart or a move to another instance.
//
//	b := stream.NewBuilder()
//	lines := stream.From(b, "text-lines", codec.String(), codec.String())
//	words := stream.FlatMapValues(lines, func(line string) iter.Seq[string] {
//		return strings.FieldsSeq(strings.ToLower(line))
//	})
//	byWord := stream.GroupBy(words, func(_, w string) string { return w })
//	table.Count(byWord, "word-counts").ToStream().To("word-counts")
//
// # Tables from topics
//
// [From] reads a topic as a table (Kafka Streams' builder.table): the
// newest value per key wins and a record with a nil value (a tombstone)
// deletes its key. The table is materialised in its own store and logged
// to a changelog like an aggregation (Kafka Streams can reuse a compacted
// source topic as the changelog; this package does not yet). Like Kafka
// Streams' source tables (emit on change, KIP-557), it drops a record that
// changes nothing: an upsert equal to the stored value and a tombstone of
// a key it does not hold reach neither the store, the changelog nor any
// step downstream.
//
// # Filter and MapValues
//
// [Table.Filter], [Table.FilterNot] and [MapValues] derive tables that are
// not materialised: a join reads the parent's store and applies the
// predicate or function. Deletes propagate: a delete stays a delete (fn is
// not called for it), and an update the predicate rejects is emitted as a
// tombstone, because the row may have been in the filtered table before.
// As in Kafka Streams for a filter on a table that is not materialised,
// a tombstone is emitted for every rejected update, even for a key that
// was never in the filtered table. [Materialize] keeps a derived table
// (a Filter, a MapValues, a table-table join) in a store of its own, with
// a changelog, so it can be queried.
//
// # Old values
//
// Between table steps a change carries the row's old value as well as its
// new one (Kafka Streams' Change{newValue, oldValue} with sendOldValues):
// a table from a topic reads the old row from its store before writing
// (only when a step below needs it: table GroupBy, table-table and
// foreign-key joins, Materialize), an aggregation has the old aggregate
// anyway, and
// Filter and MapValues derive the old value from their parent's. This is
// what lets a table GroupBy retract a row from its old group and a join
// emit a tombstone only for a joined row that existed. [Table.ToStream]
// emits new values only: an update as the new value, a delete as a
// tombstone.
//
// # Stream-table joins
//
// [Join] and [LeftJoin] join each stream record with the table's current
// value for its key, read from the table's store when the record is
// processed; table updates emit nothing. Join drops records whose key has
// no value; LeftJoin's joiner gets found false and VT's zero value.
//
// The table's store is local to a task, so the stream and the table must
// be co-partitioned: the join puts the stream's steps into the table's
// sub-topology, whose tasks read partition p of both topics, so the topics
// must have the same partition count (the runtime refuses to run a
// sub-topology that keeps state and whose source topics differ, with
// [stream.ErrNotCoPartitioned], and so does streamtest, which runs the
// runtime). Build fails with [stream.ErrNotCoPartitioned] for
// a stream whose keys may have changed since it was read (Map, SelectKey,
// FlatMap, Process) and for a stream computed in a sub-topology that
// feeds the table's through an internal topic; in both cases call
// Repartition on the stream before the join. Unlike Kafka Streams, the
// join does not repartition automatically: a repartition topic is a
// choice the topology should show.
//
// # Table-table joins
//
// [JoinTables], [LeftJoinTables] and [OuterJoinTables] join two tables on
// their primary key (Kafka Streams' KTable-KTable joins). The result is a
// [Table] updated whenever either side changes: the changed row is joined
// with the other side's current value. A delete on one side deletes the
// joined row of an inner join (a tombstone, emitted only if the joined row
// existed), and recomputes the row of a left join (a delete on the right)
// or an outer join with the side absent; left and outer joiners get found
// flags and zero values for an absent side, and an outer join has a row
// while either side has one. The result is not materialised (reading it
// reads both tables' stores and calls the joiner) unless wrapped in
// [Materialize]. Both tables are read in one task, so they must be
// co-partitioned: the join puts them in one sub-topology, whose source
// topics must have the same partition count (the runtime and streamtest
// refuse it otherwise), and Build fails with [stream.ErrNotCoPartitioned] when
// one table is computed in a sub-topology that feeds the other's.
//
// # Foreign-key joins
//
// [JoinByForeignKey] and [LeftJoinByForeignKey] join each row of a left
// table with the row of a right table whose key is a foreign key
// extracted from the left row's value (Kafka Streams' foreign-key
// KTable joins, KIP-213): orders with their customer, keyed by order. The
// result is a table keyed by the left keys, materialised in the join's
// store, and updated from both sides: a left update is joined with the
// right row of its (possibly new) foreign key, a right update re-emits
// every left row that refers to it, and deletes on either side emit
// tombstones (inner) or rows without a right value (left). The two tables
// need not be co-partitioned; the join works the way Kafka Streams' does:
//
//   - the left side sends, for every left change, a subscription to the
//     internal topic "<store>-subscription-registration", keyed by the
//     foreign key (encoded with the right key codec) and partitioned like
//     the right table's topic, carrying the left key, the left task's
//     partition, a 128-bit hash of the left value and an instruction. A
//     foreign-key change sends an unsubscribe to the old key (which is why
//     left changes carry old values) and a subscribe to the new one; a
//     left delete sends an unsubscribe that asks for a response;
//   - the right side records subscriptions in the store
//     "<store>-subscription-store" (keys: foreign key, then left key, so
//     the subscribers of one foreign key are one prefix scan; logged to a
//     changelog and restored like every store) and answers a subscription
//     with the right row's current value; a right change scans the
//     foreign key's subscribers and answers each of them. Answers go to
//     "<store>-subscription-response", keyed by left key, to the
//     partition of the left task that subscribed, which has the left
//     table's partition count;
//   - the left side applies an answer only if the hash it carries is the
//     hash of the left row's current value (or both are absent, for a
//     delete): an answer computed for an older value is dropped, so a row
//     updated twice before the first answer returns is joined once, with
//     its newest value, and never with the old foreign key's row. It then
//     computes the result from the current left value and the answer's
//     right value, stores it and emits it.
//
// Kafka Streams' rules decide which changes emit: a new left row of an
// inner join whose foreign key right lacks emits nothing; a later update
// of it emits its result, or a tombstone that retracts the old result
// when it moves to a missing key; a left join always emits. A right
// delete emits a tombstone for each inner-joined row, or the row without
// a right value for a left join. Because the result is materialised, a
// tombstone is emitted only for a result row that existed (Kafka Streams'
// materialised result table drops a null that replaces a null), and
// deleting a key a table does not hold emits nothing.
//
// A table may be joined with itself (employees with their manager's row):
// its sub-topology then reads the subscriptions and responses it writes,
// the one case where a sub-topology reads its own output.
//
// Choices that differ from Kafka Streams: the extractor returns a KO, not
// a nullable one, so a left row without a foreign key needs a key the
// right table never holds (its subscription is kept like any other). The
// join encodes with the tables' codecs; the hash check requires a
// deterministic left value codec (codec.JSON and codec.Msgpack are).
//
// # Table GroupBy
//
// [GroupBy] re-groups a table by a key computed from each row, and
// [GroupedTable.Count], [GroupedTable.Reduce] and [AggregateTable]
// aggregate the groups with an adder and a subtractor (Kafka Streams'
// KGroupedTable), so a row that moves to another group, or is deleted, is
// retracted from its old group: counting users per region, a user who
// changes region is subtracted from the old region and added to the new
// one. Each row change goes through an automatic repartition topic as
// records keyed by group: one record carrying the subtraction and the
// addition when the group key is unchanged, and two records, a
// subtraction keyed by the old group and an addition keyed by the new
// group, when it changes, so each lands in the partition (and task) of
// its group, wherever the two groups live. A delete is one subtraction.
// The subtraction is applied first. A group whose rows all left keeps its
// aggregate (a count of 0), as in Kafka Streams.
//
// # Global tables
//
// [Global] reads a topic as a [GlobalTable] (Kafka Streams' GlobalKTable):
// every instance holds all its partitions in a global store, bootstrapped
// before any task processes input and kept up to date while the app runs;
// the topic is the store's changelog. [JoinGlobal] and [LeftJoinGlobal]
// join each stream record with the value at a key computed from the
// record (a key mapper), so no co-partitioning or repartitioning is
// needed. A global store may lag its topic slightly: a stream record is
// not guaranteed to see an update appended just before it.
//
// # Grouping
//
// An aggregation needs all records of a key in one task. stream.GroupBy
// re-keys records and always writes them through an automatic repartition
// topic; stream.GroupByKey adds one only if a step since the last source
// or repartition may have changed keys (Map, SelectKey, FlatMap, Process).
// The Grouped value carries the key and value codecs the aggregation
// stores with.
//
// # Codecs
//
// A [Table] carries its key and value codecs ([Table.KeyCodec],
// [Table.ValueCodec]), as a stream does: a table from [From] has the
// codecs given there, an aggregation the grouping's key codec and the
// codec of its values (codec.Int64 for counts, the grouping's value codec
// for Reduce, codec.For of the aggregate type for [Aggregate] and
// [AggregateTable]), and the steps that derive tables keep them or use
// codec.For of a new type (MapValues, joins, GroupBy). Stores,
// repartition topics and ToStream().To encode with them;
// stream.WithKeyCodec and stream.WithValueCodec override them where a
// step takes them (each step's documentation says which).
//
// # State and changelogs
//
// Each aggregation owns the state store named by its store argument: keys
// are the grouped keys encoded with the Grouped key codec, values the
// aggregates encoded with the table's value codec (see Codecs). Every
// update is written to the store,
// and each commit of the task logs the newest value of every key written
// since the previous commit to "<app-id>-<store>-changelog", as for
// stream.Process stores; a store name must form a valid topic name
// and belong to one aggregation. Process steps of the same sub-topology
// may read the store by declaring it with stream.WithStores.
//
// # Queries
//
// A table with a store of its own (from [From], an aggregation,
// [Materialize], a foreign-key join) is read while the app runs with
// duality.QueryTable(app, t), which knows the store's name and the
// table's codecs (or duality.Query by store name). A table that Filter,
// MapValues or a table-table join derives has no store: Materialize it to
// query it.
//
// # Windowed tables
//
// The windowed aggregations of package window (window.Count, Reduce,
// Aggregate, AggregateSessions) return tables of this package keyed by
// window.Windowed keys, kept in windowed stores: every step of this
// package takes them (see package window, "Windowed tables", for what
// their changes and lookups are, also with final results only). Their
// stores are queried with duality.QueryWindows; a Materialize of one is a
// key-value store of windowed keys, queried with duality.QueryTable.
//
// # Updates and dropped records
//
// [Table.ToStream] emits one record per update: the key and its new
// aggregate, so a key updated n times emits n records (Kafka Streams with
// caching disabled). ToStream with [EmitPerCommit] emits only the newest
// change of each key at each commit of the task (Kafka Streams with
// caching enabled, which is its default; here it is chosen per
// ToStream): a hot key costs one output record per commit interval. It
// deduplicates only the change stream; the runtime's record cache
// (duality.CacheMaxBytes) deduplicates store writes and changelog
// records, and steps that consume the table as a table see every update.
// As in
// Kafka Streams' KGroupedStream aggregations, records whose key is absent
// (read as a nil key and not re-keyed) and records with a nil value
// (tombstones) are skipped: they change nothing and are logged at Debug
// with the node's logger.
//
// # Options
//
// Every step takes options of type stream.Option: stream.Named names it
// (each step's documentation gives its default name, and for steps made
// of several steps the names of the parts), and a step reports at Build
// an option it does not take (stream.ErrInvalidOption). [From] also takes
// stream.WithTimestamp, [GroupBy] stream.Partitions, and
// [Table.ToStream] [EmitPerCommit]. [Global] takes stream.Named only,
// which names the global table in the topology's description (it is no
// step of a sub-topology).
//
// # Errors
//
// Wiring mistakes are reported by stream.Builder.Build with the stream
// package's error kinds: a store name used twice (stream.ErrStoreConflict),
// an invalid store name (stream.ErrInvalidOption), nil functions
// (stream.ErrNilFunc), nil codecs (stream.ErrNilCodec), handles of two
// builders (stream.ErrForeignStream) and joins whose inputs are not
// co-partitioned ([stream.ErrNotCoPartitioned]). At run time a failing
// codec or store fails the record with a *stream.NodeError.
package table
