package dsl

import (
	"errors"
	"fmt"
	"time"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/topology"
)

// ErrInvalidTopology is matched by every error of [Wrap]: a topology that
// breaks the contract of package topology. Build reports the wiring
// mistakes a user can make in its own terms (naming the steps), so only a
// topology written by hand (a test's) meets it; the few errors of this
// kind that Build can report also match [ErrTopicConflict] or
// [ErrStoreConflict]. Package stream does not re-export it: users cannot
// write topologies by hand.
var ErrInvalidTopology = errors.New("stream: invalid topology")

// Topology is a built, validated topology: the core of stream.Topology
// (type Topology dsl.Topology), which is opaque outside this module. The
// runtimes reach the processing graph inside with [Unwrap]. It is
// immutable and safe for concurrent use.
type Topology struct {
	t *topology.Topology
	// steps are the nodes of each sub-topology, in creation order, and
	// children every node's children (by node ID) as of Build, for
	// [Topology.Describe]; nil for a topology written by hand.
	steps    [][]*Node
	children [][]*Node
	// globalTables are the names of the global tables that were named
	// (stream.Named), by store, for Describe.
	globalTables map[string]string
}

// Wrap validates t, a topology written by hand (tests of the runtimes
// use them to drive processors directly), and wraps it, so that it runs
// like a built one. It returns every problem at once, each matching
// [ErrInvalidTopology]. t must not be changed afterwards.
func Wrap(t *topology.Topology) (*Topology, error) {
	if err := validate(t); err != nil {
		return nil, err
	}
	return &Topology{t: t}, nil
}

// Unwrap returns the processing graph inside t: nil for a nil or zero
// Topology. The result must not be changed.
func Unwrap(t *Topology) *topology.Topology {
	if t == nil {
		return nil
	}
	return t.t
}

// validate checks that t keeps the contract of package topology, as far
// as it does not depend on the app id (the runtime checks the full names
// of internal topics) or on the broker (partition counts, existing
// topics). Every problem is reported, each matching ErrInvalidTopology;
// conflicts also match ErrTopicConflict or ErrStoreConflict, and invalid
// names broker.ErrInvalidTopicName.
func validate(t *topology.Topology) error {
	if t == nil {
		return fmt.Errorf("%w: nil topology", ErrInvalidTopology)
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidTopology}, args...)...))
	}
	if len(t.SubTopologies) == 0 {
		bad("no sub-topologies (a topology needs at least one source)")
	}
	declared := map[string]bool{} // internal topics, by logical name
	for _, it := range t.InternalTopics {
		if declared[it.Name] {
			bad("internal topic %q declared twice", it.Name)
			continue
		}
		declared[it.Name] = true
		if err := broker.ValidateTopicName(it.Name); err != nil {
			bad("internal topic %q: %w", it.Name, err)
		}
		if it.Partitions < 0 {
			bad("internal topic %q: negative partition count %d", it.Name, it.Partitions)
		}
	}

	// Stores: one sub-topology each; "<name>-changelog" is an internal
	// topic of the runtime's.
	storeOwner := map[string]int{}
	for _, st := range t.SubTopologies {
		if st == nil {
			continue
		}
		for _, ss := range st.Stores {
			if owner, dup := storeOwner[ss.Name]; dup {
				if owner == st.ID {
					bad("%w: sub-topology %d declares store %q twice", ErrStoreConflict, st.ID, ss.Name)
				} else {
					bad("%w: store %q is used by sub-topologies %d and %d; a store belongs to one sub-topology", ErrStoreConflict, ss.Name, owner, st.ID)
				}
				continue
			}
			storeOwner[ss.Name] = st.ID
			changelog := topology.ChangelogTopic(ss.Name)
			if err := broker.ValidateTopicName(changelog); err != nil || ss.Name == "" {
				bad("%w: store %q: it must be a valid topic name (ASCII letters, digits, '.', '_', '-')", broker.ErrInvalidTopicName, ss.Name)
				continue
			}
			if declared[changelog] {
				bad("%w: store %q: its changelog topic %q is also declared as an internal topic", ErrTopicConflict, ss.Name, changelog)
			}
			if ss.Retention < 0 {
				bad("store %q: negative retention %v", ss.Name, ss.Retention)
			}
			switch ss.Kind {
			case topology.StoreWindow, topology.StoreSession:
				if ss.Segment < time.Millisecond || ss.Segment%time.Millisecond != 0 || ss.Retention <= 0 {
					bad("%s store %q: segment interval %v and retention %v must be positive whole milliseconds", ss.Kind, ss.Name, ss.Segment, ss.Retention)
				}
			case topology.StoreKeyValue, topology.StoreJoinBuffer:
				if ss.Segment != 0 {
					bad("%s store %q: segment interval %v; only window and session stores have segments", ss.Kind, ss.Name, ss.Segment)
				}
			default:
				bad("store %q: unknown kind %s", ss.Name, ss.Kind)
			}
		}
	}

	ids := map[int]bool{}
	reader := map[topicKey]int{} // source topic -> the sub-topology reading it
	for i, st := range t.SubTopologies {
		if st == nil {
			bad("sub-topology at index %d is nil", i)
			continue
		}
		if ids[st.ID] {
			bad("sub-topology ID %d used twice", st.ID)
		}
		ids[st.ID] = true
		if st.NewTask == nil {
			bad("sub-topology %d has no NewTask", st.ID)
		}
		if len(st.Sources) == 0 {
			bad("sub-topology %d has no source topics", st.ID)
		}
		check := func(what, topic string, internal bool) bool {
			if internal {
				if !declared[topic] {
					bad("sub-topology %d: %s %q is internal but not declared in InternalTopics", st.ID, what, topic)
					return false
				}
				return true
			}
			if err := broker.ValidateTopicName(topic); err != nil {
				bad("sub-topology %d: %s: %w", st.ID, what, err)
				return false
			}
			return true
		}
		read := map[topicKey]bool{}
		for _, src := range st.Sources {
			if !check("source", src.Topic, src.Internal) {
				continue
			}
			k := topicKey{src.Topic, src.Internal}
			if read[k] {
				bad("%w: sub-topology %d reads %s twice", ErrTopicConflict, st.ID, k)
				continue
			}
			read[k] = true
			if other, ok := reader[k]; ok {
				bad("%w: %s is read by sub-topologies %d and %d; a topic may feed only one sub-topology", ErrTopicConflict, k, other, st.ID)
				continue
			}
			reader[k] = st.ID
		}
		for _, sink := range st.Sinks {
			check("sink", sink.Topic, sink.Internal)
		}
	}

	globalTopics := map[string]string{}
	for _, gs := range t.GlobalStores {
		if _, dup := storeOwner[gs.Name]; dup || gs.Name == "" {
			bad("%w: global store %q: the name is empty or used by another store", ErrStoreConflict, gs.Name)
			continue
		}
		storeOwner[gs.Name] = -1
		if err := broker.ValidateTopicName(gs.Name); err != nil {
			bad("global store %q: %w", gs.Name, err)
		}
		if err := broker.ValidateTopicName(gs.Topic); err != nil {
			bad("global store %q: %w", gs.Name, err)
			continue
		}
		k := topicKey{gs.Topic, false}
		if st, ok := reader[k]; ok {
			bad("%w: %s feeds global store %q and is read by sub-topology %d; a global store's topic feeds only the store", ErrTopicConflict, k, gs.Name, st)
		}
		if other, dup := globalTopics[gs.Topic]; dup {
			bad("%w: %s feeds global stores %q and %q", ErrTopicConflict, k, other, gs.Name)
		}
		globalTopics[gs.Topic] = gs.Name
	}

	for _, it := range t.InternalTopics {
		if !ids[it.WrittenBy] {
			bad("internal topic %q: written by unknown sub-topology %d", it.Name, it.WrittenBy)
		}
		if l := it.PartitionsLike; l != nil {
			if _, ok := reader[topicKey{l.Topic, l.Internal}]; !ok {
				bad("internal topic %q is sized like %s, which no source reads", it.Name, topicKey{l.Topic, l.Internal})
			}
		}
	}
	return errors.Join(errs...)
}
