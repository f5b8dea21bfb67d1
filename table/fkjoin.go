package table

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/internal/dsl"
	"github.com/duality-streams/duality/internal/tablecore"
	"github.com/duality-streams/duality/internal/topology"
	"github.com/duality-streams/duality/stream"
)

// JoinByForeignKey joins every row of left with the row of right whose key
// is the foreign key fk extracts from the left row's value (Kafka Streams'
// KTable#join(other, foreignKeyExtractor, joiner), KIP-213), and returns
// the table of results, keyed by left's keys: for a left row (k, v) whose
// foreign key fk(v) has the value vo in right, the result has the row
// (k, joiner(v, vo)); a left row whose foreign key is absent from right
// has no result row. Results follow both sides:
//
//   - a left insert or update emits the new result once right's side has
//     answered; an update whose foreign key right does not hold emits a
//     tombstone that retracts the old result, and a left delete emits a
//     tombstone (tombstones only for result rows that existed);
//   - a right update re-emits the result of every left row that refers to
//     its key, and a right delete emits a tombstone for each of them.
//
// The results arrive asynchronously: a left update is answered after a
// round trip through right's side, and when a left row changes again
// before the answer to its previous value arrives, that answer is dropped
// (Kafka Streams' hash check): a result always pairs the left row's
// current value with the right row of that value's foreign key.
//
// left and right may have different partition counts, because the join
// runs on both sides and sends records between them through two internal
// topics the runtime creates (see the package documentation, "Foreign-key
// joins"): "<store>-subscription-registration", keyed by foreign key and
// partitioned like right's topic, and "<store>-subscription-response",
// partitioned like left's. Right's side keeps the subscriptions (which
// left keys refer to which foreign key) in the state store
// "<store>-subscription-store"; the results are materialised in the state
// store named store, keyed by left's keys encoded with left's key codec,
// so they can be queried and joined further. Both stores are logged to
// changelog topics and restored from them like an aggregation's.
//
// The tables' codecs encode what crosses the internal topics and the
// stores: left's key and value codecs its keys and values, right's key
// codec the foreign keys (as right's topic is keyed, because
// subscriptions are partitioned by those bytes with Kafka's default
// partitioner), right's value codec its values; the results are stored
// with codec.For[VR] (left's or right's value codec when VR is V or VO),
// or the codec stream.WithValueCodec gives. Left's value codec must be
// deterministic: a response from right is applied only if the hash of
// left's current value, encoded, equals the hash sent with the
// subscription, which is how responses made stale by a newer left update
// are dropped. A left row with no foreign key needs a key right never
// holds (for example "").
//
// Options: stream.Named (default: the result step "fk-join-<n>" and its
// parts "fk-join-subscribe-<n>", ...; named, the parts are
// "<name>-subscribe", "<name>-subscription", "<name>-foreign",
// "<name>-subscription-sink", ...), stream.WithValueCodec. Build reports
// nil functions
// (stream.ErrNilFunc), nil codecs (stream.ErrNilCodec), an invalid store
// name (stream.ErrInvalidOption), a store name already used
// (stream.ErrStoreConflict) and tables of two builders
// (stream.ErrForeignStream). left and right may be one table (a
// self-join: employees with their manager's row) or tables of one
// sub-topology, which then reads the internal topics it writes.
func JoinByForeignKey[K, V, KO, VO, VR any](left Table[K, V], right Table[KO, VO], fk func(v V) KO, joiner func(v V, vo VO) VR,
	store string, opts ...stream.Option) Table[K, VR] {
	var j func(V, VO, bool) VR
	if joiner != nil {
		j = func(v V, vo VO, _ bool) VR { return joiner(v, vo) }
	}
	return fkJoin(fkSpec[K, V, KO, VO, VR]{op: "fk-join", left: left, right: right, fk: fk, joiner: j, store: store, opts: opts})
}

// LeftJoinByForeignKey is [JoinByForeignKey] that keeps every left row
// (Kafka Streams' KTable#leftJoin with a foreign-key extractor): joiner
// gets found true and the right row's value, or found false and VO's zero
// value when right has no row for the foreign key (or a Filter of right
// rejects it). A left row therefore always has a result row: a right
// delete re-emits joiner(v, zero, false) for the rows that referred to
// it, and only a left delete emits a tombstone. The steps are named
// "fk-left-join-..."; arguments, topics, stores and Build errors as for
// JoinByForeignKey.
func LeftJoinByForeignKey[K, V, KO, VO, VR any](left Table[K, V], right Table[KO, VO], fk func(v V) KO, joiner func(v V, vo VO, found bool) VR,
	store string, opts ...stream.Option) Table[K, VR] {
	return fkJoin(fkSpec[K, V, KO, VO, VR]{op: "fk-left-join", leftJoin: true, left: left, right: right, fk: fk, joiner: joiner, store: store, opts: opts})
}

// fkSpec is one foreign-key join as the user declared it, with the codecs
// fkJoin takes from the tables and the options.
type fkSpec[K, V, KO, VO, VR any] struct {
	op       string
	leftJoin bool
	left     Table[K, V]
	right    Table[KO, VO]
	fk       func(V) KO
	joiner   func(V, VO, bool) VR
	kc       codec.Codec[K]
	vc       codec.Codec[V]
	koc      codec.Codec[KO]
	voc      codec.Codec[VO]
	vrc      codec.Codec[VR]
	store    string
	opts     []stream.Option
}

// Internal names of a foreign-key join, derived from its store.
func fkSubscriptionTopic(store string) string { return store + "-subscription-registration" }
func fkResponseTopic(store string) string     { return store + "-subscription-response" }
func fkSubscriptionStore(store string) string { return store + "-subscription-store" }

// fkSend is the per-task input function of the join's byte-level steps
// (its internal sources, sinks and the steps between them): an encoded
// key and value, and the partition to write them to (a sink's choice;
// broker.PartitionByKey for the subscription topic).
type fkSend = func(ctx context.Context, rc *stream.RecordContext, key, value []byte, partition int32) error

// countSend returns f counting each call in in and out (see
// dsl.Task.EdgeCounters).
func countSend(f fkSend, in, out *uint64) fkSend {
	return func(ctx context.Context, rc *stream.RecordContext, key, value []byte, partition int32) error {
		*in++
		*out++
		return f(ctx, rc, key, value, partition)
	}
}

// fkJoin builds the join's graph. On the left table's sub-topology:
//
//	left table -> subscribe -> sink (subscription topic)
//	source (response topic) -> result (reads left's store, writes store)
//
// and on the right table's:
//
//	source (subscription topic) -> subscription (reads right's store,
//	  writes the subscription store) -> sink (response topic)
//	right table -> foreign (scans the subscription store) -> the same sink
//
// The result step has the subscribe step as a second parent that never
// calls it: the edge puts it in the left table's sub-topology, whose
// store it reads.
func fkJoin[K, V, KO, VO, VR any](sp fkSpec[K, V, KO, VO, VR]) Table[K, VR] {
	ln, rn := sp.left.core().Node(), sp.right.core().Node()
	if ln == nil && rn == nil {
		return Table[K, VR]{}
	}
	if ln == nil || rn == nil || ln.Graph() != rn.Graph() {
		g := rn
		if ln != nil {
			g = ln
		}
		g.Graph().AddError(fmt.Errorf("%s: %w: the left and right tables belong to different builders (or one is the zero Table)", sp.op, stream.ErrForeignStream))
		return Table[K, VR]{}
	}
	g := ln.Graph()
	cfg := dsl.ApplyOptions(sp.opts)
	sp.kc, sp.vc = sp.left.KeyCodec(), sp.left.ValueCodec()
	sp.koc, sp.voc = sp.right.KeyCodec(), sp.right.ValueCodec()
	sp.vrc = dsl.ValueCodec(cfg, dsl.CodecFor[VR](sp.vc, sp.voc))
	subTopic, respTopic := fkSubscriptionTopic(sp.store), fkResponseTopic(sp.store)
	subStore := fkSubscriptionStore(sp.store)
	leftSource, rightSource := sourceOf(ln), sourceOf(rn)

	// Left side: the subscribe step and the subscription sink.
	subscribe := &dsl.Node{Op: sp.op + "-subscribe", Name: partName(cfg, "subscribe"), Kind: dsl.KindProcessor}
	subSink := &dsl.Node{Op: sp.op + "-subscription-sink", Name: partName(cfg, "subscription-sink"), Kind: dsl.KindSink, Topics: []string{subTopic}, Internal: true}
	sp.left.core().AttachChanges(subscribe, true, func(task *dsl.Task) (tablecore.ChangeFn[K, V], error) {
		return sp.subscribe(task, subscribe, subSink)
	})
	subSink.Instantiate = fkSink(subSink, subTopic)
	g.AddNode(subSink, subscribe)

	// Right side: the subscription source, the subscription step, the
	// foreign step and the response sink.
	subSource := &dsl.Node{Op: sp.op + "-subscription-source", Name: partName(cfg, "subscription-source"), Kind: dsl.KindSource, Topics: []string{subTopic}, Internal: true}
	subSource.Instantiate = fkSource(subSource)
	g.AddNode(subSource)
	subscription := &dsl.Node{Op: sp.op + "-subscription", Name: partName(cfg, "subscription"), Kind: dsl.KindProcessor, Stores: append([]string{subStore}, sp.right.core().ReadStores()...)}
	foreign := &dsl.Node{Op: sp.op + "-foreign", Name: partName(cfg, "foreign"), Kind: dsl.KindProcessor, Stores: []string{subStore}}
	respSink := &dsl.Node{Op: sp.op + "-response-sink", Name: partName(cfg, "response-sink"), Kind: dsl.KindSink, Topics: []string{respTopic}, Internal: true}
	claimStore(g, subscription, subStore, "a foreign-key join's subscription store belongs to the join")
	subscription.Instantiate = func(task *dsl.Task) (any, error) {
		return sp.subscriptions(task, subscription, respSink, subStore, subTopic)
	}
	g.AddNode(subscription, subSource)
	sp.right.core().AttachChanges(foreign, true, func(task *dsl.Task) (tablecore.ChangeFn[KO, VO], error) {
		return sp.foreign(task, foreign, respSink, subStore)
	})
	respSink.Instantiate = fkSink(respSink, respTopic)
	g.AddNode(respSink, subscription, foreign)

	// Left side again: the response source and the result.
	respSource := &dsl.Node{Op: sp.op + "-response-source", Name: partName(cfg, "response-source"), Kind: dsl.KindSource, Topics: []string{respTopic}, Internal: true}
	respSource.Instantiate = fkSource(respSource)
	g.AddNode(respSource)
	result := &dsl.Node{Op: sp.op, Name: cfg.Name, Kind: dsl.KindProcessor, Stores: append([]string{sp.store}, sp.left.core().ReadStores()...)}
	claimStore(g, result, sp.store, "a foreign-key join needs a store of its own")
	result.Instantiate = func(task *dsl.Task) (any, error) { return sp.results(task, result) }
	g.AddNode(result, respSource, subscribe)
	cfg.Report(g, sp.op, result.Name, valueOpts...)

	// Left and right may be (or later become) one sub-topology, which then
	// reads both topics it writes (a table joined with itself).
	g.AddInternalTopic(dsl.InternalTopic{Name: subTopic, Writer: subSink, PartitionsLike: rightSource, ReadByWriter: true})
	g.AddInternalTopic(dsl.InternalTopic{Name: respTopic, Writer: respSink, PartitionsLike: leftSource, ReadByWriter: true})

	if sp.fk == nil || sp.joiner == nil {
		g.AddError(fmt.Errorf("%s %q: %w: the foreign-key extractor and the joiner must not be nil", sp.op, result.Name, stream.ErrNilFunc))
	}
	for _, c := range []struct {
		name string
		nil  bool
	}{{"left key codec", sp.kc == nil}, {"left value codec", sp.vc == nil}, {"right key codec", sp.koc == nil},
		{"right value codec", sp.voc == nil}, {"result codec", sp.vrc == nil}} {
		if c.nil {
			g.AddError(fmt.Errorf("%s %q: %s: %w", sp.op, result.Name, c.name, stream.ErrNilCodec))
		}
	}
	return Table[K, VR](tablecore.Stored(dsl.NewStream(result, sp.kc, sp.vrc), sp.store, storeLookup(sp.store, sp.kc, sp.vrc)).
		Routed(sp.left.core().Route()))
}

// sourceOf returns the first source topic above n: a topic of n's
// sub-topology, whose partition count (all sources of a sub-topology
// with a table are co-partitioned) the join's topics copy.
func sourceOf(n *dsl.Node) *topology.Source {
	for n != nil && n.Kind != dsl.KindSource {
		if len(n.Parents) == 0 {
			return nil
		}
		n = n.Parents[0]
	}
	if n == nil || len(n.Topics) == 0 {
		return nil
	}
	return &topology.Source{Topic: n.Topics[0], Internal: n.Internal}
}

// subscribe returns the left side's change function: it tells right's
// side which foreign key each left row refers to (Kafka Streams'
// SubscriptionSendProcessorSupplier).
func (sp fkSpec[K, V, KO, VO, VR]) subscribe(task *dsl.Task, n, sink *dsl.Node) (tablecore.ChangeFn[K, V], error) {
	v, err := task.Get(sink)
	if err != nil {
		return nil, err
	}
	send, ok := v.(fkSend)
	if !ok {
		return nil, fmt.Errorf("stream: internal error: node %q takes %T", sink.Name, v)
	}
	if in, out, ok := task.EdgeCounters(n, sink); ok {
		send = countSend(send, in, out)
	}
	partition := task.Env().TaskID().Partition
	topic := fkSubscriptionTopic(sp.store)
	var kbuf, vbuf []byte
	return func(ctx context.Context, rc *stream.RecordContext, k K, old V, hasOld bool, nv V, hasNew bool) error {
		if !hasOld && !hasNew {
			return nil
		}
		nodeErr := func(err error) error {
			return &stream.NodeError{Node: n.Name, Topic: rc.Topic, Partition: rc.Partition, Offset: rc.Offset, Err: err}
		}
		task.Current = n
		var err error
		if kbuf, err = sp.kc.Append(kbuf[:0], k); err != nil {
			return nodeErr(&codec.EncodeError{Topic: topic, Part: "value", Err: err})
		}
		subscribeTo := func(fkb []byte, instr fkInstruction, h *fkHash) error {
			value := appendSubscription(make([]byte, 0, subscriptionHeader+len(kbuf)), fkSubscription{instr: instr, hash: h, partition: partition, pk: kbuf})
			return send(ctx, rc, fkb, value, broker.PartitionByKey)
		}
		encodeFK := func(v V) ([]byte, error) {
			task.Current = n
			b, err := sp.koc.Append(make([]byte, 0, 16), sp.fk(v))
			if err != nil {
				return nil, nodeErr(&codec.EncodeError{Topic: topic, Part: "key", Err: err})
			}
			return b, nil
		}
		var oldFK, newFK []byte
		if hasOld {
			if oldFK, err = encodeFK(old); err != nil {
				return err
			}
		}
		if !hasNew {
			// The row is deleted: unsubscribe, and have right's side
			// answer so that the result is deleted after any response
			// still under way.
			return subscribeTo(oldFK, fkUnsubscribeAndRespond, nil)
		}
		if newFK, err = encodeFK(nv); err != nil {
			return err
		}
		var h fkHash
		if vbuf, err = sp.vc.Append(vbuf[:0], nv); err != nil {
			return nodeErr(&codec.EncodeError{Topic: topic, Part: "value", Err: err})
		}
		h = hashOf(vbuf)
		instr := fkSubscribeAlwaysRespond
		if hasOld && !bytes.Equal(oldFK, newFK) {
			if err := subscribeTo(oldFK, fkUnsubscribe, nil); err != nil {
				return err
			}
		}
		if !hasOld && !sp.leftJoin {
			// A new row of an inner join has no result to retract.
			instr = fkSubscribeRespondIfFound
		}
		return subscribeTo(newFK, instr, &h)
	}, nil
}

// subscriptions returns the right side's function for subscription
// records: it records or removes the subscription and answers with the
// right row's current value (Kafka Streams'
// SubscriptionReceiveProcessorSupplier and SubscriptionJoinProcessorSupplier).
func (sp fkSpec[K, V, KO, VO, VR]) subscriptions(task *dsl.Task, n, sink *dsl.Node, subStore, topic string) (any, error) {
	v, err := task.Get(sink)
	if err != nil {
		return nil, err
	}
	send, ok := v.(fkSend)
	if !ok {
		return nil, fmt.Errorf("stream: internal error: node %q takes %T", sink.Name, v)
	}
	if in, out, ok := task.EdgeCounters(n, sink); ok {
		send = countSend(send, in, out)
	}
	kv, err := openStore(task, n, subStore)
	if err != nil {
		return nil, err
	}
	get, err := sp.right.core().Lookup()(task, n)
	if err != nil {
		return nil, err
	}
	var skey []byte
	return fkSend(func(ctx context.Context, rc *stream.RecordContext, key, value []byte, _ int32) error {
		task.Current = n
		nodeErr := func(err error) error {
			return &stream.NodeError{Node: n.Name, Topic: rc.Topic, Partition: rc.Partition, Offset: rc.Offset, Err: err}
		}
		sub, err := decodeSubscription(value)
		if err != nil || key == nil {
			if err == nil {
				err = fmt.Errorf("%w: a subscription without a foreign key", errFKCorrupt)
			}
			return nodeErr(&codec.DecodeError{Part: "value", Err: err})
		}
		skey = appendSubscriptionKey(skey[:0], key, sub.pk)
		switch sub.instr {
		case fkUnsubscribe, fkUnsubscribeAndRespond:
			if err := kv.Delete(skey); err != nil {
				return nodeErr(fmt.Errorf("store %q: delete: %w", subStore, err))
			}
		default:
			stored := appendSubscription(nil, fkSubscription{instr: sub.instr, hash: sub.hash, partition: sub.partition})
			if err := kv.Put(skey, stored); err != nil {
				return nodeErr(fmt.Errorf("store %q: put: %w", subStore, err))
			}
		}
		resp := fkResponse{hash: sub.hash}
		switch sub.instr {
		case fkUnsubscribe:
			return nil
		case fkSubscribeAlwaysRespond, fkSubscribeRespondIfFound:
			fk, err := sp.koc.Decode(key)
			if err != nil {
				return nodeErr(&codec.DecodeError{Part: "key", Err: err})
			}
			vo, found, err := get(fk)
			if err != nil {
				return nodeErr(err)
			}
			if !found && sub.instr == fkSubscribeRespondIfFound {
				return nil
			}
			if found {
				task.Current = n
				if resp.right, err = sp.voc.Append(make([]byte, 0, 64), vo); err != nil {
					return nodeErr(&codec.EncodeError{Topic: topic, Part: "value", Err: err})
				}
				resp.hasRight = true
			}
		}
		return send(ctx, rc, bytes.Clone(sub.pk), appendResponse(nil, resp), sub.partition)
	}), nil
}

// foreign returns the right side's change function: a right row's change
// is sent to every left row subscribed to its key (Kafka Streams'
// ForeignTableJoinProcessorSupplier).
func (sp fkSpec[K, V, KO, VO, VR]) foreign(task *dsl.Task, n, sink *dsl.Node, subStore string) (tablecore.ChangeFn[KO, VO], error) {
	v, err := task.Get(sink)
	if err != nil {
		return nil, err
	}
	send, ok := v.(fkSend)
	if !ok {
		return nil, fmt.Errorf("stream: internal error: node %q takes %T", sink.Name, v)
	}
	if in, out, ok := task.EdgeCounters(n, sink); ok {
		send = countSend(send, in, out)
	}
	kv, err := openStore(task, n, subStore)
	if err != nil {
		return nil, err
	}
	topic := fkResponseTopic(sp.store)
	var prefix []byte
	return func(ctx context.Context, rc *stream.RecordContext, k KO, _ VO, hasOld bool, nv VO, hasNew bool) error {
		if !hasOld && !hasNew {
			return nil // a delete of a key right did not hold
		}
		task.Current = n
		nodeErr := func(err error) error {
			return &stream.NodeError{Node: n.Name, Topic: rc.Topic, Partition: rc.Partition, Offset: rc.Offset, Err: err}
		}
		fkb, err := sp.koc.Append(make([]byte, 0, 16), k)
		if err != nil {
			return nodeErr(&codec.EncodeError{Store: subStore, Part: "key", Err: err})
		}
		var right []byte
		if hasNew {
			if right, err = sp.voc.Append(nil, nv); err != nil {
				return nodeErr(&codec.EncodeError{Topic: topic, Part: "value", Err: err})
			}
		}
		prefix = appendSubscriptionPrefix(prefix[:0], fkb)
		seq, errf := kv.Range(prefix, prefixEnd(prefix))
		for key, value := range seq {
			sub, err := decodeSubscription(value)
			if err != nil {
				return nodeErr(fmt.Errorf("store %q: decode a subscription: %w", subStore, err))
			}
			resp := fkResponse{hash: sub.hash, hasRight: hasNew, right: right}
			if err := send(ctx, rc, bytes.Clone(key[len(prefix):]), appendResponse(nil, resp), sub.partition); err != nil {
				return err
			}
		}
		if err := errf(); err != nil {
			return nodeErr(fmt.Errorf("store %q: range: %w", subStore, err))
		}
		return nil
	}, nil
}

// results returns the left side's function for response records: it
// drops a response sent for an older left value, computes the result from
// left's current value and materialises it (Kafka Streams'
// ResponseJoinProcessorSupplier followed by the result table's source).
func (sp fkSpec[K, V, KO, VO, VR]) results(task *dsl.Task, n *dsl.Node) (any, error) {
	out, err := tablecore.NewOutput[K, VR](task, n)
	if err != nil {
		return nil, err
	}
	kv, err := openStore(task, n, sp.store)
	if err != nil {
		return nil, err
	}
	get, err := sp.left.core().Lookup()(task, n)
	if err != nil {
		return nil, err
	}
	logger := task.Env().Logger().With("node", n.Name, "store", sp.store)
	var vbuf []byte
	return fkSend(func(ctx context.Context, rc *stream.RecordContext, key, value []byte, _ int32) error {
		task.Current = n
		nodeErr := func(err error) error {
			return &stream.NodeError{Node: n.Name, Topic: rc.Topic, Partition: rc.Partition, Offset: rc.Offset, Err: err}
		}
		decodeErr := func(part string, err error) error {
			return nodeErr(&codec.DecodeError{Part: part, Err: err})
		}
		resp, err := decodeResponse(value)
		if err != nil {
			return decodeErr("value", err)
		}
		if key == nil {
			return decodeErr("key", fmt.Errorf("%w: a response without a key", errFKCorrupt))
		}
		k, err := sp.kc.Decode(key)
		if err != nil {
			return decodeErr("key", err)
		}
		cur, found, err := get(k)
		if err != nil {
			return nodeErr(err)
		}
		current := found
		if found {
			task.Current = n
			if vbuf, err = sp.vc.Append(vbuf[:0], cur); err != nil {
				return nodeErr(&codec.EncodeError{Store: sp.store, Part: "value", Err: err})
			}
			current = resp.hash != nil && *resp.hash == hashOf(vbuf)
		} else {
			current = resp.hash == nil
		}
		if !current {
			logger.Debug("dropped a response for an older value of the left row",
				"topic", rc.Topic, "partition", rc.Partition, "offset", rc.Offset)
			return nil
		}
		var vr VR
		hasNew := resp.hasRight || (sp.leftJoin && found)
		if hasNew {
			var vo VO
			if resp.hasRight {
				if vo, err = sp.voc.Decode(resp.right); err != nil {
					return decodeErr("value", err)
				}
			}
			task.Current = n
			vr = sp.joiner(cur, vo, resp.hasRight)
		}
		// The old result: for the children that want it, and to emit a
		// delete only for a row that existed (as Kafka Streams' result
		// table does, which drops a null that replaces a null).
		var old VR
		b, hasOld, err := kv.Get(key)
		if err != nil {
			return nodeErr(fmt.Errorf("store %q: get: %w", sp.store, err))
		}
		if !hasNew && !hasOld {
			return nil
		}
		if hasOld && out.WantsOld() {
			if old, err = sp.vrc.Decode(b); err != nil {
				return nodeErr(fmt.Errorf("store %q: decode the stored value: %w", sp.store, err))
			}
		}
		if hasNew {
			if vbuf, err = sp.vrc.Append(vbuf[:0], vr); err != nil {
				return nodeErr(&codec.EncodeError{Store: sp.store, Part: "value", Err: err})
			}
			if err := kv.Put(key, vbuf); err != nil {
				return nodeErr(fmt.Errorf("store %q: put: %w", sp.store, err))
			}
		} else if err := kv.Delete(key); err != nil {
			return nodeErr(fmt.Errorf("store %q: delete: %w", sp.store, err))
		}
		return out.Emit(ctx, rc, k, old, hasOld, vr, hasNew)
	}), nil
}

// fkSource returns the Instantiate of an internal source of the join: it
// passes the raw records to its children and turns a panic below it into
// a *stream.NodeError naming the step that panicked.
func fkSource(n *dsl.Node) func(*dsl.Task) (any, error) {
	return func(t *dsl.Task) (any, error) {
		kids, err := dsl.Children(t, n, countSend)
		if err != nil {
			return nil, err
		}
		rc := new(stream.RecordContext)
		return dsl.SourceFunc(func(ctx context.Context, rec *broker.Record) (err error) {
			defer t.RecoverStep(&err, n, rec.Topic, rec.Partition, rec.Offset)
			t.Current = n
			*rc = stream.RecordContext{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, Timestamp: rec.Timestamp, Headers: rec.Headers}
			if err := dsl.CheckTimestamp(rec.Timestamp); err != nil {
				return &stream.NodeError{Node: n.Name, Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, Err: err}
			}
			for _, f := range kids {
				if err := f(ctx, rc, rec.Key, rec.Value, rec.Partition); err != nil {
					return err
				}
			}
			return nil
		}), nil
	}
}

// fkSink returns the Instantiate of an internal sink of the join, which
// writes encoded records to topic. The slices it gets must not be
// modified afterwards (Send keeps them until the commit).
func fkSink(n *dsl.Node, topic string) func(*dsl.Task) (any, error) {
	return func(t *dsl.Task) (any, error) {
		env := t.Env()
		name := env.TopicName(topic, true)
		return fkSend(func(ctx context.Context, rc *stream.RecordContext, key, value []byte, partition int32) error {
			t.Current = n
			rec := broker.Record{Topic: name, Partition: partition, Key: key, Value: value, Timestamp: rc.Timestamp, Headers: rc.Headers}
			if err := env.Send(ctx, rec); err != nil {
				return &stream.NodeError{Node: n.Name, Topic: rc.Topic, Partition: rc.Partition, Offset: rc.Offset, Err: err}
			}
			return nil
		}), nil
	}
}

// Wire formats of the join's internal records and subscription store. They
// are internal to one app, but they are durable (topics and changelogs),
// so each starts with a version byte.

// fkInstruction tells right's side what to do with a subscription (Kafka
// Streams' SubscriptionWrapper.Instruction).
type fkInstruction byte

const (
	// fkUnsubscribe removes the subscription (the left row's foreign key
	// changed away from this one); no response (DELETE_KEY_NO_PROPAGATE).
	fkUnsubscribe fkInstruction = iota + 1
	// fkUnsubscribeAndRespond removes the subscription and responds
	// without a value (the left row was deleted; DELETE_KEY_AND_PROPAGATE).
	fkUnsubscribeAndRespond
	// fkSubscribeAlwaysRespond records the subscription and responds with
	// the right value or without one (PROPAGATE_NULL_IF_NO_FK_VAL_AVAILABLE).
	fkSubscribeAlwaysRespond
	// fkSubscribeRespondIfFound records the subscription and responds only
	// when right has the key (PROPAGATE_ONLY_IF_FK_VAL_AVAILABLE).
	fkSubscribeRespondIfFound
)

const (
	fkFormat           = 1
	fkFlagHash         = 1 << 0
	fkFlagRight        = 1 << 1
	subscriptionHeader = 3 + len(fkHash{}) + 4
)

var errFKCorrupt = errors.New("table: corrupt foreign-key join record")

// fkHash is the 128-bit FNV-1a hash of a left value's encoding.
type fkHash [16]byte

func hashOf(b []byte) fkHash {
	h := fnv.New128a()
	h.Write(b)
	var out fkHash
	h.Sum(out[:0])
	return out
}

// fkSubscription is a subscription record's value, and (without pk) a
// subscription store value: format, instruction, flags, the hash of the
// left value (absent for a delete), the left row's partition (where the
// response goes) and the left row's encoded key.
type fkSubscription struct {
	instr     fkInstruction
	hash      *fkHash
	partition int32
	pk        []byte
}

func appendSubscription(dst []byte, s fkSubscription) []byte {
	var flags byte
	if s.hash != nil {
		flags |= fkFlagHash
	}
	dst = append(dst, fkFormat, byte(s.instr), flags)
	if s.hash != nil {
		dst = append(dst, s.hash[:]...)
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(s.partition))
	return append(dst, s.pk...)
}

// decodeSubscription decodes b; pk aliases b.
func decodeSubscription(b []byte) (fkSubscription, error) {
	var s fkSubscription
	if len(b) < 3 || b[0] != fkFormat {
		return s, fmt.Errorf("%w: subscription of %d bytes with an unknown format", errFKCorrupt, len(b))
	}
	s.instr = fkInstruction(b[1])
	if s.instr < fkUnsubscribe || s.instr > fkSubscribeRespondIfFound || b[2]&^fkFlagHash != 0 {
		return s, fmt.Errorf("%w: subscription with instruction %d and flags %#x", errFKCorrupt, b[1], b[2])
	}
	flags := b[2]
	b = b[3:]
	if flags&fkFlagHash != 0 {
		if len(b) < len(fkHash{}) {
			return s, fmt.Errorf("%w: subscription with a truncated hash", errFKCorrupt)
		}
		s.hash = new(fkHash)
		copy(s.hash[:], b)
		b = b[len(fkHash{}):]
	}
	if len(b) < 4 {
		return s, fmt.Errorf("%w: subscription without a partition", errFKCorrupt)
	}
	s.partition = int32(binary.BigEndian.Uint32(b))
	if s.partition < 0 {
		return s, fmt.Errorf("%w: subscription with partition %d", errFKCorrupt, s.partition)
	}
	s.pk = b[4:]
	return s, nil
}

// fkResponse is a response record's value: format, flags, the hash the
// subscription carried (absent for a deleted left row) and the encoded
// right value (absent when right has no row for the foreign key).
type fkResponse struct {
	hash     *fkHash
	hasRight bool
	right    []byte
}

func appendResponse(dst []byte, r fkResponse) []byte {
	var flags byte
	if r.hash != nil {
		flags |= fkFlagHash
	}
	if r.hasRight {
		flags |= fkFlagRight
	}
	dst = append(dst, fkFormat, flags)
	if r.hash != nil {
		dst = append(dst, r.hash[:]...)
	}
	if r.hasRight {
		dst = append(dst, r.right...)
	}
	return dst
}

// decodeResponse decodes b; right aliases b.
func decodeResponse(b []byte) (fkResponse, error) {
	var r fkResponse
	if len(b) < 2 || b[0] != fkFormat || b[1]&^(fkFlagHash|fkFlagRight) != 0 {
		return r, fmt.Errorf("%w: response of %d bytes with an unknown format or flags", errFKCorrupt, len(b))
	}
	flags := b[1]
	b = b[2:]
	if flags&fkFlagHash != 0 {
		if len(b) < len(fkHash{}) {
			return r, fmt.Errorf("%w: response with a truncated hash", errFKCorrupt)
		}
		r.hash = new(fkHash)
		copy(r.hash[:], b)
		b = b[len(fkHash{}):]
	}
	if flags&fkFlagRight != 0 {
		r.hasRight, r.right = true, b
	} else if len(b) != 0 {
		return r, fmt.Errorf("%w: response with %d trailing bytes", errFKCorrupt, len(b))
	}
	return r, nil
}

// Subscription store keys are the foreign key's length (uvarint), the
// foreign key and the left key, so that the subscriptions of one foreign
// key are one prefix range.
func appendSubscriptionPrefix(dst, fk []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(fk)))
	return append(dst, fk...)
}

func appendSubscriptionKey(dst, fk, pk []byte) []byte {
	return append(appendSubscriptionPrefix(dst, fk), pk...)
}

// prefixEnd returns the smallest key greater than every key with prefix
// p, or nil when there is none (p is all 0xff).
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
