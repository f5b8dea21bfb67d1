// Package stream is Duality's typed DSL for stream processing:
// read topics into typed streams, transform them step by step, and write
// them to topics. A [Builder] collects the steps; [Builder.Build] checks
// the wiring and returns a [Topology] that the runtime (package duality)
// runs against a broker, or that package streamtest runs synchronously in
// tests.
//
//	b := stream.NewBuilder()
//	lines := stream.From(b, "text-lines", codec.String(), codec.String())
//	words := stream.FlatMapValues(lines, func(line string) iter.Seq[string] {
//		return strings.FieldsSeq(strings.ToLower(line))
//	})
//	words.Filter(func(_, w string) bool { return len(w) > 3 }).
//		To("long-words")
//	topo, err := b.Build()
//
// # Codecs
//
// A type's codec is said once, where the type enters: [From] and
// [FromTopics] take the key and value codecs, and the stream handle
// carries them. A step that keeps a type keeps its codec; a step that
// makes keys or values of a new type ([Map], [MapValues], [SelectKey],
// [FlatMap], [FlatMapValues], [Process], [GroupBy], and the aggregations
// and joins of packages table and window) gives them codec.For of the
// type (String, Bytes, Int64, Uint64, Float64, Bool, else Msgpack), or
// keeps the input's codec when the new type is the input's type. Steps
// that write a topic or a store ([Stream.To], [Stream.ToFunc],
// [Stream.Repartition], [GroupByKey], [GroupBy], table and window steps
// with stores) encode with the handle's codecs. [WithKeyCodec] and
// [WithValueCodec] override them where it matters, for example to write a
// topic that other programs read as JSON:
//
//	orders := stream.From(b, "orders", codec.String(), codec.JSON[Order]())
//	totals := stream.MapValues(orders, func(o Order) Total { ... }) // Msgpack by default
//	totals.To("totals", stream.WithValueCodec(codec.JSON[Total]()))
//
// # Steps
//
// Steps that keep the key and value types are methods of [Stream]:
// [Stream.Filter], [Stream.FilterNot], [Stream.Peek], [Stream.Foreach],
// [Stream.Merge], [Stream.Split], [Stream.To], [Stream.ToFunc] and
// [Stream.Repartition]. Steps that change them are functions: [Map],
// [MapValues], [FlatMap], [FlatMapValues], [SelectKey] and the low-level
// [Process]. Every step takes options of one type, [Option]: [Named]
// (every step; default names are "<operation>-<n>", n being the step's
// position in the builder), [WithKeyCodec] and [WithValueCodec] (see
// Codecs), and the options of particular steps ([WithTimestamp],
// [Partitions], [WithStores], and those of packages table and window).
// Build reports an option given to a step that does not take it.
//
// # Records
//
// Keys and values are decoded by the source's codecs once and flow between
// steps as typed Go values through closures built per task: no boxing,
// no reflection per record. Every step keeps the record's timestamp and
// headers ([RecordContext]); sinks write them with the record. A source's
// [WithTimestamp] extractor takes the timestamp (event time) from the
// decoded record instead of the broker record. Every source, repartition
// topics' included, fails a record whose timestamp is before the Unix
// epoch or after [MaxTimestamp] (year 9999) with an error matching
// [ErrInvalidTimestamp], as Kafka Streams' default extractor does; the
// runtime's error policy then stops the app or skips the record.
//
// A nil key or value read by a source becomes K's or V's zero value
// without calling the codec. A nil value is a tombstone (a delete on a
// compacted topic), and the record stays one through the steps that keep
// the value (Filter, FilterNot, Peek, Foreach, Split, Merge, SelectKey,
// Repartition): sinks write it with a nil value, so copying or filtering a
// compacted topic keeps its deletes. Steps that compute values (Map,
// MapValues, FlatMap, FlatMapValues) get the zero value and produce
// ordinary values; a [Process] step sees and sets [Record.Tombstone].
// Likewise a nil key read by a source stays absent through the steps that
// keep the key, and sinks write it as no key (nil); a key computed by Map,
// SelectKey, FlatMap or a Process step is always written as encoded, an
// empty encoding as an empty key.
//
// # State
//
// A [Process] step can keep key-value state in stores it declares with
// [WithStores]. A typed store is declared once with its name and codecs
// ([NewKeyValueStoreSpec]) and opened by the processor in Init
// ([KeyValueStoreSpec.Open]) as a [KeyValueStore] of K and V (Get, Put,
// Delete, and Range in encoded-key order); a store of byte strings is
// declared with [BytesStoreSpec] and opened with [ProcessorContext].Store
// as a [BytesStore]. Specs are declarations, stores the handles a task
// opens. Both handles are views of the same kind of store:
//
//	counts := stream.NewKeyValueStoreSpec("counts", codec.String(), codec.Int64())
//	stream.Process(s, newCounter, stream.WithStores(counts))
//	// in the processor's Init:
//	c.store, err = counts.Open(pc)
//
// The runtime gives every task its own partition of the
// store, logs each write to the changelog topic
// "<app-id>-<store>-changelog" in the task's commit, and restores the
// store from it on start and after rebalances, so the state always matches
// the committed output. A store belongs to one sub-topology: steps on both
// sides of a repartition cannot share it (ErrStoreConflict). Package
// streamtest runs the same stores in memory, committing after every
// piped record, and lets tests read them.
//
// # Time and punctuation
//
// A [Process] processor reads its task's stream time (the largest
// timestamp of the records the task has processed) with
// [ProcessorContext].StreamTime, and schedules callbacks with
// [ProcessorContext].Schedule: [PunctuateStreamTime] ones fire as stream
// time passes multiples of their interval, [PunctuateWallClock] ones as
// the runtime's clock passes their due times, also without input. They
// run on the task's goroutine between records, may forward records and
// use the step's stores, and their output is committed like a record's.
// Package streamtest drives stream time with the timestamps of piped
// records and wall-clock time with Driver.AdvanceWallClock.
//
// # Grouping
//
// [GroupByKey] and [GroupBy] return a [Grouped] stream for the
// aggregations of package table (Count, Reduce, Aggregate), which turn it
// into a table kept in a store. GroupBy re-keys and always goes through an
// automatic repartition topic; GroupByKey adds one only after a step that
// may have changed keys (Map, SelectKey, FlatMap, Process).
//
// # Sub-topologies
//
// Build splits the graph into sub-topologies: steps connected in process
// form one, and [Stream.Repartition] starts a new one behind an internal
// topic. The runtime runs one task per partition of a sub-topology's
// source topics; the topics of one sub-topology (several [FromTopics]
// topics, merged streams) are co-partitioned. [Topology.Describe] prints
// the result.
//
// # Errors
//
// The DSL never panics on user input. Wiring mistakes (nil functions or
// codecs, invalid topic names, duplicate names, streams of another
// builder, topic conflicts) are recorded as they happen and returned
// together by Build, joined with errors.Join; each matches one of the
// Err values with errors.Is. At run time a step's failure on a record is a
// *[NodeError] naming the step (the runtime's error around it names the
// input record; see duality.ProcessingError for getting past a record
// that always fails): a decode failure
// (wrapping *codec.DecodeError), an encode failure (*codec.EncodeError),
// a [Process] error, or a panic in a user function or codec, which is
// recovered and returned as a [PanicError] so that one bad record fails
// the record, not the process.
//
// # Concurrency
//
// A Builder is used by one goroutine. A built Topology is immutable; each
// task instantiates its own steps and calls user functions from one
// goroutine at a time, but different tasks run in parallel, so user
// functions that share state across records must synchronise it.
package stream
