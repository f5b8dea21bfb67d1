// Package topology is the contract between the DSL packages (stream, table,
// window), which build a processing graph, and the runtime that executes
// it (internal/runtime, which package streamtest drives too). Everything
// here is bytes at the edges: codecs live inside the closures that
// NewTask creates.
//
// A runtime gives each task a [TaskEnv], whose Store returns a [KV], and
// drives the task's [Processor]; each of the three interfaces is
// implemented in full by every runtime and every processor, with no
// optional parts. Package dsl validates a [Topology] (Build, or Wrap for
// one written by hand) before a runtime sees it, so a runtime checks only
// what needs its app id or its broker.
package topology

import (
	"context"
	"fmt"
	"iter"
	"log/slog"
	"math"
	"time"

	"github.com/duality-streams/duality/broker"
)

// Topology is a built processing graph. Package dsl validates it (see
// the package documentation); the runtimes read it and never change it.
type Topology struct {
	// SubTopologies are the independent parts of the graph: nodes joined
	// by in-process edges. A repartition topic separates two of them.
	SubTopologies []*SubTopology
	// InternalTopics are the topics the runtime creates for the app, by
	// logical name (the runtime names them "<app-id>-<name>").
	InternalTopics []InternalTopic
	// GlobalStores are the stores every instance of the app holds in
	// full, each fed by all partitions of a topic.
	GlobalStores []GlobalStore
}

// InternalTopicName returns the broker name of the internal topic logical
// of the app appID: "<appID>-<logical>". Repartition topics, a
// foreign-key join's topics and changelog topics are internal.
func InternalTopicName(appID, logical string) string { return appID + "-" + logical }

// TopologyTopic returns the broker name of the topic where the app appID
// publishes the descriptions of its topology when it starts:
// "<appID>-topology", one partition, compacted, one record per format
// keyed by the format's name (DescriptionText, DescriptionMermaid), so
// that tools that do not link the app (the duality command's describe)
// can show it. It cannot collide with the other internal topics, whose
// names end in -repartition, -changelog or a foreign-key join's suffixes.
func TopologyTopic(appID string) string { return appID + "-topology" }

// The keys of the records of an app's topology topic (see TopologyTopic).
const (
	DescriptionText    = "text"
	DescriptionMermaid = "mermaid"
)

// ChangelogTopic returns the logical name of the changelog topic of the
// store name: "<name>-changelog" (an internal topic, so its broker name
// is "<app-id>-<name>-changelog").
func ChangelogTopic(name string) string { return name + "-changelog" }

// GlobalStore declares a global store (Kafka Streams' global state store
// behind a GlobalKTable). Every instance of the app holds all of it: the
// runtime reads every partition of Topic, outside the consumer group, and
// writes each record's raw key and value into the store (a nil value
// deletes the key, a record without key is ignored). The topic is the
// store's changelog: no changelog topic is written, and the runtime keeps
// the positions it has read locally. Before any task processes input, the
// store is brought up to the end of the topic; it is then kept up to date
// while the app runs.
type GlobalStore struct {
	// Name names the store; it differs from every other store name of
	// the topology and follows the rules of topic names.
	Name string
	// Topic is the external topic that feeds the store. No sub-topology
	// reads it.
	Topic string
}

// Source is a topic a sub-topology reads.
type Source struct {
	Topic    string // logical name; for Internal topics the runtime prefixes the app id
	Internal bool
}

// Sink is a fixed topic a sub-topology writes. Topics chosen per record are
// not listed.
type Sink struct {
	Topic    string
	Internal bool
}

// SubTopology is a connected part of the graph. The runtime runs one task
// per partition number p of its sources; the task reads partition p of
// every source topic that has it.
type SubTopology struct {
	ID      int
	Sources []Source
	Sinks   []Sink
	// Stores are the state stores the sub-topology's tasks use. Each is
	// logged to the changelog topic "<app-id>-<name>-changelog" and used
	// by no other sub-topology.
	Stores []StoreSpec
	// NewTask instantiates the graph for one task. It is called once per
	// task, from the goroutine that will call the returned Processor.
	NewTask func(env TaskEnv) (Processor, error)
	// Steps are the steps of the sub-topology, in creation order, for
	// their metrics (see TaskEnv.StepCounters); nil for a topology
	// written by hand, whose steps are not counted.
	Steps []Step
}

// Step is one step of a sub-topology, for its metrics.
type Step struct {
	// Name is the step's name, unique in the topology.
	Name string
	// Op names the step's operation ("filter", "count", ...).
	Op string
	// Sink says the step writes a topic: every record it takes it
	// writes, so the records it passes on (StepCounts.Out) are the
	// records it takes, which the processor does not count twice.
	Sink bool
}

// StepCounts are the counts of one step of a task since the runtime last
// read them (see TaskEnv.StepCounters). In counts the records the step
// took (from its parents, or read from its topics for a source), Out the
// records it passed on to its children (once a record however many
// children take it), Late the records it dropped as late. They count
// attempts: a record processed again counts again.
type StepCounts struct {
	In, Out, Late uint64
}

// StoreSpec declares a state store of a sub-topology.
type StoreSpec struct {
	// Name names the store; "<name>-changelog" is its changelog topic's
	// logical name, so Name follows the rules of topic names.
	Name string
	// Kind is the layout of the store's keys and values, which queries
	// of the store depend on: StoreKeyValue (the zero value) for a store
	// whose keys and values are the encoded keys and values of a table or
	// a processor's state, StoreWindow and StoreSession for a windowed
	// aggregation's store (package internal/windowstore), StoreJoinBuffer
	// for the record buffers of a windowed stream-stream join.
	Kind StoreKind
	// Segment is the segment interval of a window or session store's
	// layout (windowstore.SegmentInterval of its retention); 0 for the
	// other kinds.
	Segment time.Duration
	// Retention, when positive, declares a windowed store whose entries
	// older than Retention are removed by its processors (with
	// KV.DeleteRange): its changelog is created with
	// broker.CleanupCompactDelete and a RetentionTime of Retention plus
	// WindowChangelogExtraRetention, so that expired entries leave the
	// changelog without tombstones. 0 (the default) is a plain store with a
	// compacted changelog; negative is invalid.
	Retention time.Duration
}

// StoreKind is the layout of a state store (StoreSpec.Kind).
type StoreKind uint8

const (
	// StoreKeyValue is a store of encoded keys and values.
	StoreKeyValue StoreKind = iota
	// StoreWindow is a windowed aggregation's store of time windows
	// (tumbling, hopping or sliding).
	StoreWindow
	// StoreSession is a windowed aggregation's store of session windows.
	StoreSession
	// StoreJoinBuffer is the record buffers of a windowed stream-stream
	// join; it is not queryable.
	StoreJoinBuffer
)

// String returns "key-value", "window", "session" or "join buffer".
func (k StoreKind) String() string {
	switch k {
	case StoreKeyValue:
		return "key-value"
	case StoreWindow:
		return "window"
	case StoreSession:
		return "session"
	case StoreJoinBuffer:
		return "join buffer"
	}
	return fmt.Sprintf("StoreKind(%d)", uint8(k))
}

// WindowChangelogExtraRetention is what a windowed store's changelog keeps
// beyond the store's retention: 24 hours, Kafka Streams' default of
// windowstore.changelog.additional.retention.ms, a margin for clock drift
// between event time and the broker's clock.
const WindowChangelogExtraRetention = 24 * time.Hour

// Changelog returns the cleanup policy and retention time of s's
// changelog topic: broker.CleanupCompact and 0 for a plain store;
// broker.CleanupCompactDelete and Retention plus
// WindowChangelogExtraRetention (saturated at the largest Duration) for a
// windowed store.
func (s StoreSpec) Changelog() (broker.CleanupPolicy, time.Duration) {
	if s.Retention <= 0 {
		return broker.CleanupCompact, 0
	}
	r := s.Retention + WindowChangelogExtraRetention
	if r < s.Retention {
		r = time.Duration(math.MaxInt64)
	}
	return broker.CleanupCompactDelete, r
}

// InternalTopic is a topic the runtime creates for the topology:
// repartition topics, and a foreign-key join's subscription and response
// topics. Changelog topics are not listed here: the runtime derives one
// from each StoreSpec ("<name>-changelog").
type InternalTopic struct {
	Name string // logical name, e.g. "by-user-repartition"
	// Partitions is the partition count; 0 means the count PartitionsLike
	// names or, without it, the largest partition count among the source
	// topics of the sub-topology that writes it.
	Partitions int32
	// PartitionsLike, when not nil and Partitions is 0, gives the topic
	// the partition count of that topic (a source of some sub-topology),
	// so that its partition p holds the keys of partition p of that
	// topic. A foreign-key join's subscription topic is sized like the
	// right table's topic and its response topic like the left table's.
	PartitionsLike *Source
	// WrittenBy is the ID of the sub-topology that writes the topic.
	WrittenBy int
	Cleanup   broker.CleanupPolicy
}

// TaskID names a task: a sub-topology and the partition number it
// processes. It is the one task id of the module: stream.TaskID and
// duality.TaskID are aliases of it, and duality.ProcessingError.Task is
// one.
type TaskID struct {
	SubTopology int
	Partition   int32
}

// String returns "<sub-topology>_<partition>", Kafka Streams' notation.
func (id TaskID) String() string { return fmt.Sprintf("%d_%d", id.SubTopology, id.Partition) }

// TaskEnv is what a task's processors get from the runtime
// (internal/runtime implements all of it). It is used by one goroutine
// at a time, the task's.
type TaskEnv interface {
	AppID() string
	TaskID() TaskID
	// TopicName resolves a logical source or sink name to the broker
	// topic name (internal topics get the app id prefix).
	TopicName(logical string, internal bool) string
	// Send buffers an output record. It becomes visible with the task's
	// next commit, atomically with the input offsets. Send copies nothing:
	// the caller must not modify rec's slices afterwards. rec.Partition may
	// be broker.PartitionByKey.
	Send(ctx context.Context, rec broker.Record) error
	// Logger is the app's logger with the task attribute.
	Logger() *slog.Logger
	// Now is the wall clock (injectable for tests).
	Now() time.Time

	// Store returns the task's partition of the store name, which must be
	// one of the sub-topology's Stores (otherwise an error matching
	// [ErrUnknownStore]). It is ready:
	// restored from its changelog before the task was created. The KV is
	// used by the task's goroutine only and is valid until the task
	// closes.
	Store(name string) (KV, error)
	// GlobalStore returns a reader of the global store name, which must be
	// one of the topology's GlobalStores (otherwise an error matching
	// [ErrUnknownStore]). The store
	// is bootstrapped (up to the end of its topic as of the start of the
	// app) before any task is created. The reader is used by the task's
	// goroutine only and is valid until the task closes.
	GlobalStore(name string) (GlobalKV, error)

	// StreamTime is the task's stream time in milliseconds since the
	// epoch: the largest timestamp of the input records the task has
	// processed, including the one being processed, and possibly moved
	// further by the runtime while the task is idle, or to [MaxTimestamp]
	// at the end of a bounded run. It never decreases while the task
	// lives; [NoTime] before the first record (unless a step restored it,
	// see RestoreStreamTime).
	StreamTime() int64
	// Schedule registers f to fire every interval (at least a
	// millisecond) by the clock typ names, until cancel is called (cancel
	// may be called from anywhere on the task's goroutine, also from f,
	// and more than once). When a clock jumps by several intervals, f
	// fires once and the missed due times are skipped (as in Kafka
	// Streams). Punctuators due at the same time fire in the order they
	// were scheduled.
	Schedule(interval time.Duration, typ PunctuationType, f Punctuator) (cancel func(), err error)
	// StreamTimer registers f as a one-shot stream-time punctuation,
	// disarmed: a step that knows when it next has work to do (a window
	// closing, a segment expiring) arms a timer at that stream time
	// instead of punctuating at every millisecond of it, so an idle task
	// (see StreamTime) costs nothing between due times. set(due) arms it:
	// f fires once, with the task's stream time, after the record (or
	// idle advance) that moves stream time to or past due, and is then
	// disarmed until set is called again (from f or later). set replaces
	// the due time armed before; due math.MaxInt64 disarms. A due time at
	// or below the current stream time fires after the record or
	// punctuation being run, or at the latest when the runtime next looks
	// at the task's stream time (the next record or idle advance). f runs
	// like a [StreamTimePunctuation] (committed like a record, in order of
	// due time with the task's other stream-time punctuations, then of
	// registration). cancel unregisters f for good; set is then a no-op.
	// set and cancel may be called from anywhere on the task's goroutine,
	// also from f, and more than once.
	StreamTimer(f Punctuator) (set func(due int64), cancel func(), err error)
	// RestoreStreamTime raises the task's stream time to ts when it is
	// lower (NoTime included), as of task creation. A step calls it with
	// the stream time it persisted in its store: a restarted task
	// otherwise has no stream time until its first record, so the
	// runtime's idle advance (duality.IdleStreamTimeAdvance) would not
	// close the windows of an input that stopped before the restart
	// (Kafka Streams keeps a partition's time in its committed offsets'
	// metadata for the same reason). The idle advance then counts the
	// task as idle since it caught up with its input. Called while the
	// task is created (from its steps' Instantiate), before any record.
	RestoreStreamTime(ts int64)
	// CountLate counts one record a windowed step dropped as late, for
	// the runtime's app-wide metrics (duality.Metrics.LateRecordsDropped).
	CountLate()
	// StepCounters returns the counters of the task's steps, one per
	// Step of its sub-topology (SubTopology.Steps) in that order, or nil
	// when the runtime counts nothing (then the processor counts
	// nothing). The processor increments them on the task's goroutine;
	// the runtime reads and resets them on that goroutine, between two
	// units of work. The slice stays the same for the task's life.
	StepCounters() []StepCounts
	// Item runs it.Emit as a unit of work of its own under the app's
	// error policy, so that one item a step emits on its own (a change
	// held by table's EmitPerCommit, an update held by window's
	// CacheUpdates, a window's final result, a join's unmatched record)
	// that fails downstream fails alone, and is never emitted again.
	//
	// Called from Flush, the item is a unit of work like a record. Called
	// while the task runs a record or a punctuation (Process, a
	// Punctuator), the item is nested in that unit: its effects belong to
	// the unit (undone with it), but its failure is its own. Called from
	// within another item's Emit, it just runs it.Emit (the items are one).
	//
	// The runtime marks the task's output and store writes, then calls
	// it.Emit. On success Item returns nil. On failure, under the skip
	// policy, the runtime undoes the output and store writes Emit made,
	// calls the processor's Skip (the processor knows it is in an item
	// and undoes the item's in-memory effects only; it does not call
	// Begin for an item), logs, counts and reports the failure, and
	// returns nil: the processor goes on as if the item had been emitted.
	// Under the fail policy Item returns the failure, which the processor
	// must return from Flush, Process or the punctuator (the app then
	// stops with it).
	Item(ctx context.Context, it Item) error
}

// Item is one item a step emits as a unit of work of its own (see
// [TaskEnv.Item]). A step keeps one Item value per task and reuses it,
// so that emitting costs no allocation.
type Item interface {
	// Emit emits the item to the steps downstream of the one that
	// emits it.
	Emit(ctx context.Context) error
	// Step returns the name of the step that emits the item.
	Step() string
	// String says what the item is, for errors and logs (for example
	// `change of key a`). It is called only after Emit failed, before the
	// step emits another item.
	String() string
}

// NoTime is the stream time of a task that has processed no record yet.
const NoTime int64 = math.MinInt64

// MaxTimestamp is the largest valid record timestamp in Unix milliseconds,
// 9999-12-31T23:59:59.999Z, and the end of time of a bounded run
// (duality.App.RunToEnd): once a task's input is processed, the runtime
// moves its stream time to MaxTimestamp, through the due times of its
// one-shot timers (TaskEnv.StreamTimer) in order, firing the stream-time
// punctuations due on the way, as if input had gone on. A step whose work
// otherwise waits for more input (a window's final result) arms a timer at
// MaxTimestamp to do it then.
const MaxTimestamp int64 = 253402300799999

// PunctuationType says which clock drives a punctuation.
type PunctuationType uint8

const (
	// StreamTimePunctuation is driven by the task's stream time (see
	// [TaskEnv.StreamTime]): it fires after the record (or idle advance)
	// that moved stream time to or past its due time. Its first due time
	// is 0 (the first record with a non-negative timestamp fires it);
	// later ones are aligned to multiples of the interval.
	StreamTimePunctuation PunctuationType = iota + 1
	// WallClockPunctuation is driven by the runtime's clock
	// (TaskEnv.Now): it first fires one interval after it is scheduled,
	// then every interval, between records, also while no input arrives.
	WallClockPunctuation
)

// String returns "stream-time" or "wall-clock".
func (t PunctuationType) String() string {
	switch t {
	case StreamTimePunctuation:
		return "stream-time"
	case WallClockPunctuation:
		return "wall-clock"
	}
	return "unknown"
}

// Punctuator is a scheduled callback. ts is the time that fired it, in
// milliseconds since the epoch: the task's stream time for
// [StreamTimePunctuation], the clock for [WallClockPunctuation]. It runs
// on the task's goroutine between two records, may Send records and write
// stores, and its output and writes are committed like a record's. A
// returned error fails it like a record (the app's error policy applies).
type Punctuator func(ctx context.Context, ts int64) error

// GlobalKV reads a global store while the runtime updates it from its
// topic. Each Get sees the value of the key as of some record of the
// topic: an update is never seen half-written, and a later Get of the
// same key never sees an older record of its partition.
type GlobalKV interface {
	// Get returns a copy of key's value and true, or nil and false.
	Get(key []byte) ([]byte, bool, error)
}

// KV is a task's key-value state: bytes in, bytes out, ordered by
// bytes.Compare. Writes are buffered until the task's next commit, which
// logs them to the changelog atomically with the task's output and input
// offsets: the newest value of each written key when the runtime's record
// cache is on, every write in order when it is off. Reads see the task's
// own uncommitted writes. A KV is not safe for concurrent use.
type KV interface {
	// Get returns a copy of key's value and true, or nil and false.
	Get(key []byte) ([]byte, bool, error)
	// GetAppend appends key's value to dst and returns the extended
	// slice and true, or dst and false: Get into a buffer the caller
	// reuses, so that reading a value costs no allocation once the
	// buffer has grown to it.
	GetAppend(dst, key []byte) ([]byte, bool, error)
	// Put sets key to value (copied; a nil value is stored as empty).
	Put(key, value []byte) error
	// PutOwned sets key to value like Put, without copying value: the
	// caller gives value up and neither reads nor writes it afterwards.
	// Steps use it for a large encoding they would drop after Put
	// anyway (dsl.MaxScratch), saving one copy of a large value.
	PutOwned(key, value []byte) error
	// Delete deletes key; deleting an absent key writes a tombstone
	// anyway, except for a key put since the last hand-off that was
	// absent before that Put: the Put is forgotten and neither is logged.
	Delete(key []byte) error
	// Range returns a single-use iterator over the pairs with keys in
	// [start, end) in ascending order (nil start: from the first key; nil
	// end: no upper bound), and a function returning the error that ended
	// the iteration. The yielded slices are valid until the next
	// iteration step and must not be modified. The iterator sees the
	// state as of its first step; writes during the iteration are not
	// seen by it.
	Range(start, end []byte) (iter.Seq2[[]byte, []byte], func() error)
	// DeleteRange removes every key in [start, end) (nil end: no upper
	// bound) from what Get and Range see, and at the next commit from the
	// store with one range deletion. Unlike Delete it writes no changelog
	// records: it is meant for windowed stores (StoreSpec.Retention),
	// whose changelog drops old records by time, so a restore may bring
	// deleted keys back until then and the processor must delete them
	// again. It fails only on a closed store; start > end deletes nothing.
	DeleteRange(start, end []byte) error
}

// Processor is one instantiated task graph. The runtime calls it from
// the task's goroutine only.
type Processor interface {
	// Process runs one input record through the graph. rec.Topic is the
	// broker topic name. A returned error fails the record; the runtime
	// applies the app's error policy. *rec is valid during the call (and
	// from a Timestamp call for it up to its Process) only: the runtime
	// reuses the memory of processed records for later fetches (its key,
	// value and headers stay valid).
	Process(ctx context.Context, rec *broker.Record) error
	// Timestamp returns rec's event time in milliseconds as the task's
	// steps will see it, and true; or false when rec's broker timestamp
	// is its event time (no extractor for rec's topic, such as
	// stream.WithTimestamp, or the record cannot be decoded: Process
	// reports that). The runtime calls it before Process, to order a
	// task's records and to move its stream time. For a record whose
	// event time is invalid (before the Unix epoch or after year 9999),
	// which Process fails, it returns -1 and true, so the record is
	// processed first and moves no stream time. A following Process of
	// the same *rec may reuse the work done here, so rec must not be
	// modified in between.
	Timestamp(rec *broker.Record) (int64, bool)
	// Begin starts a unit of work whose state writes the runtime may undo
	// on its own: the runtime calls it before each record and each
	// punctuation. Items ([TaskEnv.Item]) are units too, but the processor
	// starts them itself: the runtime calls no Begin for them.
	Begin()
	// Skip undoes the in-memory effects of the unit of work last begun,
	// which failed. When the runtime discards such a unit (the skip error
	// policy, which streamtest uses too), it undoes that unit's
	// store writes and drops its output, then calls Skip: the processor
	// must restore the in-memory state derived from its stores (stream
	// time, caches, progress markers) to what it was at Begin, in every
	// step, including the steps that succeeded (a sibling step of the
	// same record may have failed). When the unit is an item, Skip is
	// called from within [TaskEnv.Item] and undoes the item's effects
	// only: the record or punctuation it is nested in goes on.
	Skip()
	// Flush is called before every commit; processors with caches write
	// them out here (through Send), each cached item through
	// [TaskEnv.Item]. A returned error stops the app.
	Flush(ctx context.Context) error
	// Close releases the task's resources.
	Close() error
}
