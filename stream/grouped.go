package stream

import (
	"fmt"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/internal/dsl"
)

// Grouped is a stream grouped by key, ready for an aggregation of package
// table (table.Count, table.Reduce, table.Aggregate) or window. It carries
// the codecs the aggregation uses for its store, and guarantees that all
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

// KeyCodec returns the key codec of the grouping: the stream's, or the
// one WithKeyCodec gave.
func (g Grouped[K, V]) KeyCodec() codec.Codec[K] { return g.kc }

// ValueCodec returns the value codec of the grouping: the stream's, or the
// one WithValueCodec gave.
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

// GroupByKey groups s by its current key, for an aggregation that
// stores keys and values with the stream's codecs (or the ones
// [WithKeyCodec] and [WithValueCodec] give). If a step since the last
// source or repartition may have changed keys (Map, SelectKey, FlatMap,
// Process), the records first go through an automatic repartition topic
// "<name>-repartition" (name from [Named], default "group-by-key-<n>"),
// written with those codecs, as Kafka Streams does; otherwise no topic is
// added. Options: [Named], [WithKeyCodec], [WithValueCodec].
//
// A windowed step after a repartition needs a grace period that covers
// how out of order the repartition topic is: see [GroupBy].
//
// Build reports nil codecs (ErrNilCodec).
func GroupByKey[K, V any](s Stream[K, V], opts ...Option) Grouped[K, V] {
	p := nodeOf(s)
	if p == nil {
		return Grouped[K, V]{}
	}
	g := p.Graph()
	cfg := dsl.ApplyOptions(opts)
	kc, vc := codecsOf(s)
	kc, vc = dsl.KeyCodec(cfg, kc), dsl.ValueCodec(cfg, vc)
	if keyChanged(p) {
		base := groupName(g, cfg, "group-by-key")
		cfg.Report(g, "group-by-key", base, codecOpts...)
		return Grouped[K, V]{s: repartition(s, base, 0, kc, vc), kc: kc, vc: vc}
	}
	cfg.Report(g, "group-by-key", "after "+p.Name, codecOpts...)
	if kc == nil {
		g.AddError(fmt.Errorf("group-by-key after %q: key codec: %w", p.Name, ErrNilCodec))
	}
	if vc == nil {
		g.AddError(fmt.Errorf("group-by-key after %q: value codec: %w", p.Name, ErrNilCodec))
	}
	return Grouped[K, V]{s: s, kc: kc, vc: vc}
}

// GroupBy groups s by the key fn computes from each record, for an
// aggregation that stores the new keys with codec.For[K2] (or the codec
// [WithKeyCodec] gives) and values with the stream's value codec (or the
// one [WithValueCodec] gives). The re-keyed records always go through an
// automatic repartition topic "<name>-repartition" (name from [Named],
// default "group-by-<n>"), written with those codecs, so that the records
// of one new key meet in one task; it has as many partitions as the
// largest source topic before it. Name the step to keep the topic's name
// stable as the topology evolves. Options: [Named], [WithKeyCodec],
// [WithValueCodec].
//
// Event time after a repartition: each partition of the repartition topic
// interleaves the records of every upstream task in the order they were
// written. While the upstream tasks work through a backlog (at a first
// start, after a restart, when catching up), each writes whole fetch
// batches at a time, so event times in the repartition topic jump back
// and forth by as much as an upstream fetch batch spans in event time
// (duality.FetchMaxRecords records of a partition: often tens of seconds
// or more). A windowed step (package window) after the repartition needs
// a grace period at least that long, or it drops the records that arrive
// behind its stream time as late: they are counted
// (duality.Metrics.LateRecordsDropped) and logged at Warn.
//
// Build reports a nil fn (ErrNilFunc) and nil codecs (ErrNilCodec).
func GroupBy[K, V, K2 any](s Stream[K, V], fn func(K, V) K2, opts ...Option) Grouped[K2, V] {
	p := nodeOf(s)
	if p == nil {
		return Grouped[K2, V]{}
	}
	g := p.Graph()
	cfg := dsl.ApplyOptions(opts)
	base := groupName(g, cfg, "group-by")
	kc, vc := codecsOf(s)
	kc2, vc2 := outCodecs[K2, V](cfg, codecOpts, kc, vc)
	cfg.Report(g, "group-by", base, codecOpts...)
	keyed := SelectKey(s, fn, Named(base+"-key"), WithKeyCodec(kc2))
	return Grouped[K2, V]{s: repartition(keyed, base, 0, kc2, vc2), kc: kc2, vc: vc2}
}

func groupName(g *dsl.Graph, cfg *dsl.StepConfig, op string) string {
	if cfg.Name != "" {
		return cfg.Name
	}
	return fmt.Sprintf("%s-%d", op, g.NextID())
}
