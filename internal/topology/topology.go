// Package topology is the contract between the DSL packages (stream, table,
// window), which build a processing graph, and the runtime, which executes
// it. Everything here is bytes at the edges: codecs live inside the closures
// that NewTask creates.
package topology

import (
	"context"
	"log/slog"
	"time"

	"github.com/duality-streams/duality/broker"
)

// Topology is a built, validated processing graph.
type Topology struct {
	// SubTopologies are the independent parts of the graph: nodes joined
	// by in-process edges. A repartition topic separates two of them.
	SubTopologies []*SubTopology
	// InternalTopics are the topics the runtime creates for the app, by
	// logical name (the runtime names them "<app-id>-<name>").
	InternalTopics []InternalTopic
	// Description is the readable text form printed by Describe.
	Description string
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
	// NewTask instantiates the graph for one task. It is called once per
	// task, from the goroutine that will call the returned Processor.
	NewTask func(env TaskEnv) (Processor, error)
}

// InternalTopic is a topic the runtime creates (repartition topics;
// changelogs later).
type InternalTopic struct {
	Name string // logical name, e.g. "by-user-repartition"
	// Partitions is the partition count; 0 means the largest partition
	// count among the source topics of the sub-topology that writes it.
	Partitions int32
	// WrittenBy is the ID of the sub-topology that writes the topic.
	WrittenBy int
	Cleanup   broker.CleanupPolicy
}

// TaskID names a task: a sub-topology and a partition number.
type TaskID struct {
	SubTopology int
	Partition   int32
}

// TaskEnv is what a task's processors get from the runtime. It is used by
// one goroutine at a time.
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
}

// Processor is one instantiated task graph.
type Processor interface {
	// Process runs one input record through the graph. rec.Topic is the
	// broker topic name. A returned error fails the record; the runtime
	// applies the app's error policy.
	Process(ctx context.Context, rec *broker.Record) error
	// Flush is called before every commit; processors with caches write
	// them out here (through Send).
	Flush(ctx context.Context) error
	// Close releases the task's resources.
	Close() error
}
