package runtime

import (
	"errors"
	"fmt"
	"strings"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/topology"
)

// Sentinel errors of the runtime. The root package re-exports them
// (duality.ErrInvalidConfig is ErrInvalidConfig, ...). The runtime also
// returns the contract's topology.ErrUnknownStore and
// topology.ErrNotCoPartitioned, which package stream re-exports.
var (
	// ErrInvalidConfig is matched by every error New returns for a bad
	// app id, a nil broker or an invalid option.
	ErrInvalidConfig = errors.New("duality: invalid config")
	// ErrInvalidTopology is matched by errors New returns for a topology
	// the app cannot run under its app id: nil, or an internal topic or
	// changelog whose full name "<app-id>-<name>" is not a valid topic
	// name or is the name of an external topic of the topology. Build
	// has checked the rest.
	ErrInvalidTopology = errors.New("duality: invalid topology")
	// ErrRunCalled is returned by a second call of [App.Run] or
	// [App.RunToEnd]: an App runs once.
	ErrRunCalled = errors.New("duality: Run already called")
	// ErrPartitionMismatch is matched by errors about an existing internal
	// topic whose partition count differs from the one the topology needs.
	ErrPartitionMismatch = errors.New("duality: internal topic partition count mismatch")
	// ErrStoreNotReady is matched by query errors while the store partition
	// cannot be read yet: the app is not running, it is joining the group
	// or rebalancing, or the partition is being restored from its
	// changelog. The query may succeed if retried later.
	ErrStoreNotReady = errors.New("duality: store not ready")
	// ErrNotOwned is matched by a *[NotOwnedError]: the key's partition is
	// assigned to another instance of the app.
	ErrNotOwned = errors.New("duality: store partition not owned by this instance")
	// ErrShutdownTimeout is matched by the error [App.Run] returns when
	// broker calls were still running ShutdownTimeout after it began to
	// stop, and it abandoned them (see [Config].ShutdownTimeout): the
	// error says what was not committed.
	ErrShutdownTimeout = errors.New("duality: shutdown timed out")
)

// MissingTopicsError is returned by [App.Run] when external source or sink
// topics do not exist (duality.MissingTopicsError is this type). The
// runtime creates only internal topics; external ones must be created by
// the operator. It matches [broker.ErrUnknownTopic].
type MissingTopicsError struct {
	// Topics are the missing topic names, sorted.
	Topics []string
}

func (e *MissingTopicsError) Error() string {
	return fmt.Sprintf("missing topics %s: create them before running the app", strings.Join(e.Topics, ", "))
}

// Is reports whether target is [broker.ErrUnknownTopic].
func (e *MissingTopicsError) Is(target error) bool { return target == broker.ErrUnknownTopic }

// ProcessingError is a processor's failure on one input record, or a
// punctuator's failure (duality.ProcessingError is this type). Under the
// default policy, duality.FailOnError, [App.Run] returns it (wrapped);
// under duality.SkipOnError ([Config].SkipOnError) it is passed to the
// callback. Its message names the record (or punctuation), once: the
// errors it wraps name only what they add.
type ProcessingError struct {
	// Task is the sub-topology and partition of the failing task.
	Task topology.TaskID
	// Topic, Partition and Offset name the input record. For a
	// punctuator, Topic is empty and Partition and Offset are -1.
	Topic     string
	Partition int32
	Offset    int64
	// Punctuation is "stream-time" or "wall-clock" for a punctuator's
	// failure, empty for a record's.
	Punctuation string
	// Err is the processor's error.
	Err error
}

func (e *ProcessingError) Error() string {
	if e.Punctuation != "" {
		return fmt.Sprintf("task %s: %s punctuation: %v", e.Task, e.Punctuation, e.Err)
	}
	return fmt.Sprintf("task %s: processing record %s/%d at offset %d: %v", e.Task, e.Topic, e.Partition, e.Offset, e.Err)
}

// Unwrap returns the processor's error.
func (e *ProcessingError) Unwrap() error { return e.Err }

// NotOwnedError is returned by a query for a key whose partition this
// instance does not own (duality.NotOwnedError is this type). It matches
// [ErrNotOwned]. Another instance of the app may own it; Duality does not
// forward queries between instances.
type NotOwnedError struct {
	// Store is the store's name.
	Store string
	// Partition is the key's partition, owned by another instance.
	Partition int32
}

func (e *NotOwnedError) Error() string {
	return fmt.Sprintf("duality: store %s partition %d is not owned by this instance", e.Store, e.Partition)
}

// Is reports whether target is [ErrNotOwned].
func (e *NotOwnedError) Is(target error) bool { return target == ErrNotOwned }
