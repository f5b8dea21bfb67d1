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
	// ErrWrongStoreKind is matched by the error of a query of a store
	// whose kind (topology.StoreSpec.Kind) the query cannot read: a
	// windowed store queried as a key-value store, or the reverse.
	ErrWrongStoreKind = errors.New("duality: wrong kind of store for this query")
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

// ProcessingError is a processor's failure on one input record, a
// punctuator's failure, or the failure of an item a step emitted as a
// unit of its own (topology.TaskEnv.Item) while the task processed a
// record, ran a punctuation or flushed before a commit
// (duality.ProcessingError is this type). Under the default policy,
// duality.FailOnError, [App.Run] returns it (wrapped); under
// duality.SkipOnError ([Config].SkipOnError) it is passed to the
// callback. Its message names the record (or punctuation, or flush) and
// the item, once: the errors it wraps name only what they add.
type ProcessingError struct {
	// Task is the sub-topology and partition of the failing task.
	Task topology.TaskID
	// Topic, Partition and Offset name the input record. For a
	// punctuator or a flush, Topic is empty and Partition and Offset
	// are -1.
	Topic     string
	Partition int32
	Offset    int64
	// Punctuation is "stream-time" or "wall-clock" for a punctuator's
	// failure (or an item's it emitted), empty otherwise.
	Punctuation string
	// Flush is set for the failure of an item emitted while the task
	// flushed before a commit (a change held by table.EmitPerCommit, an
	// update held by window.CacheUpdates).
	Flush bool
	// Step and Item are set for the failure of an item a step emitted
	// as a unit of its own: Step is the step's name and Item says what
	// the item was, e.g. `change of key a` or
	// `final result of a@[2026-05-01T10:00:00Z,2026-05-01T10:01:00Z)`.
	// Under SkipOnError only that item is skipped: the record,
	// punctuation or flush it was emitted in goes on.
	Step, Item string
	// Err is the processor's error.
	Err error
}

func (e *ProcessingError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "task %s: ", e.Task)
	switch {
	case e.Flush:
		b.WriteString("flush: ")
	case e.Punctuation != "":
		fmt.Fprintf(&b, "%s punctuation: ", e.Punctuation)
	default:
		fmt.Fprintf(&b, "processing record %s/%d at offset %d: ", e.Topic, e.Partition, e.Offset)
	}
	if e.Step != "" {
		fmt.Fprintf(&b, "%s emitted by step %q: ", e.Item, e.Step)
	}
	fmt.Fprintf(&b, "%v", e.Err)
	return b.String()
}

// Unwrap returns the processor's error.
func (e *ProcessingError) Unwrap() error { return e.Err }

// NotOwnedError is returned by a query for a key whose partition this
// instance does not own (duality.NotOwnedError is this type). It matches
// [ErrNotOwned]. Owner is the endpoint (Config.Endpoint) of the instance
// that owns the partition in this instance's current assignment, empty
// when that instance advertises none or the partition is unassigned.
type NotOwnedError struct {
	// Store is the store's name.
	Store string
	// Partition is the key's partition, owned by another instance.
	Partition int32
	// Owner is the endpoint of the partition's owner, or empty.
	Owner string
}

func (e *NotOwnedError) Error() string {
	if e.Owner != "" {
		return fmt.Sprintf("duality: store %s partition %d is not owned by this instance: owner %s", e.Store, e.Partition, e.Owner)
	}
	return fmt.Sprintf("duality: store %s partition %d is not owned by this instance", e.Store, e.Partition)
}

// KeyOwner says which instance of an app owns the partition of a key of
// a store, in the asking instance's current assignment
// (duality.KeyOwner is this type).
type KeyOwner struct {
	// Store is the store's name.
	Store string
	// Partition is the key's partition (0 for a global store).
	Partition int32
	// Endpoint is the owner's endpoint (Config.Endpoint), empty when it
	// advertises none or the partition is unassigned.
	Endpoint string
	// Local is true when this instance owns the partition.
	Local bool
}

// Is reports whether target is [ErrNotOwned].
func (e *NotOwnedError) Is(target error) bool { return target == ErrNotOwned }
