// Package dsl is the untyped core of the DSL packages (stream, table and
// window): a processing graph of nodes, its validation and split into
// sub-topologies, its text description, the options every step takes, and
// the per-task machinery that instantiates the typed closures the DSL
// packages attach to nodes.
//
// # Nodes
//
// A [Node] records structure only: kind, name, operation, topics, parents
// and children. Its behaviour is the Instantiate function supplied by the
// package that created it; the graph never looks at record types. Public
// packages add nodes with [Graph.AddNode] and hand out typed handles
// defined over [Stream] (type Stream[K, V any] dsl.Stream[K, V]), so a
// sibling package reaches a handle's node with [StreamNode], and its
// codecs with [StreamCodecs], after a type conversion, without import
// cycles.
//
// # Options and codecs
//
// Every step of every DSL package takes options of one type
// (stream.Option: a value with an ApplyStep(*[StepConfig]) method, which
// only this module can define). A step applies them with [ApplyOptions],
// reads what it uses (the name, [KeyCodec] and [ValueCodec] overrides,
// [Ext] for a sibling package's options) and reports with
// [StepConfig.Report] the options it does not take. A handle carries the
// codecs of its keys and values; a step that makes a new type gives it
// [CodecFor] of the type (the input's codec when the type is the input's,
// else codec.For).
//
// # Topologies
//
// [Build] returns a [Topology]: the processing graph in the form of
// package topology, wrapped so that stream.Topology (type Topology
// dsl.Topology) is opaque to users. The runtimes reach the graph with
// [Unwrap]; tests that write a topology by hand wrap it with [Wrap]. Both
// paths run the same validation, the only one before a runtime runs a
// topology: a runtime checks only what needs its app id or its broker.
//
// # Tasks
//
// Each sub-topology's NewTask creates a [Task]: it instantiates every
// node of the sub-topology once (children first, through [Task.Get] and
// [Children], which asserts each child's behaviour to the parent's typed
// output function once per task, never per record) and dispatches input
// records by topic to the [SourceFunc] of the source reading it. Nodes register close and flush hooks with [Task.OnClose] and
// [Task.OnFlush], and skip hooks with [Task.OnSkip], which restore the
// state [Snapshots] keeps. What a node emits on its own (a flushed cache
// entry, a final result) goes through [Task.Item], one unit of work under
// the app's error policy per item.
//
// # Conventions of package stream
//
// Nodes created by package stream, and nodes of sibling packages that
// consume or produce streams, use these behaviours: a source returns a
// [SourceFunc]; every other node that takes K, V records returns
// func(context.Context, *stream.RecordContext, K, V) error (an unnamed
// func type, so any package can assert to it). A node sets Task.Current
// to itself before calling user code so that a recovered panic names it
// (sources, and items emitted through [Task.Item], recover with
// [Task.RecoverStep]), returns a *[NodeError] (stream.NodeError) for its
// own failures, and passes errors from its children through unchanged. A stream handle for node n with codecs
// kc and vc is stream.Stream[K, V](dsl.NewStream(n, kc, vc)).
//
// # Errors
//
// Wiring errors are collected with [Graph.AddError] while the graph is
// built and returned together by [Build] with errors.Join. The sentinels
// here (ErrNoSources, ErrDuplicateName, ...) are re-exported by package
// stream.
package dsl
