package dsl

import (
	"errors"
	"fmt"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/internal/topology"
)

// Sentinel errors of topology building. Package stream re-exports them, so
// their text carries the public package name.
var (
	// ErrNoSources is reported by Build for a graph without a source.
	ErrNoSources = errors.New("stream: topology has no sources")
	// ErrDuplicateName is matched by errors about two steps with one name.
	ErrDuplicateName = errors.New("stream: duplicate step name")
	// ErrNilFunc is matched by errors about a nil function argument.
	ErrNilFunc = errors.New("stream: nil function")
	// ErrNilCodec is matched by errors about a nil codec argument.
	ErrNilCodec = errors.New("stream: nil codec")
	// ErrForeignStream is matched by errors about a stream from another
	// builder (or the zero Stream) used where a stream of this builder is
	// needed.
	ErrForeignStream = errors.New("stream: stream from another builder")
	// ErrInvalidOption is matched by errors about an invalid option value
	// or an option given to a step it does not apply to.
	ErrInvalidOption = errors.New("stream: invalid option")
	// ErrTopicConflict is matched by errors about topics used in ways that
	// cannot work: read by two sources, or read and written by the same
	// sub-topology.
	ErrTopicConflict = errors.New("stream: topic conflict")
	// ErrStoreConflict is matched by errors about a state store used by
	// two sub-topologies (a store belongs to one sub-topology, whose tasks
	// hold its partitions).
	ErrStoreConflict = errors.New("stream: store conflict")
)

// Kind says what a node does with records.
type Kind uint8

const (
	// KindSource reads topics; it has no parents.
	KindSource Kind = iota + 1
	// KindProcessor transforms records it gets from its parents.
	KindProcessor
	// KindSink writes records to a topic; it has no children.
	KindSink
)

// Node is one step of the graph. The typed behaviour lives in Instantiate,
// which the package that created the node supplies; the graph itself sees
// only structure.
//
// Fields are set by the creator before AddNode and must not change after,
// except Children, which AddNode appends to.
type Node struct {
	// ID is the node's index in creation order, unique in its graph.
	ID int
	// Name is unique in the graph; AddNode fills "<Op>-<ID>" when empty.
	Name string
	// Op names the operation ("filter", "map-values", ...).
	Op string
	// Kind is the node's role.
	Kind Kind
	// Named is true when the user chose Name.
	Named bool
	// Topics are the topics a source reads or the one topic a sink writes
	// (logical names). A sink with no topics chooses one per record.
	Topics []string
	// Internal says Topics are internal topics of the app.
	Internal bool
	// Stores are the state stores the node uses, by name. Nodes of one
	// sub-topology may share a store; nodes of two may not.
	Stores []string
	// StoreSpecs declare the layout of stores among Stores that are not
	// plain key-value stores (windowed aggregations and joins): the Kind,
	// Segment and Retention of their topology.StoreSpec (Build sets the
	// Name). A store with a Retention has a changelog created with
	// broker.CleanupCompactDelete. A store that no node of its
	// sub-topology declares here is a plain key-value store; when nodes
	// declare one store with different retentions, the largest applies,
	// and with different kinds or segments, Build fails.
	StoreSpecs map[string]topology.StoreSpec
	// GlobalStores are the global stores the node reads (see
	// Graph.AddGlobalStore), for Describe.
	GlobalStores []string
	// Detail is a short line on how the step is configured, which
	// Describe prints below the step's line: set by the package that
	// creates the node, for the settings that change what the step emits
	// or keeps (a windowed aggregation's windows, retention and emit
	// strategy; a source's timestamp extractor). "" prints nothing.
	Detail string
	// Routes says the node passes each record to one of its children
	// at most (a split), not to all of them: each record passed to a
	// child counts as a record out (see [Task.EdgeCounters]).
	Routes bool
	// Parents and Children are the in-process edges.
	Parents  []*Node
	Children []*Node
	// Instantiate builds the node's per-task behaviour. For a source it
	// returns a SourceFunc; for other nodes a typed input function the
	// parents assert to their output function type. It calls t.Get on
	// its children to reach them.
	Instantiate func(t *Task) (any, error)

	graph *Graph
}

// Graph reports the graph the node belongs to.
func (n *Node) Graph() *Graph { return n.graph }

// InternalTopic is an internal topic the graph needs.
type InternalTopic struct {
	// Name is the logical name (the runtime prefixes the app id).
	Name string
	// Partitions is the partition count; 0 means "as many as
	// PartitionsLike" or, without it, "as many as the writing
	// sub-topology's sources".
	Partitions int32
	// PartitionsLike names a source topic whose partition count the topic
	// gets (see topology.InternalTopic.PartitionsLike).
	PartitionsLike *topology.Source
	// ReadByWriter allows the sub-topology that writes the topic to read
	// it too (Build refuses that otherwise). A foreign-key join of two
	// tables of one sub-topology, such as a table joined with itself,
	// sends subscriptions and responses through topics its own
	// sub-topology reads; they are sized with PartitionsLike, so the
	// partition count does not depend on itself.
	ReadByWriter bool
	// Writer is the sink node that writes the topic.
	Writer *Node
}

// GlobalStore is a global store the graph needs (see
// topology.GlobalStore).
type GlobalStore struct {
	// Name is the store's name.
	Name string
	// Topic is the external topic that feeds it.
	Topic string
	// Table is the name of the global table that reads Topic into the
	// store, given with stream.Named ("" for none): Describe shows it,
	// and Build checks that no step has it.
	Table string
	// Step names the step that declared it, for errors.
	Step string
}

// Graph is a processing graph under construction. It is not safe for
// concurrent use.
type Graph struct {
	nodes    []*Node
	errs     []error
	internal []InternalTopic
	globals  []GlobalStore
}

// Builder is the core of stream.Builder (type Builder dsl.Builder), so
// that sibling packages reach a builder's graph with a type conversion.
type Builder struct{ graph *Graph }

// NewBuilder returns a Builder with an empty graph.
func NewBuilder() *Builder { return &Builder{graph: NewGraph()} }

// Graph returns b's graph (nil for a nil or zero Builder).
func (b *Builder) Graph() *Graph {
	if b == nil {
		return nil
	}
	return b.graph
}

// AddGlobalStore declares a global store. Build checks its name and
// topic.
func (g *Graph) AddGlobalStore(s GlobalStore) { g.globals = append(g.globals, s) }

// NewGraph returns an empty graph.
func NewGraph() *Graph { return &Graph{} }

// AddError records a wiring error that Build will report.
func (g *Graph) AddError(err error) {
	if err != nil {
		g.errs = append(g.errs, err)
	}
}

// NextID returns the ID the next added node will get.
func (g *Graph) NextID() int { return len(g.nodes) }

// AddNode assigns n its ID (and default name), links it below parents and
// adds it to the graph. Parents from another graph are not linked: an
// error matching ErrForeignStream is recorded instead. It returns n.
func (g *Graph) AddNode(n *Node, parents ...*Node) *Node {
	n.ID = len(g.nodes)
	n.graph = g
	if n.Name == "" {
		n.Name = fmt.Sprintf("%s-%d", n.Op, n.ID)
	} else {
		n.Named = true
	}
	for _, p := range parents {
		if p == nil || p.graph != g {
			g.AddError(fmt.Errorf("%s %q: %w", n.Op, n.Name, ErrForeignStream))
			continue
		}
		n.Parents = append(n.Parents, p)
		p.Children = append(p.Children, n)
	}
	g.nodes = append(g.nodes, n)
	return n
}

// AddInternalTopic declares an internal topic written by t.Writer.
func (g *Graph) AddInternalTopic(t InternalTopic) { g.internal = append(g.internal, t) }

// Nodes returns the graph's nodes in creation order. The slice must not be
// modified.
func (g *Graph) Nodes() []*Node { return g.nodes }

// Stream is the core of a typed stream handle: the node whose output the
// stream carries, and the codecs of its keys and values. Public handle
// types are defined over it (type Stream[K, V any] dsl.Stream[K, V]) so
// sibling packages convert handles without import cycles. The zero Stream
// refers to no node and has no codecs.
//
// The codecs are the handle's: a source's are the ones it was given, a
// step that keeps a type keeps its codec, and a step that makes a new
// type uses codec.For of it unless an option gives one (see [CodecFor],
// [KeyCodec]). Steps that write a topic or a store use them unless an
// option overrides them.
type Stream[K, V any] struct {
	node *Node
	kc   codec.Codec[K]
	vc   codec.Codec[V]
}

// NewStream returns the handle of n's output, with the codecs kc and vc.
func NewStream[K, V any](n *Node, kc codec.Codec[K], vc codec.Codec[V]) Stream[K, V] {
	return Stream[K, V]{node: n, kc: kc, vc: vc}
}

// StreamNode returns the node whose output s carries (nil for the zero
// Stream).
func StreamNode[K, V any](s Stream[K, V]) *Node { return s.node }

// StreamCodecs returns the key and value codecs of s (nil for the zero
// Stream, and for a source given nil codecs, which Build reports).
func StreamCodecs[K, V any](s Stream[K, V]) (codec.Codec[K], codec.Codec[V]) { return s.kc, s.vc }
