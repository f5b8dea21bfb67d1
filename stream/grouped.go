package stream

import (
	"fmt"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/internal/dsl"
)

// Grouped is a stream grouped by key, ready for an aggregation of package
// table (table.Count, table.Reduce, table.Aggregate). It carries the
// codecs the aggregation uses for its store, and guarantees that all
// records of one key are processed by one task. Create it with
// [GroupByKey] or [GroupBy]. The zero Grouped belongs to no builder.
type Grouped[K, V any] struct {
	s  Stream[K, V]
	kc codec.Codec[K]
	vc codec.Codec[V]
}

// Stream returns the grouped records as a stream (after the repartition
// topic, if the grouping needed one).
func (g Grouped[K, V]) Stream() Stream[K, V] { return g.s }

// KeyCodec returns the key codec the grouping was created with.
func (g Grouped[K, V]) KeyCodec() codec.Codec[K] { return g.kc }

// ValueCodec returns the value codec the grouping was created with.
func (g Grouped[K, V]) ValueCodec() codec.Codec[V] { return g.vc }

// keyChangingOps are the operations after which records may sit in the
// wrong partition for their key.
var keyChangingOps = map[string]bool{"map": true, "select-key": true, "flat-map": true, "process": true}

// keyChanged reports whether a step between n and its sources (or the
// nearest repartition) may have changed keys.
func keyChanged(n *dsl.Node) bool {
	seen := map[*dsl.Node]bool{}
	var walk func(*dsl.Node) bool
	walk = func(n *dsl.Node) bool {
		if n == nil || seen[n] || n.Kind == dsl.KindSource {
			return false
		}
		seen[n] = true
		if keyChangingOps[n.Op] {
			return true
		}
		for _, p := range n.Parents {
			if walk(p) {
				return true
			}
		}
		return false
	}
	return walk(n)
}

// GroupByKey groups s by its current key, with kc and vc as the codecs of
// the aggregation that follows. If a step since the last source or
// repartition may have changed keys (Map, SelectKey, FlatMap, Process),
// the records first go through an automatic repartition topic
// "<name>-repartition" (name from [Named], default "group-by-key-<n>"),
// as Kafka Streams does; otherwise no topic is added. Options: [Named].
//
// Build reports nil codecs (ErrNilCodec).
func GroupByKey[K, V any](s Stream[K, V], kc codec.Codec[K], vc codec.Codec[V], opts ...Option) Grouped[K, V] {
	p := nodeOf(s)
	if p == nil {
		return Grouped[K, V]{}
	}
	g := p.Graph()
	cfg := dsl.ApplyOptions(opts)
	if keyChanged(p) {
		base := groupName(g, cfg, "group-by-key")
		cfg.Report(g, "group-by-key", base, namedOnly...)
		return Grouped[K, V]{s: repartition(s, base, 0, kc, vc), kc: kc, vc: vc}
	}
	cfg.Report(g, "group-by-key", "after "+p.Name, namedOnly...)
	if kc == nil {
		g.AddError(fmt.Errorf("group-by-key after %q: key codec: %w", p.Name, ErrNilCodec))
	}
	if vc == nil {
		g.AddError(fmt.Errorf("group-by-key after %q: value codec: %w", p.Name, ErrNilCodec))
	}
	return Grouped[K, V]{s: s, kc: kc, vc: vc}
}

// GroupBy groups s by the key fn computes from each record, with kc2 and
// vc as the codecs of the repartition topic and of the aggregation that
// follows. The re-keyed records always go through an automatic
// repartition topic "<name>-repartition" (name from [Named], default
// "group-by-<n>"), so that the records of one new key meet in one task;
// it has as many partitions as the largest source topic before it.
// Name the step to keep the topic's name stable as the topology evolves.
// Options: [Named].
//
// Build reports a nil fn (ErrNilFunc) and nil codecs (ErrNilCodec).
func GroupBy[K, V, K2 any](s Stream[K, V], fn func(K, V) K2, kc2 codec.Codec[K2], vc codec.Codec[V], opts ...Option) Grouped[K2, V] {
	p := nodeOf(s)
	if p == nil {
		return Grouped[K2, V]{}
	}
	g := p.Graph()
	cfg := dsl.ApplyOptions(opts)
	base := groupName(g, cfg, "group-by")
	cfg.Report(g, "group-by", base, namedOnly...)
	keyed := SelectKey(s, fn, Named(base+"-key"))
	return Grouped[K2, V]{s: repartition(keyed, base, 0, kc2, vc), kc: kc2, vc: vc}
}

func groupName(g *dsl.Graph, cfg *dsl.StepConfig, op string) string {
	if cfg.Name != "" {
		return cfg.Name
	}
	return fmt.Sprintf("%s-%d", op, g.NextID())
}
