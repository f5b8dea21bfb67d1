package stream

import (
	"time"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/dsl"
	"github.com/duality-streams/duality/internal/topology"
)

// Errors reported by [Builder.Build]. Each wiring error matches one of them
// with errors.Is; topic names that Kafka would refuse match
// broker.ErrInvalidTopicName.
var (
	// ErrNoSources is reported for a builder without a source (no From or
	// FromTopics).
	ErrNoSources = dsl.ErrNoSources
	// ErrDuplicateName is matched by errors about two steps (or two
	// branches of a split) with the same name.
	ErrDuplicateName = dsl.ErrDuplicateName
	// ErrNilFunc is matched by errors about a nil function given to a
	// step (predicate, mapper, topic function, supplier).
	ErrNilFunc = dsl.ErrNilFunc
	// ErrNilCodec is matched by errors about a nil codec given to a
	// source, sink or repartition (and by streamtest's typed topics).
	ErrNilCodec = dsl.ErrNilCodec
	// ErrForeignStream is matched by errors about a stream of another
	// builder, or the zero Stream, passed to Merge.
	ErrForeignStream = dsl.ErrForeignStream
	// ErrInvalidOption is matched by errors about an invalid option value
	// (an empty name, a partition count < 1) or an empty topic list.
	ErrInvalidOption = dsl.ErrInvalidOption
	// ErrTopicConflict is matched by errors about a topic read by two
	// sources, or read and written by the same sub-topology.
	ErrTopicConflict = dsl.ErrTopicConflict
	// ErrStoreConflict is matched by errors about a state store used by
	// two sub-topologies.
	ErrStoreConflict = dsl.ErrStoreConflict
)

// ErrUnknownStore is matched by the error of [ProcessorContext.Store] for
// a store the step did not declare with [WithStores], and by the errors of
// the runtime's queries (duality.Query) and streamtest's store reads for a
// store the topology does not declare.
var ErrUnknownStore = topology.ErrUnknownStore

// ErrNotCoPartitioned is matched by errors about a join, table or
// aggregation whose inputs may not be partitioned alike, so that records
// of one key could reach different tasks: Build reports a join of a
// stream whose keys may have changed since it was read, or of inputs one
// of which is computed in the sub-topology that reads the other
// (package table); the runtime's Run reports a sub-topology that keeps
// state and reads topics with different partition counts.
var ErrNotCoPartitioned = topology.ErrNotCoPartitioned

// ErrInvalidTimestamp is matched by the error of a record whose timestamp
// is before the Unix epoch (negative in milliseconds, as Kafka's "no
// timestamp" -1) or after [MaxTimestamp]. Every source fails such a
// record, whether the timestamp is the broker record's or the one a
// [WithTimestamp] extractor returned, with a *[NodeError] naming the
// source; the runtime then applies the app's error policy (Kafka
// Streams' default FailOnInvalidTimestamp extractor: the app stops; under
// a skip policy, LogAndSkipOnInvalidTimestamp: the record is skipped and
// counted). A timestamp a [Process] step forwards is checked by the source
// of the repartition topic it goes through before a grouping; windowed
// steps (package window, whose ErrInvalidTimestamp is this error) check
// again.
var ErrInvalidTimestamp = dsl.ErrInvalidTimestamp

// MaxTimestamp is the largest valid record timestamp, in Unix
// milliseconds: 9999-12-31T23:59:59.999Z. Later timestamps are invalid
// ([ErrInvalidTimestamp]); the cap keeps event-time arithmetic (window
// bounds, grace, retention) far from int64 overflow.
const MaxTimestamp = dsl.MaxTimestamp

// Builder collects the steps of a topology. Create streams with [From] or
// [FromTopics], chain steps, then call [Builder.Build]. Wiring mistakes
// never panic: they are recorded and reported together by Build, and the
// handles returned after a mistake keep working.
//
// A Builder is not safe for concurrent use.
type Builder dsl.Builder

// NewBuilder returns an empty Builder.
func NewBuilder() *Builder { return (*Builder)(dsl.NewBuilder()) }

// graph returns b's graph, nil for a nil or zero Builder.
func (b *Builder) graph() *dsl.Graph { return (*dsl.Builder)(b).Graph() }

// Build validates the topology and returns it. All wiring errors are
// returned at once, joined with errors.Join; each matches one of the
// package's Err values (or broker.ErrInvalidTopicName). Build may be
// called again after adding steps; each Topology is a snapshot.
func (b *Builder) Build() (*Topology, error) {
	g := b.graph()
	if g == nil {
		return nil, ErrNoSources
	}
	t, err := dsl.Build(g)
	if err != nil {
		return nil, err
	}
	return (*Topology)(t), nil
}

// Topology is a built, validated topology, ready for the runtime (package
// duality) or for the test driver (package streamtest). It is opaque: only
// [Builder.Build] makes one, and what it holds is read with
// [Topology.Describe]. It is immutable and safe for concurrent use; each
// task instantiates its own processors.
type Topology dsl.Topology

// Describe returns a readable description of the topology, in the shape
// of Kafka Streams' TopologyDescription: its sub-topologies with their
// sources, processors and sinks (each with its children "-->" and parents
// "<--"; a processor with its stores, a step with settings that matter,
// such as a windowed aggregation's windows, retention and emit strategy,
// with them on a line of its own), then the internal topics, the stores
// with their changelog topics and the global stores with their topics.
//
// Topics are given by their names on the broker. A topology does not know
// the app that will run it, so the names of internal topics
// (repartition, foreign-key join and changelog topics, named
// "<app-id>-<name>") show the placeholder "<app-id>", as in
// "<app-id>-by-word-repartition"; duality.App.Describe gives the same
// text with the app id. It returns "" for a nil Topology.
func (t *Topology) Describe() string { return (*dsl.Topology)(t).Describe("") }

// Mermaid returns the topology as a Mermaid flowchart, which GitHub and
// most Markdown viewers draw from a ```mermaid block: a subgraph per
// sub-topology with its steps (their operation, and a windowed step's
// windows with size and grace), the topics they read and write (internal
// ones, repartition and changelog topics, dashed), the stores linked to
// their steps and changelogs, and the global stores with their topics.
// Internal topics are named as in [Topology.Describe], with the "<app-id>"
// placeholder; duality.App.Mermaid names them with the app's id. It
// returns "" for a nil or zero Topology.
func (t *Topology) Mermaid() string { return (*dsl.Topology)(t).Mermaid("") }

// Graph returns the topology as nodes and edges, the structure
// [Topology.Mermaid] draws, for programs that draw or inspect a topology
// themselves: its steps, stores, global stores and topics, and the edges
// between them, with ids as in the Mermaid flowchart. Internal topics are
// named as in [Topology.Describe], with the "<app-id>" placeholder;
// duality.App.Graph names them with the app's id. It returns the zero
// Graph for a nil or zero Topology.
func (t *Topology) Graph() Graph { return (*dsl.Topology)(t).Graph("") }

// Graph is a topology as nodes and edges, returned by [Topology.Graph].
// Its fields carry JSON tags (nodes, edges; id, kind, name, op, detail,
// subTopology; from, to, kind), so encoding/json renders it for a page
// that draws it (package debughttp serves it so).
//
// Nodes are the steps and stores of each sub-topology in order (a step,
// then the stores it is the first to use), then the global stores, then
// the topics in the order the edges first name them. A node's ID is "n<i>"
// for a step, "s<i>" for a store, "g<i>" for a global store and "t<i>"
// for a topic; its Kind is "source", "processor" or "sink" for a step,
// "store", "global-store", "topic" for an external topic and
// "internal-topic" for one the app creates (repartition, foreign-key
// join, changelog). Its Name is the step's name (see [Named]), the
// store's or the topic's as the app names it on the broker; Op is a
// step's operation and Detail its settings that matter (a windowed
// aggregation's windows and grace), or a global store's global table
// when it was named; SubTopology is a step's or store's sub-topology, -1
// for a topic or a global store.
//
// An edge goes From a node's id To another's. Its Kind is "records" for
// records flowing (a topic to the source that reads it, a step to its
// children, a sink to its topic), "store" for a step and a store it uses
// (from the step, or from a global store to a step that reads it),
// "changelog" from a store to its changelog topic and "feeds" from a
// topic to the global store it feeds.
type Graph = dsl.TopologyGraph

// GraphNode is a node of a [Graph].
type GraphNode = dsl.GraphNode

// GraphEdge is an edge of a [Graph].
type GraphEdge = dsl.GraphEdge

// RecordContext is the metadata of the record being processed: where the
// input record came from, and the timestamp and headers the current record
// carries (steps keep both; a [Process] step may forward new ones).
// Headers are shared with the input record and must not be modified.
type RecordContext struct {
	// Topic is the broker topic the input record was read from
	// (internal topics carry the app id prefix).
	Topic string
	// Partition and Offset locate the input record.
	Partition int32
	Offset    int64
	// Timestamp is the record's timestamp.
	Timestamp time.Time
	// Headers are the record's headers.
	Headers []broker.Header
	// Tombstone says the value is absent: the source read a nil value and
	// no step has computed a new one. Sinks write a nil value for it.
	Tombstone bool
	// NoKey says the key is absent: the source read a nil key and no step
	// has computed a new one. Sinks write no key (nil) for it, so the
	// broker spreads such records over partitions; a key a step computed
	// is written as encoded, even when that is zero bytes.
	NoKey bool
}

// TaskID names a task: a sub-topology and the partition number it
// processes (the runtime runs one task per sub-topology and partition).
// Its String form is "<sub-topology>_<partition>", Kafka Streams'
// notation. It is the task id of every package: duality.TaskID and
// duality.ProcessingError.Task are this type.
type TaskID = topology.TaskID

// NodeError is the error a step returns when it fails on a record: a
// [Process] step's error, a decode failure at a source (wrapping a
// *codec.DecodeError), an invalid timestamp at a source (matching
// [ErrInvalidTimestamp]), an encode or send failure at a sink (wrapping a
// *codec.EncodeError or the runtime's error), or a recovered panic in a
// user function or codec (wrapping a *[PanicError]). Its message names the
// step only: the error that wraps it (duality.ProcessingError, or
// streamtest's) names the input record, once.
//
// Its fields: Node, the name of the failing step; Topic, Partition and
// Offset, the input record (empty and 0 for a punctuation); Err, the
// cause, which Unwrap returns. It is defined in an internal package so
// that packages table and window build it too.
type NodeError = dsl.NodeError

// PanicError is a panic recovered in a user function or codec, turned into
// an error so one bad record fails the record instead of the process.
// Value is the value passed to panic, Stack the goroutine's stack at the
// panic; Unwrap returns Value if it is an error (a panic with an error
// value), else nil.
type PanicError = dsl.PanicError
