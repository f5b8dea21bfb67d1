package table

import (
	"context"
	"fmt"
	"slices"

	"github.com/duality-streams/duality/internal/dsl"
	"github.com/duality-streams/duality/stream"
)

// Join joins every record of s with the current value of its key in t
// (Kafka Streams' KStream#join with a KTable): for a key with a value vt
// at the time the record is processed, it emits joiner(k, v, vt) with the
// record's key, timestamp and headers; records whose key has no value in
// t are dropped. Updates of t emit nothing; only stream records trigger
// the join. Stream records with an absent key or a nil value (tombstones)
// are dropped and logged at Debug, as Kafka Streams does. The step is
// named "join-<n>".
//
// The join reads t's store in the task that processes the stream record,
// so s and t are processed by one sub-topology: partition p of the
// stream's topic is joined with partition p of the table's, and both
// topics must have the same partition count (the runtime and streamtest
// refuse a sub-topology whose source topics differ in partition count).
// Build reports a nil joiner (stream.ErrNilFunc), handles of two builders
// (stream.ErrForeignStream), and stream.ErrNotCoPartitioned when s's keys may
// have changed since its source or last repartition, or when s is
// computed upstream of t's sub-topology.
func Join[K, V, VT, VR any](s stream.Stream[K, V], t Table[K, VT], joiner func(k K, v V, vt VT) VR, opts ...stream.Option) stream.Stream[K, VR] {
	var j func(K, V, VT, bool) (VR, bool)
	if joiner != nil {
		j = func(k K, v V, vt VT, found bool) (VR, bool) {
			if !found {
				var zero VR
				return zero, false
			}
			return joiner(k, v, vt), true
		}
	}
	return join(s, t, "join", j, opts)
}

// LeftJoin is [Join] that keeps every stream record: joiner gets found
// true and the key's value in t, or found false and VT's zero value when
// t has no value for the key (or a Filter of t rejects it). The step is
// named "left-join-<n>"; Build errors as for Join.
func LeftJoin[K, V, VT, VR any](s stream.Stream[K, V], t Table[K, VT], joiner func(k K, v V, vt VT, found bool) VR, opts ...stream.Option) stream.Stream[K, VR] {
	var j func(K, V, VT, bool) (VR, bool)
	if joiner != nil {
		j = func(k K, v V, vt VT, found bool) (VR, bool) { return joiner(k, v, vt, found), true }
	}
	return join(s, t, "left-join", j, opts)
}

func join[K, V, VT, VR any](s stream.Stream[K, V], t Table[K, VT], op string, joiner func(K, V, VT, bool) (VR, bool), opts []stream.Option) stream.Stream[K, VR] {
	sn := dsl.StreamNode(dsl.Stream[K, V](s))
	tn := t.core().Node()
	if sn == nil && tn == nil {
		return stream.Stream[K, VR]{}
	}
	if sn == nil || tn == nil || tn.Graph() != sn.Graph() {
		var g *dsl.Graph
		if sn != nil {
			g = sn.Graph()
		} else {
			g = tn.Graph()
		}
		g.AddError(fmt.Errorf("%s: %w: the stream and the table belong to different builders (or one is the zero value)", op, stream.ErrForeignStream))
		return stream.Stream[K, VR]{}
	}
	lookup := t.core().Lookup()
	store, _ := t.core().Store()
	cfg := dsl.ApplyOptions(opts)
	n := &dsl.Node{Op: op, Kind: dsl.KindProcessor, Name: cfg.Name, Stores: t.core().ReadStores()}
	n.Instantiate = func(task *dsl.Task) (any, error) {
		next, err := dsl.Children(task, n, dsl.CountRecords[*stream.RecordContext, K, VR])
		if err != nil {
			return nil, err
		}
		get, err := lookup(task, n)
		if err != nil {
			return nil, err
		}
		logger := task.Env().Logger().With("node", n.Name, "store", store)
		return emit[K, V](func(ctx context.Context, rc *stream.RecordContext, k K, v V) error {
			if rc.NoKey || rc.Tombstone {
				logger.Debug("dropped a record with an absent key or value",
					"topic", rc.Topic, "partition", rc.Partition, "offset", rc.Offset,
					"no_key", rc.NoKey, "tombstone", rc.Tombstone)
				return nil
			}
			vt, found, err := get(k)
			if err != nil {
				return &stream.NodeError{Node: n.Name, Topic: rc.Topic, Partition: rc.Partition, Offset: rc.Offset, Err: err}
			}
			task.Current = n
			vr, ok := joiner(k, v, vt, found)
			if !ok {
				return nil
			}
			for _, f := range next {
				if err := f(ctx, rc, k, vr); err != nil {
					return err
				}
			}
			return nil
		}), nil
	}
	// The join reads the table's store: it must run in the table's
	// sub-topology. The bridge (a child of the table that ignores its
	// updates) puts the join, and so the stream's steps, in it.
	bridge := &dsl.Node{Op: op + "-table", Kind: dsl.KindProcessor, Name: partName(cfg, "table")}
	bridge.Instantiate = func(*dsl.Task) (any, error) {
		return emit[K, VT](func(context.Context, *stream.RecordContext, K, VT) error { return nil }), nil
	}
	g := sn.Graph()
	sComp, tComp := component(sn), component(tn)
	g.AddNode(bridge, tn)
	g.AddNode(n, sn, bridge)
	skc, svc := dsl.StreamCodecs(dsl.Stream[K, V](s))
	vrc := dsl.ValueCodec(cfg, dsl.CodecFor[VR](svc, t.ValueCodec()))
	cfg.Report(g, op, n.Name, valueOpts...)
	if joiner == nil {
		g.AddError(fmt.Errorf("%s %q: %w", op, n.Name, stream.ErrNilFunc))
	}
	if keyChanged(sn) {
		g.AddError(fmt.Errorf("%w: %s %q: the stream's keys may have changed since it was read (Map, SelectKey, FlatMap or Process), so its records may not sit in the partition of the table's key; call Repartition on the stream before the join", stream.ErrNotCoPartitioned, op, n.Name))
	} else if topic, ok := feeds(sComp, tComp); ok {
		g.AddError(fmt.Errorf("%w: %s %q: the stream is computed in the sub-topology that writes internal topic %q, which the table's sub-topology reads; the join would make one sub-topology read its own output: call Repartition on the stream before the join", stream.ErrNotCoPartitioned, op, n.Name, topic))
	}
	return stream.Stream[K, VR](dsl.NewStream(n, skc, vrc))
}

// keyChangingOps are the operations after which records may sit in the
// wrong partition for their key (as in package stream, which uses them to
// decide when GroupByKey repartitions).
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
		return slices.ContainsFunc(n.Parents, walk)
	}
	return walk(n)
}

// component returns the nodes connected to n by in-process edges, as the
// graph is now.
func component(n *dsl.Node) map[*dsl.Node]bool {
	seen := map[*dsl.Node]bool{n: true}
	stack := []*dsl.Node{n}
	for len(stack) > 0 {
		m := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, o := range slices.Concat(m.Parents, m.Children) {
			if !seen[o] {
				seen[o] = true
				stack = append(stack, o)
			}
		}
	}
	return seen
}

// feeds reports an internal topic written in one of two distinct
// components and read in the other, which merging them would turn into a
// sub-topology reading its own output.
func feeds(a, b map[*dsl.Node]bool) (string, bool) {
	if len(a) == 0 || len(b) == 0 {
		return "", false
	}
	for n := range a {
		if b[n] {
			return "", false // one component already
		}
	}
	check := func(w, r map[*dsl.Node]bool) (string, bool) {
		for s := range w {
			if s.Kind != dsl.KindSink || !s.Internal {
				continue
			}
			for src := range r {
				if src.Kind == dsl.KindSource && src.Internal {
					for _, topic := range s.Topics {
						if slices.Contains(src.Topics, topic) {
							return topic, true
						}
					}
				}
			}
		}
		return "", false
	}
	if topic, ok := check(a, b); ok {
		return topic, true
	}
	return check(b, a)
}
