package stream

import (
	"context"
	"fmt"
	"time"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/internal/dsl"
	"github.com/duality-streams/duality/internal/intern"
)

// Stream is a typed handle on a stream of key-value records inside a
// [Builder]. Steps that keep K and V are methods; steps that change them
// are package functions ([Map], [MapValues], ...). A Stream is a small
// value; copy it freely and branch it by calling several steps on it
// (every step receives every record).
//
// The zero Stream belongs to no builder: steps on it return zero Streams
// and are not part of any topology, and passing it to Merge makes Build
// fail with ErrForeignStream.
type Stream[K, V any] dsl.Stream[K, V]

// emit is the per-task input function of a node that takes K, V records.
// It is an alias so that sibling packages assert to the same unnamed type.
type emit[K, V any] = func(ctx context.Context, rc *RecordContext, k K, v V) error

func nodeOf[K, V any](s Stream[K, V]) *dsl.Node { return dsl.StreamNode(dsl.Stream[K, V](s)) }

func handle[K, V any](n *dsl.Node, kc codec.Codec[K], vc codec.Codec[V]) Stream[K, V] {
	return Stream[K, V](dsl.NewStream(n, kc, vc))
}

// codecsOf returns the codecs s carries.
func codecsOf[K, V any](s Stream[K, V]) (codec.Codec[K], codec.Codec[V]) {
	return dsl.StreamCodecs(dsl.Stream[K, V](s))
}

// fanout returns one function that calls every child of n in order.
func fanout[K, V any](t *dsl.Task, n *dsl.Node) (emit[K, V], error) {
	fs, err := dsl.Children(t, n, dsl.CountRecords[*RecordContext, K, V])
	if err != nil {
		return nil, err
	}
	switch len(fs) {
	case 0:
		return func(context.Context, *RecordContext, K, V) error { return nil }, nil
	case 1:
		return fs[0], nil
	}
	return func(ctx context.Context, rc *RecordContext, k K, v V) error {
		for _, f := range fs {
			if err := f(ctx, rc, k, v); err != nil {
				return err
			}
		}
		return nil
	}, nil
}

// emitValue passes on a record whose value a step computed: it is no
// longer a tombstone, for this call only (sibling steps still see the
// input's flag).
func emitValue[K, V any](ctx context.Context, next emit[K, V], rc *RecordContext, k K, v V) error {
	if !rc.Tombstone {
		return next(ctx, rc, k, v)
	}
	rc.Tombstone = false
	err := next(ctx, rc, k, v)
	rc.Tombstone = true
	return err
}

// emitKey passes on a record whose key a step computed (Map, SelectKey,
// FlatMap): it is no longer keyless, for this call only. With value set,
// the value was computed too, so it is no longer a tombstone either.
func emitKey[K, V any](ctx context.Context, next emit[K, V], rc *RecordContext, k K, v V, value bool) error {
	noKey, tomb := rc.NoKey, rc.Tombstone
	rc.NoKey = false
	if value {
		rc.Tombstone = false
	}
	err := next(ctx, rc, k, v)
	rc.NoKey, rc.Tombstone = noKey, tomb
	return err
}

func nodeError(n *dsl.Node, rc *RecordContext, err error) error {
	return &NodeError{Node: n.Name, Topic: rc.Topic, Partition: rc.Partition, Offset: rc.Offset, Err: err}
}

// From reads topic into a stream, decoding keys with kc and values with
// vc. A record with a nil key or value reaches the steps with K's or V's
// zero value; the codec is not called for it. A nil value (a tombstone)
// stays a tombstone through the steps that keep values, and sinks write it
// as a nil value (see the package documentation, "Records"). Options:
// [Named] (default "source-<n>"), [WithTimestamp].
//
// A record whose timestamp is invalid (before the Unix epoch or after
// [MaxTimestamp]) fails with an error matching [ErrInvalidTimestamp]
// (see [WithTimestamp]).
//
// Build reports an invalid topic name (broker.ErrInvalidTopicName), nil
// codecs (ErrNilCodec), and a topic read by two sources (ErrTopicConflict).
// A nil builder gives the zero Stream.
func From[K, V any](b *Builder, topic string, kc codec.Codec[K], vc codec.Codec[V], opts ...Option) Stream[K, V] {
	return FromTopics(b, []string{topic}, kc, vc, opts...)
}

// FromTopics reads several topics into one stream, as [From] does for one.
// The topics are co-partitioned: one task processes partition p of all of
// them, so they should have the same partition count. An empty list makes
// Build fail with ErrInvalidOption.
func FromTopics[K, V any](b *Builder, topics []string, kc codec.Codec[K], vc codec.Codec[V], opts ...Option) Stream[K, V] {
	g := b.graph()
	if g == nil {
		return Stream[K, V]{}
	}
	cfg := dsl.ApplyOptions(opts)
	extract := timestampExtractor[K, V](g, cfg, topics)
	n := addSource(g, cfg.Name, append([]string(nil), topics...), false, kc, vc, extract)
	cfg.Report(g, n.Op, n.Name, sourceOpts...)
	if len(topics) == 0 {
		g.AddError(fmt.Errorf("source %q: %w: no topics", n.Name, ErrInvalidOption))
	}
	return handle(n, kc, vc)
}

// timestampExtractor returns the extractor a WithTimestamp option in cfg
// gave to the source of topics, nil if none (or one of the wrong type,
// which it reports to g).
func timestampExtractor[K, V any](g *dsl.Graph, cfg *dsl.StepConfig, topics []string) func(K, V, time.Time) time.Time {
	if cfg.Timestamp == nil {
		return nil
	}
	extract, ok := cfg.Timestamp.(func(K, V, time.Time) time.Time)
	if !ok {
		g.AddError(fmt.Errorf("%w: source of %v: WithTimestamp takes a %T, the source needs a %T", ErrInvalidOption, topics, cfg.Timestamp, extract))
	}
	return extract
}

func addSource[K, V any](g *dsl.Graph, name string, topics []string, internal bool, kc codec.Codec[K], vc codec.Codec[V], extract func(K, V, time.Time) time.Time) *dsl.Node {
	n := &dsl.Node{Op: "source", Kind: dsl.KindSource, Name: name, Topics: topics, Internal: internal}
	if extract != nil {
		n.Detail = "event time: WithTimestamp"
	}
	n.Instantiate = func(t *dsl.Task) (any, error) {
		next, err := fanout[K, V](t, n)
		if err != nil {
			return nil, err
		}
		rc := new(RecordContext)
		decodeKey, decodeValue := keyDecoder(t, kc), ownedValues(t, vc)
		// The runtime asks for the event time before processing a
		// record (to order a task's partitions): keep what that decoded
		// for the Process of the same record.
		var cache struct {
			// rec, with its position: the runtime reuses the memory
			// of processed records, so the same address may later
			// hold another record.
			rec  *broker.Record
			at   broker.TopicPartition
			off  int64
			k    K
			v    V
			ts   time.Time
			kept bool
		}
		if extract != nil {
			t.OnTimestamp(n, func(rec *broker.Record) (ts time.Time, ok bool) {
				defer func() {
					if r := recover(); r != nil {
						ts, ok = time.Time{}, false // Process reports the panic
					}
				}()
				if rec.Value == nil {
					return time.Time{}, false
				}
				var k K
				var err error
				if rec.Key != nil {
					if k, err = decodeKey(rec.Key); err != nil {
						return time.Time{}, false
					}
				}
				v, err := decodeValue(rec.Value)
				if err != nil {
					return time.Time{}, false
				}
				ts = extract(k, v, rec.Timestamp)
				cache.rec, cache.k, cache.v, cache.ts, cache.kept = rec, k, v, ts, true
				cache.at, cache.off = broker.TopicPartition{Topic: rec.Topic, Partition: rec.Partition}, rec.Offset
				return ts, true
			})
		}
		return dsl.SourceFunc(func(ctx context.Context, rec *broker.Record) (err error) {
			defer t.RecoverStep(&err, n, rec.Topic, rec.Partition, rec.Offset)
			t.Current = n
			*rc = RecordContext{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, Timestamp: rec.Timestamp, Headers: rec.Headers,
				Tombstone: rec.Value == nil, NoKey: rec.Key == nil}
			var k K
			var v V
			if cache.kept {
				hit := cache.rec == rec && cache.off == rec.Offset &&
					cache.at == broker.TopicPartition{Topic: rec.Topic, Partition: rec.Partition}
				if hit {
					k, v, rc.Timestamp = cache.k, cache.v, cache.ts
				}
				var zk K
				var zv V
				cache.rec, cache.k, cache.v, cache.kept = nil, zk, zv, false
				if hit {
					if err := dsl.CheckTimestamp(rc.Timestamp); err != nil {
						return nodeError(n, rc, err)
					}
					return next(ctx, rc, k, v)
				}
			}
			if rec.Key != nil {
				if k, err = decodeKey(rec.Key); err != nil {
					return nodeError(n, rc, &codec.DecodeError{Part: "key", Err: err})
				}
			}
			if rec.Value != nil {
				if v, err = decodeValue(rec.Value); err != nil {
					return nodeError(n, rc, &codec.DecodeError{Part: "value", Err: err})
				}
				if extract != nil {
					rc.Timestamp = extract(k, v, rec.Timestamp)
				}
			}
			if err := dsl.CheckTimestamp(rc.Timestamp); err != nil {
				return nodeError(n, rc, err)
			}
			return next(ctx, rc, k, v)
		}), nil
	}
	g.AddNode(n)
	checkCodecs(g, n, kc, vc)
	return n
}

// ownedMin is the size from which a source hands a fetched record value
// to its codec without a copy (codec.OwningDecoder): the runtime's fetched
// records are its own and it reads their values no more once decoded.
// Smaller values are copied, so that keeping one does not keep the whole
// fetched batch they share memory with.
const ownedMin = 1 << 20

// ownedValues returns the decoder of one task's source's record values:
// vc's DecodeOwned for values of ownedMin bytes or more when vc has one,
// otherwise vc's Decode, or for codec.String the interning decoder of
// internedStrings.
func ownedValues[V any](t *dsl.Task, vc codec.Codec[V]) func([]byte) (V, error) {
	dec := vc.Decode
	if f := internedStrings(t, vc); f != nil {
		dec = f
	}
	od, ok := vc.(codec.OwningDecoder[V])
	if !ok {
		return dec
	}
	return func(b []byte) (V, error) {
		if len(b) >= ownedMin {
			return od.DecodeOwned(b)
		}
		return dec(b)
	}
}

// keyDecoder returns the decoder of one task's source's record keys: kc's
// Decode, or for codec.String the interning decoder of internedStrings.
func keyDecoder[K any](t *dsl.Task, kc codec.Codec[K]) func([]byte) (K, error) {
	if f := internedStrings(t, kc); f != nil {
		return f
	}
	return kc.Decode
}

// internedStrings returns, when c is codec.String (whose decoding of a
// string is its bytes), a decoder for task t that shares one string per
// distinct short value among the records it decodes (package
// internal/intern): a source of keys or values from a bounded set (ids,
// names, kinds) decodes them without allocating once it has seen each.
// Its table is released when t closes, so that only the open tasks'
// tables count against the process's budget (intern.MaxTotal). For any
// other codec it returns nil.
func internedStrings[T any](t *dsl.Task, c codec.Codec[T]) func([]byte) (T, error) {
	// Interfaces of different dynamic types compare unequal without
	// comparing the values, so a codec of an incomparable type is safe.
	if any(c) != any(codec.String()) {
		return nil
	}
	in := new(intern.Strings)
	t.OnClose(func() error {
		in.Release()
		return nil
	})
	f, _ := any(func(b []byte) (string, error) { return in.Get(b), nil }).(func([]byte) (T, error))
	return f
}

func checkCodecs[K, V any](g *dsl.Graph, n *dsl.Node, kc codec.Codec[K], vc codec.Codec[V]) {
	if kc == nil {
		g.AddError(fmt.Errorf("%s %q: key codec: %w", n.Op, n.Name, ErrNilCodec))
	}
	if vc == nil {
		g.AddError(fmt.Errorf("%s %q: value codec: %w", n.Op, n.Name, ErrNilCodec))
	}
}

// addStep adds a processor node below s whose per-task behaviour mk builds
// from the node's output function. It takes the options in accepts; the
// output's codecs are those of outCodecs.
func addStep[K, V, K2, V2 any](s Stream[K, V], op string, opts []Option, accepts []string, nilFunc bool,
	mk func(t *dsl.Task, n *dsl.Node, next emit[K2, V2]) emit[K, V]) Stream[K2, V2] {
	p := nodeOf(s)
	if p == nil {
		return Stream[K2, V2]{}
	}
	g := p.Graph()
	cfg := dsl.ApplyOptions(opts)
	kc, vc := codecsOf(s)
	kc2, vc2 := outCodecs[K2, V2](cfg, accepts, kc, vc)
	n := &dsl.Node{Op: op, Kind: dsl.KindProcessor, Name: cfg.Name}
	n.Instantiate = func(t *dsl.Task) (any, error) {
		next, err := fanout[K2, V2](t, n)
		if err != nil {
			return nil, err
		}
		return mk(t, n, next), nil
	}
	g.AddNode(n, p)
	cfg.Report(g, op, n.Name, accepts...)
	if nilFunc {
		g.AddError(fmt.Errorf("%s %q: %w", op, n.Name, ErrNilFunc))
	}
	return handle(n, kc2, vc2)
}

// Filter keeps the records for which pred returns true. Options: [Named]
// (default "filter-<n>"). Build reports a nil pred (ErrNilFunc).
func (s Stream[K, V]) Filter(pred func(K, V) bool, opts ...Option) Stream[K, V] {
	return addStep(s, "filter", opts, namedOnly, pred == nil, func(t *dsl.Task, n *dsl.Node, next emit[K, V]) emit[K, V] {
		return func(ctx context.Context, rc *RecordContext, k K, v V) error {
			t.Current = n
			if !pred(k, v) {
				return nil
			}
			return next(ctx, rc, k, v)
		}
	})
}

// FilterNot drops the records for which pred returns true. Options:
// [Named] (default "filter-not-<n>"). Build reports a nil pred
// (ErrNilFunc).
func (s Stream[K, V]) FilterNot(pred func(K, V) bool, opts ...Option) Stream[K, V] {
	return addStep(s, "filter-not", opts, namedOnly, pred == nil, func(t *dsl.Task, n *dsl.Node, next emit[K, V]) emit[K, V] {
		return func(ctx context.Context, rc *RecordContext, k K, v V) error {
			t.Current = n
			if pred(k, v) {
				return nil
			}
			return next(ctx, rc, k, v)
		}
	})
}

// Peek calls fn for every record and passes the record on unchanged. Use
// it for side effects such as logging or metrics. Options: [Named]
// (default "peek-<n>"). Build reports a nil fn (ErrNilFunc).
func (s Stream[K, V]) Peek(fn func(K, V), opts ...Option) Stream[K, V] {
	return addStep(s, "peek", opts, namedOnly, fn == nil, func(t *dsl.Task, n *dsl.Node, next emit[K, V]) emit[K, V] {
		return func(ctx context.Context, rc *RecordContext, k K, v V) error {
			t.Current = n
			fn(k, v)
			return next(ctx, rc, k, v)
		}
	})
}

// Foreach calls fn for every record and ends the stream. Options: [Named]
// (default "foreach-<n>"). Build reports a nil fn (ErrNilFunc).
func (s Stream[K, V]) Foreach(fn func(K, V), opts ...Option) {
	addStep(s, "foreach", opts, namedOnly, fn == nil, func(t *dsl.Task, n *dsl.Node, _ emit[K, V]) emit[K, V] {
		return func(_ context.Context, _ *RecordContext, k K, v V) error {
			t.Current = n
			fn(k, v)
			return nil
		}
	})
}

// Merge returns a stream of the records of s and of every stream in
// others, in the order each arrives. Streams read from different topics
// end up in one sub-topology, so their topics are co-partitioned. The
// merge step is named "merge-<n>".
//
// Build reports ErrForeignStream for a stream of another builder or the
// zero Stream.
func (s Stream[K, V]) Merge(others ...Stream[K, V]) Stream[K, V] {
	p := nodeOf(s)
	if p == nil {
		return Stream[K, V]{}
	}
	g := p.Graph()
	n := &dsl.Node{Op: "merge", Kind: dsl.KindProcessor}
	n.Instantiate = func(t *dsl.Task) (any, error) {
		next, err := fanout[K, V](t, n)
		if err != nil {
			return nil, err
		}
		return next, nil
	}
	parents := []*dsl.Node{p}
	for _, o := range others {
		parents = append(parents, nodeOf(o))
	}
	g.AddNode(n, parents...)
	kc, vc := codecsOf(s)
	return handle(n, kc, vc)
}

// To writes every record to topic, encoding keys and values with the
// stream's codecs (or the ones [WithKeyCodec] and [WithValueCodec] give),
// and ends the stream. Records keep their timestamp and headers. The
// partition is chosen by key (Kafka's default partitioner). A record whose
// key was absent at the source and that no step re-keyed
// ([RecordContext.NoKey]) is written with no key (nil), as Kafka Streams
// passes null keys through; a key a step computed is always encoded, so an
// empty string key is an empty key, not an absent one. A tombstone is written
// with a nil value, without calling the value codec; every other value is
// encoded, an empty encoding as an empty, non-nil value. Options: [Named]
// (default "sink-<n>"), [WithKeyCodec], [WithValueCodec].
//
// Build reports an invalid topic name (broker.ErrInvalidTopicName), nil
// codecs (ErrNilCodec) and a sub-topology that reads the topic it writes
// (ErrTopicConflict). At run time an encode failure is a *NodeError
// wrapping a *codec.EncodeError.
func (s Stream[K, V]) To(topic string, opts ...Option) {
	p := nodeOf(s)
	if p == nil {
		return
	}
	cfg := dsl.ApplyOptions(opts)
	kc, vc := codecsOf(s)
	kc, vc = dsl.KeyCodec(cfg, kc), dsl.ValueCodec(cfg, vc)
	n := addSink(p, cfg.Name, topic, false, false, nil, kc, vc)
	cfg.Report(p.Graph(), n.Op, n.Name, codecOpts...)
}

// ToFunc writes every record to the topic topicFn returns for it, as
// [Stream.To] does for a fixed topic. Those topics are not known before
// run time: they are not listed as sinks of the topology, and the runtime
// does not create them. Options: [Named] (default "sink-<n>"),
// [WithKeyCodec], [WithValueCodec].
//
// Build reports a nil topicFn (ErrNilFunc) and nil codecs (ErrNilCodec).
// At run time an invalid returned name fails the record with a *NodeError
// matching broker.ErrInvalidTopicName.
func (s Stream[K, V]) ToFunc(topicFn func(k K, v V, rc RecordContext) string, opts ...Option) {
	p := nodeOf(s)
	if p == nil {
		return
	}
	cfg := dsl.ApplyOptions(opts)
	kc, vc := codecsOf(s)
	kc, vc = dsl.KeyCodec(cfg, kc), dsl.ValueCodec(cfg, vc)
	n := addSink(p, cfg.Name, "", false, true, topicFn, kc, vc)
	cfg.Report(p.Graph(), n.Op, n.Name, codecOpts...)
	if topicFn == nil {
		p.Graph().AddError(fmt.Errorf("sink %q: topic function: %w", n.Name, ErrNilFunc))
	}
}

// sinkChunk is the size of the buffers a sink encodes its records into.
const sinkChunk = 32 << 10

// addSink adds a sink below p writing to topic, or to the topic topicFn
// chooses per record when dynamic.
func addSink[K, V any](p *dsl.Node, name, topic string, internal, dynamic bool, topicFn func(K, V, RecordContext) string, kc codec.Codec[K], vc codec.Codec[V]) *dsl.Node {
	g := p.Graph()
	n := &dsl.Node{Op: "sink", Kind: dsl.KindSink, Name: name, Internal: internal}
	if !dynamic {
		n.Topics = []string{topic}
	}
	n.Instantiate = func(t *dsl.Task) (any, error) {
		env := t.Env()
		var fixed string
		if !dynamic {
			fixed = env.TopicName(topic, internal)
		}
		// The last per-record topic that passed validation, and its
		// broker name.
		var lastTopic, lastName string
		hint := 64
		// The records' bytes are carved from chunk, sinkChunk bytes at
		// a time: Send keeps them until the commit, and the records of
		// a commit share a few allocations instead of one each.
		var chunk []byte
		return emit[K, V](func(ctx context.Context, rc *RecordContext, k K, v V) error {
			t.Current = n
			name := fixed
			if dynamic {
				if topic := topicFn(k, v, *rc); topic != lastTopic || lastName == "" {
					if err := broker.ValidateTopicName(topic); err != nil {
						return nodeError(n, rc, err)
					}
					lastTopic, lastName = topic, env.TopicName(topic, false)
				}
				name = lastName
			}
			need := hint + hint/4 + 16
			if cap(chunk)-len(chunk) < need {
				chunk = make([]byte, 0, max(sinkChunk, need))
			}
			free := chunk[len(chunk):len(chunk)]
			buf, err := kc.Append(free, k)
			if err != nil {
				return nodeError(n, rc, &codec.EncodeError{Topic: name, Part: "key", Err: err})
			}
			kl := len(buf)
			if !rc.Tombstone {
				buf, err = vc.Append(buf, v)
				if err != nil {
					return nodeError(n, rc, &codec.EncodeError{Topic: name, Part: "value", Err: err})
				}
			}
			// The next record's is likely of the same size, but one
			// large record must not make every later one allocate as
			// much.
			hint = min(len(buf), dsl.MaxScratch)
			if cap(buf) == cap(free) {
				chunk = chunk[:len(chunk)+len(buf)] // encoded in place
			}
			rec := broker.Record{
				Topic:     name,
				Partition: broker.PartitionByKey,
				Timestamp: rc.Timestamp,
				Headers:   rc.Headers,
			}
			if !rc.Tombstone {
				rec.Value = buf[kl:len(buf):len(buf)]
			}
			if kl > 0 || !rc.NoKey {
				rec.Key = buf[:kl:kl] // not nil: an empty key is a key
			}
			if err := env.Send(ctx, rec); err != nil {
				return nodeError(n, rc, err)
			}
			return nil
		}), nil
	}
	g.AddNode(n, p)
	checkCodecs(g, n, kc, vc)
	return n
}

// Repartition writes the stream through an internal topic
// "<name>-repartition" (name from [Named], default "repartition-<n>") and
// reads it back, so that records are partitioned by their current key:
// use it after changing keys and before steps that need records of one key
// in one task. The steps after it form a new sub-topology. Records are
// encoded on the topic with the stream's codecs, which the returned stream
// carries. Options: [Named], [Partitions] (default: the largest partition
// count among the sources of the sub-topology before it), [WithKeyCodec],
// [WithValueCodec].
//
// Build reports nil codecs (ErrNilCodec) and a name that makes an invalid
// topic name (broker.ErrInvalidTopicName).
func (s Stream[K, V]) Repartition(opts ...Option) Stream[K, V] {
	p := nodeOf(s)
	if p == nil {
		return Stream[K, V]{}
	}
	g := p.Graph()
	cfg := dsl.ApplyOptions(opts)
	base := cfg.Name
	if base == "" {
		base = fmt.Sprintf("repartition-%d", g.NextID())
	}
	kc, vc := codecsOf(s)
	kc, vc = dsl.KeyCodec(cfg, kc), dsl.ValueCodec(cfg, vc)
	cfg.Report(g, "repartition", base, repartOpts...)
	return repartition(s, base, cfg.Partitions, kc, vc)
}

// repartition writes s through the internal topic "<base>-repartition"
// with the codecs kc and vc, and returns the stream read back from it,
// which carries them.
func repartition[K, V any](s Stream[K, V], base string, partitions int32, kc codec.Codec[K], vc codec.Codec[V]) Stream[K, V] {
	p := nodeOf(s)
	if p == nil {
		return Stream[K, V]{}
	}
	g := p.Graph()
	topic := base + "-repartition"
	sink := addSink(p, base+"-sink", topic, true, false, nil, kc, vc)
	src := addSource(g, base+"-source", []string{topic}, true, kc, vc, nil)
	g.AddInternalTopic(dsl.InternalTopic{Name: topic, Partitions: partitions, Writer: sink})
	return handle(src, kc, vc)
}
