// Package window aggregates streams per time window: tumbling, hopping,
// sliding and session windows over event time, with an explicit grace
// period for out-of-order records, windowed state kept in the runtime's
// state stores (logged to a changelog and restored like every store), and
// a choice between emitting every update and emitting only final results.
// An aggregation's result is a table keyed by windows
// (table.Table[window.Windowed[K], V]): filter, map, join, materialise
// and query it like any table.
//
//	b := stream.NewBuilder()
//	clicks := stream.From(b, "clicks", codec.String(), codec.String())
//	byUser := stream.GroupByKey(clicks)
//	perMinute := window.Count(byUser, window.Tumbling(time.Minute, 10*time.Second), "clicks-1m",
//		window.EmitOnWindowClose())
//	perMinute.ToStream().To("clicks-per-minute") // keys encoded with window.WindowedCodec(codec.String())
//
// # Windows
//
// [Tumbling], [Hopping], [Sliding] and [Session] define windows; the grace
// period is always given ([NoGrace] for none), and [Windows.WithRetention]
// keeps windowed state longer than the minimum. Build reports invalid
// definitions (ErrInvalidWindow): non-positive sizes or sizes that are not
// whole milliseconds, an advance larger than the size, a negative grace, a
// retention below the minimum. The semantics are Kafka Streams':
//
//   - Tumbling(size): windows [n*size, (n+1)*size).
//   - Hopping(size, advance): windows [n*advance, n*advance+size), start
//     not negative; a record is in up to size/advance windows.
//   - Sliding(difference): a window [t-difference, t] ending with each
//     record t, and a window [t+1ms, t+1ms+difference] starting after it
//     when a later record falls in it; each holds exactly the records
//     within its bounds (KStreamSlidingWindowAggregate's algorithm).
//   - Session(gap): a session [first, last] of records within gap of each
//     other; a record within gap of two sessions merges them.
//
// Results are keyed by [Windowed] keys: the record key with the window's
// Start (inclusive) and End (exclusive). Kafka Streams counts the ends of
// sliding windows and sessions as inclusive; here End is that end + 1ms,
// so every window is half-open. [WindowedCodec] encodes Windowed keys
// order-preservingly (key, then start, then end).
//
// # Time
//
// Every record's timestamp is its event time: the broker record's
// timestamp, or what the source's stream.WithTimestamp extractor takes
// from the decoded record (e.g. a field of the value). A windowed
// aggregation (or join) tracks its stream time in each task: the largest
// timestamp it has seen, persisted in its store so that it survives
// restarts. A window [start, end) accepts records until stream time
// reaches end + grace (a session [first, last]: until stream time exceeds
// last + gap + grace); then it is closed. A record whose windows are all
// closed is late: it is dropped, counted ([Stats.LateRecords] with [WithStats],
// and duality.Metrics.LateRecordsDropped app-wide), logged (see below)
// and handed to the [OnLate] callback. A record that is late for
// some of its hopping windows updates only the open ones.
//
// Late drops are logged at Warn, at most one line per step every 10 s of
// the app's clock (duality.Clock), over all the step's tasks. A line
// gives the step ("node"), the records dropped since the previous line
// ("dropped"), the largest lateness among them ("lateness": the step's
// stream time minus the record's timestamp; a grace at least that long
// would have kept those records, most of them with less) and the step's
// grace ("grace"), with the topic, partition and offset of the record
// that triggered the line. Each drop is also logged at Debug.
//
// # Grace and backlogs
//
// A grace period covers records that arrive out of order. How out of
// order they are depends less on producers than on what is upstream: a
// windowed step behind a repartition (stream.GroupBy, or
// stream.GroupByKey after a key change) reads records that several
// upstream tasks wrote, interleaved. In steady state they are nearly in
// order; while the upstream tasks work through a backlog (first start,
// restart, catch-up), each writes a whole fetch batch at a time, so event
// times jump back and forth by as much as one upstream fetch batch spans
// in event time (duality.FetchMaxRecords records of one partition), which
// easily exceeds a few seconds of grace. Give such a step a grace period
// of at least that span, or reprocess the backlog with fewer records per
// fetch, and watch the Warn lines and LateRecordsDropped.
//
// A record with a timestamp before the epoch (negative milliseconds) or
// after [MaxTimestamp] (year 9999) fails with an error matching
// [ErrInvalidTimestamp] (stream.ErrInvalidTimestamp): every source rejects
// it, as Kafka Streams' default extractor does, and windowed steps check
// again. The runtime's error policy decides whether the app stops (the
// default) or skips it. Records with an absent key or value are dropped
// and logged at Debug.
//
// A task that reads several partitions (several source topics, a join's
// two sides) processes their records in timestamp order (see
// duality.MaxTaskIdle), by the time a source's stream.WithTimestamp
// extractor gives, or else the broker timestamp.
//
// By default an aggregation's stream time only advances with the records
// it aggregates, as in Kafka Streams: when input stops, the last windows
// stay open and their final results wait for the next record. With
// [WithTaskStreamTime] it follows the task's stream time, which
// duality.IdleStreamTimeAdvance moves with the clock while the task is
// idle, so windows close although input stopped. The step takes the
// task's stream time at each of its records and, with a one-shot timer,
// when a final result or an expiry is due, so an idle task costs nothing
// in between. After a restart (or a rebalance) the task's stream time
// starts from the one the step persisted in its store, so the idle
// advance also closes the windows an input that stopped before the
// restart left open. Joins take the option too: their unmatched records
// are then emitted when input stops.
//
// # Aggregations
//
// [Count], [Reduce] and [Aggregate] aggregate a stream.Grouped per window
// into a table.Table[Windowed[K], V]; [AggregateSessions] is Aggregate for
// sessions, with a merger for the aggregates of merged sessions. The
// table's ToStream is the stream of results:
//
//   - By default every update of a window is emitted, with the window's
//     new aggregate. When sessions merge, the keys of the merged sessions
//     are emitted as tombstones, then the new session, as Kafka Streams
//     does. With [CacheUpdates], only the newest update of each window per
//     commit is emitted (Kafka Streams' record cache), when the runtime
//     flushes the task before committing.
//   - With [EmitOnWindowClose], only final results are emitted: exactly
//     one record per window, once it closes (Kafka Streams'
//     emitStrategy(onWindowClose), or suppress(untilWindowCloses)).
//     Windows waiting to close are indexed by close time in the store, so
//     the final results and the index commit together: a restart neither
//     loses nor repeats one.
//
// Results carry the largest timestamp of the records in their window.
// The stream carries the table's codecs, [WindowedCodec] of the grouping's
// key codec and the aggregate's, so ToStream().To(topic) writes them; a
// sink partitions by the whole windowed key, so the windows of one key
// may land in different partitions (map the key to the record key first
// if consumers need them together).
//
// # Windowed tables
//
// The table of an aggregation is a table of package table like any
// other, keyed by [Windowed] keys: Filter, FilterNot, table.MapValues,
// table.Materialize, table.GroupBy, the table-table joins (by windowed
// key: two aggregations of one grouping, say a count and a sum per
// window, join into a mean per window) and the stream-table joins work on
// it. Its rows are the windows of its store: a window is deleted, and
// table steps get a delete, when a session merges into a larger one; a
// window that expires after the retention leaves the store without a
// change (as in Kafka Streams), so a table downstream that keeps rows
// (Materialize, an aggregation of GroupBy) keeps it.
//
// With [EmitOnWindowClose] the table is Kafka Streams' windowed KTable
// after suppress(untilWindowCloses): what its table steps see is what
// ToStream emits. Each window enters the table once, with its final
// result, when it closes (a change with no old value); a lookup of the
// table (the other side of a join) does not find a window until its final
// result is out, as the value getter of Kafka Streams' suppress hides a
// buffered window. The aggregation's store, and so a query of it, holds
// every window, open ones included.
//
// Two such tables joined (table.JoinTables) have a row per window that
// both hold, from both final results: the side whose final result comes
// out first finds the other side's window waiting, and the other side's
// final result finds the first side's window in its store, also when one
// record, or the end of a bounded run (duality.App.RunToEnd), moves
// stream time past the close and the expiry of the window at once (see
// "State"). Without [WithTaskStreamTime] each side's stream time follows
// its own records: when the two sides read different topics, a side that
// has moved past a window's expiry and advanced again before the other
// side's final result of the window looks it up has dropped it (as Kafka
// Streams' window store has): make the retention cover the skew between
// the sides, or let both follow the task's stream time.
//
// With [CacheUpdates], table steps get the newest update of each window
// per commit, from the window's value at the previous commit; lookups
// read the store, so they see every update.
//
// A final result, or an update held by [CacheUpdates], is emitted as a
// unit of work of its own under the app's error policy. Under
// duality.SkipOnError one that fails in a step below the aggregation is
// skipped with everything the steps below did for it (their store writes
// and output: a table.Materialize below does not get the row, a join
// below does not emit for it), and is never emitted again; the record,
// punctuation or flush that emitted it goes on. The window itself stays
// in the aggregation's table, as Kafka Streams reads a window its
// suppress buffer evicted from the aggregation's store whatever happened
// downstream: a skipped final result has left the close index, so lookups
// find the window and queries of the store hold it; only the steps below,
// which never got the change, lack it. The next change of a window after
// a skipped update starts from the value the skipped one set (the
// window's value at the previous flush, as Kafka Streams' caching store
// reads old values from the store), so a table aggregation below that
// subtracts old values (table.GroupBy) misses the skipped change.
//
// # State
//
// Each aggregation keeps its windows in its own state store (the name
// given to Count, Reduce or Aggregate), logged to the changelog topic
// "<app-id>-<store>-changelog" and restored from it on start and after
// rebalances, like every store. Windows are keyed by time segment (half
// the retention), then key, then start, so that a key's windows in a time
// range are one short scan per segment, and expiry deletes whole segments
// at the front of the store once they are older than stream time minus
// the retention. A window outlives the advance of stream time that
// expires it, and goes with the step's next advance, so that the steps
// of the task that run at that stream time still read it (see the joins
// of final results above). Expiry is one range deletion per call, which
// writes no changelog record; final results leave the close index the
// same way.
// Instead of tombstones, the store's changelog is created with the
// compact,delete cleanup policy and a retention of the window retention
// plus 24 hours (Kafka Streams' windowstore.changelog.additional.retention.ms),
// so the broker drops old records by time. Changelog records carry the
// time they were written (not event time, as in Kafka Streams), so
// reprocessing old data never makes the broker drop windows that are still
// live by stream time. Until the broker drops them, a restore brings
// expired windows back; the step deletes them again when its task starts,
// before it processes a record, so they are never emitted again. For up to
// one commit interval after a restore, a query may still see them.
//
// A window updated last more than retention + 24 hours of wall-clock time
// ago, and still live because stream time has not moved (an idle input),
// is no longer in the changelog: a restore after that does not bring it
// back.
//
// # Stream-stream joins
//
// [Join], [LeftJoin] and [OuterJoin] join two streams grouped by the same
// key within [JoinWindows] (a time difference before and after, and a
// grace period): a left record at t joins the right records of its key
// with times in [t - before, t + after]. Each pair is emitted when its
// second record arrives. Both sides are kept in one state store (logged
// and restored like every store) until they can no longer join. A record
// is late, dropped and counted, when its own window plus grace has closed
// (a left record at t when stream time passes t + after + grace).
// LeftJoin and OuterJoin emit a record that joined nothing only when no
// record that could still be accepted can join it, when stream time passes
// t + before + after + grace: never prematurely. Kafka Streams emits it
// at t + after + grace and may then still join a late-but-accepted record
// of the other side; this package waits longer instead.
//
// # Interactive queries
//
// duality.QueryWindows(app, table) gives the store of a running app's
// windowed aggregation as a duality.ReadOnlyWindowStore: its Fetch returns
// a key's windows with starts in a time range (one short scan per time
// segment), its FetchAll every window with a start in a time range, over
// the partitions this instance owns, from committed state
// (duality.ErrStoreNotReady while the app is not ready,
// *duality.NotOwnedError for a key of another instance). A windowed store
// is not a key-value store: duality.Query of it fails when it is made,
// with duality.ErrWrongStoreKind. A table derived from an aggregation
// (Filter, MapValues) is queried after table.Materialize, with
// duality.QueryTable: its store is a key-value store keyed by encoded
// windowed keys, which keeps every window it was given (it does not
// expire them). httpquery.Windows serves a windowed store over HTTP.
//
// # Differences from Kafka Streams
//
//   - Sliding windows of records earlier than the time difference after
//     the epoch start before the epoch (Kafka clamps them at 0), and the
//     minimum retention of sliding windows is 2*difference + 1ms + grace,
//     because new windows are derived from windows up to two differences
//     old.
//   - A closed session is never merged into a newer one: a record that
//     bridges a closed and an open session extends the open one only, so
//     that a final result never changes.
//   - A window closes when stream time reaches its exclusive end plus
//     grace; for sliding windows, whose ends Kafka counts as inclusive,
//     this is 1ms later than in Kafka Streams.
package window
