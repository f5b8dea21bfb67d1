package table

import (
	"cmp"
	"context"
	"fmt"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/internal/dsl"
	"github.com/duality-streams/duality/stream"
)

// GlobalTable is a typed handle on a global table (Kafka Streams'
// GlobalKTable): a table that every instance of the app holds in full,
// all partitions of its topic, so that streams join it by any key without
// co-partitioning. Create it with [Global] and read it with [JoinGlobal]
// and [LeftJoinGlobal]. A GlobalTable is a small value; copy it freely.
// The zero GlobalTable belongs to no builder.
type GlobalTable[K, V any] struct {
	g     *dsl.Graph
	store string
	kc    codec.Codec[K]
	vc    codec.Codec[V]
}

// Store returns the name of the global table's store, which
// duality.Query reads (every key, on every instance).
func (t GlobalTable[K, V]) Store() string { return t.store }

// Global reads topic as a global table kept in the global store named
// store. The runtime reads every partition of topic on every instance,
// outside the consumer group, and writes each record's key and value as
// they are (bytes) into the store: the newest value per key wins, a nil
// value (a tombstone) deletes the key, and records with an absent key are
// ignored. The store keeps no timestamps, so unlike a source it does not
// check them (stream.ErrInvalidTimestamp). Before any task processes input the store is brought up to the
// end of the topic (bootstrap); afterwards a goroutine of the app keeps it
// up to date, so later stream records see later updates. As in Kafka
// Streams the topic is the store's changelog (no changelog topic is
// written); with duality.StateDir the store and the positions read are
// kept on disk, so a restart reads only what was appended since. The topic
// should be compacted, as for any table. Keys are encoded with kc for
// lookups and values decoded with vc when read; a value vc cannot decode
// fails the stream record that reads it.
//
// Options: stream.Named names the global table (Kafka Streams'
// Consumed.as on a globalTable): the name is shown in the topology's
// description, beside the store in its global stores section, and names
// the table in Build's errors. A global table is no step of a
// sub-topology (the runtime reads its topic outside them, as Kafka
// Streams' global stores), so by default it has no name of its own and
// errors name it by its store. It takes no other option: the store keeps
// no timestamps (stream.WithTimestamp), and the codecs are kc and vc.
//
// Build reports nil codecs (stream.ErrNilCodec), an invalid store name
// (stream.ErrInvalidOption), a store name used by another store
// (stream.ErrStoreConflict), a name a step or another global table has
// (stream.ErrDuplicateName), an option other than Named
// (stream.ErrInvalidOption), an invalid topic name, and a topic also read
// by a stream or by another global table (stream.ErrTopicConflict). The
// runtime reports a missing topic like a missing source topic. A nil
// builder gives the zero GlobalTable.
func Global[K, V any](b *stream.Builder, topic string, kc codec.Codec[K], vc codec.Codec[V], store string, opts ...stream.Option) GlobalTable[K, V] {
	g := (*dsl.Builder)(b).Graph()
	if g == nil {
		return GlobalTable[K, V]{}
	}
	cfg := dsl.ApplyOptions(opts)
	step := fmt.Sprintf("global table %q", store)
	if cfg.Name != "" {
		step = fmt.Sprintf("global table %q (store %q)", cfg.Name, store)
	}
	cfg.Report(g, "global table", cmp.Or(cfg.Name, store), namedOnly...)
	if kc == nil {
		g.AddError(fmt.Errorf("%s: key codec: %w", step, stream.ErrNilCodec))
	}
	if vc == nil {
		g.AddError(fmt.Errorf("%s: value codec: %w", step, stream.ErrNilCodec))
	}
	g.AddGlobalStore(dsl.GlobalStore{Name: store, Topic: topic, Table: cfg.Name, Step: step})
	return GlobalTable[K, V]{g: g, store: store, kc: kc, vc: vc}
}

// JoinGlobal joins every record of s with the value of the global table
// gt at the key keyMapper(k, v) (Kafka Streams' KStream#join with a
// GlobalKTable): when that key has a value gv at the time the record is
// processed, it emits joiner(k, v, gv) with the record's key, timestamp
// and headers; other records are dropped. Updates of gt emit nothing. The
// stream needs no repartitioning: every task sees all of gt. Stream
// records with a nil value (tombstones) are dropped and logged at Debug;
// records with an absent key are joined (keyMapper gets K's zero value).
// The step is named "join-global-<n>".
//
// Build reports nil keyMapper or joiner (stream.ErrNilFunc) and a stream
// and a global table of two builders (stream.ErrForeignStream). A runtime
// without global stores fails the task's creation.
func JoinGlobal[K, V, GK, GV, VR any](s stream.Stream[K, V], gt GlobalTable[GK, GV], keyMapper func(k K, v V) GK, joiner func(k K, v V, gv GV) VR, opts ...stream.Option) stream.Stream[K, VR] {
	var j func(K, V, GV, bool) (VR, bool)
	if joiner != nil {
		j = func(k K, v V, gv GV, found bool) (VR, bool) {
			if !found {
				var zero VR
				return zero, false
			}
			return joiner(k, v, gv), true
		}
	}
	return joinGlobal(s, gt, "join-global", keyMapper, j, opts)
}

// LeftJoinGlobal is [JoinGlobal] that keeps every stream record: joiner
// gets found true and the value at keyMapper(k, v) in gt, or found false
// and GV's zero value when gt has none. The step is named
// "left-join-global-<n>"; Build errors as for JoinGlobal.
func LeftJoinGlobal[K, V, GK, GV, VR any](s stream.Stream[K, V], gt GlobalTable[GK, GV], keyMapper func(k K, v V) GK, joiner func(k K, v V, gv GV, found bool) VR, opts ...stream.Option) stream.Stream[K, VR] {
	var j func(K, V, GV, bool) (VR, bool)
	if joiner != nil {
		j = func(k K, v V, gv GV, found bool) (VR, bool) { return joiner(k, v, gv, found), true }
	}
	return joinGlobal(s, gt, "left-join-global", keyMapper, j, opts)
}

func joinGlobal[K, V, GK, GV, VR any](s stream.Stream[K, V], gt GlobalTable[GK, GV], op string, keyMapper func(K, V) GK, joiner func(K, V, GV, bool) (VR, bool), opts []stream.Option) stream.Stream[K, VR] {
	sn := dsl.StreamNode(dsl.Stream[K, V](s))
	if sn == nil && gt.g == nil {
		return stream.Stream[K, VR]{}
	}
	if sn == nil || sn.Graph() != gt.g {
		g := gt.g
		if sn != nil {
			g = sn.Graph()
		}
		g.AddError(fmt.Errorf("%s: %w: the stream and the global table belong to different builders (or one is the zero value)", op, stream.ErrForeignStream))
		return stream.Stream[K, VR]{}
	}
	store, kc, vc := gt.store, gt.kc, gt.vc
	cfg := dsl.ApplyOptions(opts)
	n := &dsl.Node{Op: op, Kind: dsl.KindProcessor, Name: cfg.Name, GlobalStores: []string{store}}
	n.Instantiate = func(task *dsl.Task) (any, error) {
		next, err := dsl.Children(task, n, dsl.CountRecords[*stream.RecordContext, K, VR])
		if err != nil {
			return nil, err
		}
		kv, err := task.Env().GlobalStore(store)
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", n.Op, n.Name, err)
		}
		logger := task.Env().Logger().With("node", n.Name, "store", store)
		var kbuf []byte
		return emit[K, V](func(ctx context.Context, rc *stream.RecordContext, k K, v V) error {
			if rc.Tombstone {
				logger.Debug("dropped a record with an absent value",
					"topic", rc.Topic, "partition", rc.Partition, "offset", rc.Offset)
				return nil
			}
			nodeErr := func(err error) error {
				return &stream.NodeError{Node: n.Name, Topic: rc.Topic, Partition: rc.Partition, Offset: rc.Offset, Err: err}
			}
			task.Current = n
			gk := keyMapper(k, v)
			var err error
			if kbuf, err = kc.Append(kbuf[:0], gk); err != nil {
				return nodeErr(&codec.EncodeError{Store: store, Part: "key", Err: err})
			}
			raw, found, err := kv.Get(kbuf)
			if err != nil {
				return nodeErr(fmt.Errorf("global store %q: get: %w", store, err))
			}
			var gv GV
			if found {
				if gv, err = vc.Decode(raw); err != nil {
					return nodeErr(fmt.Errorf("global store %q: decode the stored value: %w", store, err))
				}
			}
			vr, ok := joiner(k, v, gv, found)
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
	g := sn.Graph()
	g.AddNode(n, sn)
	skc, svc := dsl.StreamCodecs(dsl.Stream[K, V](s))
	vrc := dsl.ValueCodec(cfg, dsl.CodecFor[VR](svc, vc))
	cfg.Report(g, op, n.Name, valueOpts...)
	if keyMapper == nil || joiner == nil {
		g.AddError(fmt.Errorf("%s %q: %w", op, n.Name, stream.ErrNilFunc))
	}
	return stream.Stream[K, VR](dsl.NewStream(n, skc, vrc))
}
