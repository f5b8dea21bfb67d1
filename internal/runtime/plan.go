package runtime

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/topology"
)

// plan is a topology checked and resolved to broker topic names.
type plan struct {
	appID string
	subs  []*subPlan
	// bySource maps a source topic (broker name) to the sub-topology
	// reading it; a topic has at most one reader.
	bySource map[string]*subPlan
	// sourceTopics are all source topics (broker names), sorted.
	sourceTopics []string
	// external are the external source and fixed sink topics, sorted.
	external []string
	internal []internalPlan
	// purge holds the internal topics (broker names) the runtime purges
	// up to the committed offsets: those declared by the topology
	// (repartition, foreign-key subscription and response topics) with
	// CleanupDelete, not changelogs.
	purge map[string]bool
	// globals are the global stores, each fed by an external topic.
	globals []globalPlan
	// staged are the source topics the topology also writes (internal
	// topics, and external topics it writes and reads back): a bounded
	// run reads them until caught up, not up to an end (see endRun).
	staged map[string]bool
}

type globalPlan struct {
	name  string
	topic string // broker name
}

type subPlan struct {
	st      *topology.SubTopology
	sources []string // broker names, in declaration order
	sinks   []string // broker names of the topics it writes
	stores  []storePlan
}

type storePlan struct {
	name      string
	changelog string // broker name of its changelog topic
}

type internalPlan struct {
	name       string // broker name
	logical    string
	partitions int32  // declared; 0 = resolve from like or the writer's sources
	like       string // broker name of the topic to size it like, or ""
	writtenBy  int
	cleanup    broker.CleanupPolicy
	retention  time.Duration // RetentionTime of a CleanupCompactDelete topic
}

func internalName(appID, logical string) string { return topology.InternalTopicName(appID, logical) }

// newPlan resolves the topic names of topo, a topology package dsl has
// validated (Build, or Wrap for one written by hand), with the app id.
// It reports the problems that need the app id, each matching
// ErrInvalidTopology: an internal topic or changelog whose full name
// "<app-id>-<name>" is not a valid topic name (too long) or is the name
// of an external topic of the topology. A nil topo is one too.
func newPlan(appID string, topo *topology.Topology) (*plan, error) {
	if topo == nil {
		return nil, fmt.Errorf("%w: nil topology", ErrInvalidTopology)
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidTopology}, args...)...))
	}
	p := &plan{appID: appID, bySource: map[string]*subPlan{}, purge: map[string]bool{}, staged: map[string]bool{}}
	for _, it := range topo.InternalTopics {
		name := internalName(appID, it.Name)
		if err := broker.ValidateTopicName(name); err != nil {
			bad("internal topic %q: %v", it.Name, err)
		}
		var like string
		if l := it.PartitionsLike; l != nil {
			like = l.Topic
			if l.Internal {
				like = internalName(appID, l.Topic)
			}
		}
		p.internal = append(p.internal, internalPlan{
			name: name, logical: it.Name, partitions: it.Partitions, like: like,
			writtenBy: it.WrittenBy, cleanup: it.Cleanup,
		})
		if it.Cleanup == broker.CleanupDelete {
			p.purge[name] = true
		}
	}

	// Changelog topics: compacted (and deleted by time for windowed
	// stores), one partition per task of the sub-topology that owns the
	// store.
	external := map[string]bool{}
	for _, st := range topo.SubTopologies {
		sp := &subPlan{st: st}
		for _, ss := range st.Stores {
			logical := topology.ChangelogTopic(ss.Name)
			name := internalName(appID, logical)
			if err := broker.ValidateTopicName(name); err != nil {
				bad("store %q: changelog topic: %v", ss.Name, err)
			}
			cleanup, retention := ss.Changelog()
			p.internal = append(p.internal, internalPlan{name: name, logical: logical, writtenBy: st.ID, cleanup: cleanup, retention: retention})
			sp.stores = append(sp.stores, storePlan{name: ss.Name, changelog: name})
		}
		for _, src := range st.Sources {
			name := src.Topic
			if src.Internal {
				name = internalName(appID, src.Topic)
				p.staged[name] = true
			} else {
				external[name] = true
			}
			p.bySource[name] = sp
			sp.sources = append(sp.sources, name)
			p.sourceTopics = append(p.sourceTopics, name)
		}
		for _, sink := range st.Sinks {
			name := sink.Topic
			if sink.Internal {
				name = internalName(appID, sink.Topic)
			} else {
				external[name] = true
			}
			sp.sinks = append(sp.sinks, name)
		}
		p.subs = append(p.subs, sp)
	}
	for _, gs := range topo.GlobalStores {
		external[gs.Topic] = true
		p.globals = append(p.globals, globalPlan{name: gs.Name, topic: gs.Topic})
	}
	for _, it := range p.internal {
		if external[it.name] {
			bad("internal topic %q of app %q is named %q, like an external topic of the topology", it.logical, appID, it.name)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	slices.Sort(p.sourceTopics)
	for _, sp := range p.subs {
		for _, sink := range sp.sinks {
			if p.bySource[sink] != nil {
				p.staged[sink] = true
			}
		}
	}
	for name := range external {
		p.external = append(p.external, name)
	}
	slices.Sort(p.external)
	return p, nil
}

// checkDeadLetter reports, as an error matching ErrInvalidConfig, a
// dead-letter topic name that is not a valid topic name or is a topic
// of the topology: a source (its
// dead letters would be read again and fail again), a sink, a global
// store's topic, an internal topic or a changelog.
func (p *plan) checkDeadLetter(name string) error {
	if err := broker.ValidateTopicName(name); err != nil {
		return fmt.Errorf("%w: dead-letter topic: %w", ErrInvalidConfig, err) // "<app id>-dlq" too long
	}
	used := slices.Contains(p.external, name) || slices.Contains(p.sourceTopics, name) ||
		slices.ContainsFunc(p.internal, func(it internalPlan) bool { return it.name == name })
	for _, sp := range p.subs {
		used = used || slices.Contains(sp.sinks, name)
	}
	if used {
		return fmt.Errorf("%w: dead-letter topic %q is a topic the topology reads or writes: dead letters need a topic of their own", ErrInvalidConfig, name)
	}
	return nil
}

func (p *plan) hasStores() bool {
	if len(p.globals) > 0 {
		return true
	}
	for _, sp := range p.subs {
		if len(sp.stores) > 0 {
			return true
		}
	}
	return false
}

func (p *plan) sub(id int) *subPlan {
	for _, sp := range p.subs {
		if sp.st.ID == id {
			return sp
		}
	}
	return nil
}

// tasksFor creates the tasks of an assignment: for each assigned partition
// number p and each sub-topology with a source topic assigned at p, one task
// reading partition p of those source topics. Tasks are sorted by partition,
// then sub-topology.
func (p *plan) tasksFor(asg broker.Assignment) []*task {
	byPart := map[int32]map[string]bool{}
	var nums []int32
	for _, tp := range asg.Partitions {
		if byPart[tp.Partition] == nil {
			byPart[tp.Partition] = map[string]bool{}
			nums = append(nums, tp.Partition)
		}
		byPart[tp.Partition][tp.Topic] = true
	}
	slices.Sort(nums)
	var tasks []*task
	for _, n := range nums {
		for _, sp := range p.subs {
			var t *task
			for _, src := range sp.sources {
				if !byPart[n][src] {
					continue
				}
				if t == nil {
					t = &task{id: topology.TaskID{SubTopology: sp.st.ID, Partition: n}, sub: sp}
					tasks = append(tasks, t)
				}
				t.parts = append(t.parts, &partState{tp: broker.TopicPartition{Topic: src, Partition: n}, task: t,
					purge: p.purge[src], stop: math.MaxInt64})
			}
		}
	}
	return tasks
}

// ensureTopics checks that every external topic exists, resolves the
// partition counts of internal topics and creates the missing ones. The
// partition count rules it relies on: an internal topic's count is declared
// or resolved from its writer's sources, and an existing internal topic has
// that count. Sources of one sub-topology may differ in partition count: a
// task reads partition p of those that have it, unless the sub-topology
// keeps state (topology.ErrNotCoPartitioned). When deadLetter is not
// empty it also checks or creates the dead-letter topic of that name (see
// ensureDeadLetter). It returns the partition count of every topic that
// exists.
func (p *plan) ensureTopics(ctx context.Context, b broker.Broker, deadLetter string) (map[string]int32, error) {
	infos, err := b.ListTopics(ctx)
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	existing := make(map[string]int32, len(infos))
	for _, ti := range infos {
		existing[ti.Name] = ti.Config.Partitions
	}
	var missing []string
	for _, name := range p.external {
		if _, ok := existing[name]; !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, &MissingTopicsError{Topics: missing}
	}

	// Resolve internal partition counts; a count of 0 is the largest
	// count among the sources of the writing sub-topology, which may
	// themselves be internal.
	byName := map[string]*internalPlan{}
	for i := range p.internal {
		byName[p.internal[i].name] = &p.internal[i]
	}
	counts := map[string]int32{}
	visiting := map[string]bool{}
	var count func(topic string) (int32, error)
	count = func(topic string) (int32, error) {
		if n, ok := counts[topic]; ok {
			return n, nil
		}
		it := byName[topic]
		if it == nil { // external, checked above
			return existing[topic], nil
		}
		if it.partitions > 0 {
			counts[topic] = it.partitions
			return it.partitions, nil
		}
		if visiting[topic] {
			return 0, fmt.Errorf("%w: internal topic %q: partition count depends on itself", ErrInvalidTopology, it.logical)
		}
		visiting[topic] = true
		defer delete(visiting, topic)
		if it.like != "" {
			n, err := count(it.like)
			if err == nil && n == 0 {
				err = fmt.Errorf("%w: internal topic %q: cannot resolve its partition count", ErrInvalidTopology, it.logical)
			}
			if err != nil {
				return 0, err
			}
			counts[topic] = n
			return n, nil
		}
		var n int32
		for _, src := range p.sub(it.writtenBy).sources {
			m, err := count(src)
			if err != nil {
				return 0, err
			}
			n = max(n, m)
		}
		if n == 0 {
			return 0, fmt.Errorf("%w: internal topic %q: cannot resolve its partition count", ErrInvalidTopology, it.logical)
		}
		counts[topic] = n
		return n, nil
	}
	var errs []error
	for _, it := range p.internal {
		want, err := count(it.name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if have, ok := existing[it.name]; ok {
			if have != want {
				errs = append(errs, fmt.Errorf("%w: topic %q has %d partitions, the topology needs %d (delete it or fix the topology)", ErrPartitionMismatch, it.name, have, want))
			}
			continue
		}
		cfg := broker.TopicConfig{Partitions: want, Cleanup: it.cleanup}
		if it.cleanup == broker.CleanupDelete {
			// Records keep their event timestamps; time retention could
			// delete repartitioned records before they are processed.
			cfg.RetentionTime = -1
		}
		if it.cleanup == broker.CleanupCompactDelete {
			cfg.RetentionTime = it.retention
		}
		err = b.CreateTopic(ctx, it.name, cfg)
		if errors.Is(err, broker.ErrTopicExists) { // created concurrently by another instance
			var ti broker.TopicInfo
			if ti, err = b.DescribeTopic(ctx, it.name); err == nil && ti.Config.Partitions != want {
				err = fmt.Errorf("%w: topic %q has %d partitions, the topology needs %d", ErrPartitionMismatch, it.name, ti.Config.Partitions, want)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("create internal topic %q: %w", it.name, err))
			continue
		}
		existing[it.name] = want
	}
	// A sub-topology that keeps state (an aggregation, a table, a join)
	// needs the records of one key in one task: its sources must be
	// co-partitioned. A stateless one may read topics of different counts.
	for _, sp := range p.subs {
		if len(sp.stores) == 0 || len(sp.sources) < 2 {
			continue
		}
		var desc []string
		same := true
		first := int32(-1)
		for _, src := range sp.sources {
			n, err := count(src)
			if err != nil {
				break // reported above
			}
			if first < 0 {
				first = n
			}
			same = same && n == first
			desc = append(desc, fmt.Sprintf("%s: %d", src, n))
		}
		if !same {
			errs = append(errs, fmt.Errorf("%w: sub-topology %d keeps state and reads topics with different partition counts (%s); records of one key would reach different tasks: give the topics the same partition count, or Repartition the stream before the join or aggregation",
				topology.ErrNotCoPartitioned, sp.st.ID, strings.Join(desc, ", ")))
		}
	}
	if deadLetter != "" && len(errs) == 0 {
		var sources int32 = 1
		for _, src := range p.sourceTopics {
			sources = max(sources, existing[src])
		}
		n, err := ensureDeadLetter(ctx, b, infos, deadLetter, sources)
		if err != nil {
			errs = append(errs, err)
		}
		existing[deadLetter] = n
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return existing, nil
}

// ensureDeadLetter creates the dead-letter topic name when it is not
// among infos (the topics that exist), as the internal topics are
// created: partitions partitions (the most of any source topic, so that
// a dead letter keeps its record's partition number), cleanup by
// deletion, kept forever (a dead letter keeps its record's timestamp,
// which time retention would judge). A dead-letter topic that exists is
// used as it is, whatever its partition count, unless it is compacted:
// compaction would keep only the newest dead letter of each key. It
// returns the topic's partition count.
func ensureDeadLetter(ctx context.Context, b broker.Broker, infos []broker.TopicInfo, name string, partitions int32) (int32, error) {
	i := slices.IndexFunc(infos, func(ti broker.TopicInfo) bool { return ti.Name == name })
	var ti broker.TopicInfo
	if i >= 0 {
		ti = infos[i]
	} else {
		err := b.CreateTopic(ctx, name, broker.TopicConfig{Partitions: partitions, Cleanup: broker.CleanupDelete, RetentionTime: -1})
		if !errors.Is(err, broker.ErrTopicExists) { // else created concurrently by another instance
			if err != nil {
				return 0, fmt.Errorf("create dead-letter topic %q: %w", name, err)
			}
			return partitions, nil
		}
		if ti, err = b.DescribeTopic(ctx, name); err != nil {
			return 0, fmt.Errorf("dead-letter topic %q: %w", name, err)
		}
	}
	if c := ti.Config.Cleanup; c != broker.CleanupDelete {
		return 0, fmt.Errorf("dead-letter topic %q has cleanup policy %v: compaction would keep only the newest dead letter of each key (use a topic with cleanup policy delete)", name, c)
	}
	return ti.Config.Partitions, nil
}
