package stream

import (
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/internal/dsl"
)

// Option configures a step. It is the one option type of every step of
// the DSL packages: stream's ([From], [Stream.Filter], [Map],
// [Stream.To], [Process], ...), table's and window's. Each step's
// documentation lists the options it takes; Build reports an option given
// to a step that does not take it as ErrInvalidOption, and invalid option
// values as ErrInvalidOption (ErrNilFunc, ErrNilCodec for nil functions
// and codecs).
//
// Options are made by this package's functions ([Named], [Partitions],
// [WithStores], [WithTimestamp], [WithKeyCodec], [WithValueCodec]) and by
// packages table and window (table.EmitPerCommit, window.EmitOnWindowClose,
// ...). An Option is immutable and may be given to several steps.
type Option interface {
	// ApplyStep records the option in a step's configuration. Its
	// argument's type is internal to this module, so options are defined
	// by the DSL packages only.
	ApplyStep(*dsl.StepConfig)
}

// optionFunc is an Option of package stream.
type optionFunc func(*dsl.StepConfig)

func (f optionFunc) ApplyStep(c *dsl.StepConfig) { f(c) }

// Named names a step instead of the default "<operation>-<n>" (n is the
// step's position in the builder, so default names change when steps are
// added before it). Every step of packages stream, table and window takes
// it. Names appear in Describe and in errors, must be unique in a builder
// (else Build reports ErrDuplicateName) and must not be empty
// (ErrInvalidOption). A step that writes an internal topic (Repartition,
// GroupBy, and GroupByKey when it repartitions) names the topic
// "<name>-repartition", so its name must form a valid topic name: name
// such steps so that their topics stay stable as the topology evolves.
// Steps made of several steps say how their parts are named.
func Named(name string) Option {
	return optionFunc(func(c *dsl.StepConfig) {
		c.Mark(dsl.OptNamed, "every step")
		if name == "" {
			c.Fail(fmt.Errorf("%w: Named with an empty name", dsl.ErrInvalidOption))
			return
		}
		c.Name = name
	})
}

// WithStores declares the state stores a [Process] step's processor uses:
// typed stores declared with [NewKeyValueStoreSpec], which the processor
// opens with [KeyValueStoreSpec.Open], and stores of byte strings
// declared with [BytesStoreSpec], which it opens with
// [ProcessorContext].Store. Each store
// is a key-value store per task, logged to the compacted changelog topic
// "<app-id>-<name>-changelog" and restored from it, so a name must form a
// valid topic name (else Build reports ErrInvalidOption). Steps of one
// sub-topology may share a store; a store used by two sub-topologies
// (steps separated by a repartition or reading unrelated sources) is
// reported by Build as ErrStoreConflict. Several WithStores add up;
// default: no stores. Only Process takes it. Build also reports WithStores
// without a store (ErrInvalidOption) and a typed store with nil codecs
// (ErrNilCodec).
func WithStores(stores ...StoreSpec) Option {
	return optionFunc(func(c *dsl.StepConfig) {
		c.Mark(dsl.OptWithStores, "Process")
		if len(stores) == 0 {
			c.Fail(fmt.Errorf("%w: WithStores without a store", dsl.ErrInvalidOption))
			return
		}
		for _, st := range stores {
			if st == nil {
				c.Fail(fmt.Errorf("%w: WithStores with a nil store", dsl.ErrInvalidOption))
				continue
			}
			if err := st.check(); err != nil {
				c.Fail(err)
				continue
			}
			if name := st.StoreName(); !slices.Contains(c.Stores, name) {
				c.Stores = append(c.Stores, name)
			}
		}
	})
}

// Partitions sets the partition count of the internal topic of a
// [Stream.Repartition] or a table.GroupBy. The default (0) is the largest
// partition count among the source topics of the sub-topology that
// writes it. n must be >= 1 (else Build reports ErrInvalidOption).
func Partitions(n int32) Option {
	return optionFunc(func(c *dsl.StepConfig) {
		c.Mark(dsl.OptPartitions, "Repartition and table.GroupBy")
		if n < 1 {
			c.Fail(fmt.Errorf("%w: Partitions(%d); the count must be >= 1", dsl.ErrInvalidOption, n))
			return
		}
		c.Partitions = n
	})
}

// WithTimestamp sets the timestamp extractor of a source ([From],
// [FromTopics], table.From): every record read with a value gets the
// timestamp fn returns, given the decoded key and value and the broker
// record's timestamp, instead of the broker record's timestamp (Kafka
// Streams' Consumed.withTimestampExtractor). The steps after the source
// see it in [RecordContext.Timestamp], windowed aggregations use it as
// event time, and sinks write it. Records with a nil value (tombstones)
// keep the broker record's timestamp; fn is not called for them. A panic
// in fn fails the record like a panic in any step. Default: the broker
// record's timestamp.
//
// Every source fails a record whose timestamp is invalid, as Kafka
// Streams' default extractor (FailOnInvalidTimestamp) does: before the
// Unix epoch (negative milliseconds; the zero time.Time, year 1, is one)
// or after [MaxTimestamp] (year 9999), whether fn returned it or it is
// the broker record's (a tombstone's included). The error matches
// [ErrInvalidTimestamp] and is a *[NodeError] naming the source; the
// runtime's error policy applies: the app stops by default, or under
// duality.SkipOnError the record is skipped and counted
// (LogAndSkipOnInvalidTimestamp). Such a record is processed as soon as
// it is the first of its partition and does not move stream time.
//
// The runtime (and streamtest) also use it as the record's event time:
// a task that reads several partitions processes their records in order
// of it, and the task's stream time ([ProcessorContext].StreamTime,
// stream-time punctuations, duality.IdleStreamTimeAdvance) is the
// largest of it. fn runs just before the record is processed, and the
// source reuses the key and value it decoded for fn: a record is decoded
// once.
//
// K and V must be the source's key and value types, else Build reports
// ErrInvalidOption; Build also reports a nil fn (ErrNilFunc) and
// WithTimestamp given to a step other than a source (ErrInvalidOption).
func WithTimestamp[K, V any](fn func(k K, v V, recordTime time.Time) time.Time) Option {
	return optionFunc(func(c *dsl.StepConfig) {
		c.Mark(dsl.OptWithTimestamp, "From and FromTopics only (stream.From, stream.FromTopics, table.From)")
		if fn == nil {
			c.Fail(fmt.Errorf("%w: WithTimestamp with a nil function", dsl.ErrNilFunc))
			return
		}
		c.Timestamp = fn
	})
}

// WithKeyCodec gives a step the codec of its keys, instead of the one the
// handle carries (see the package documentation, "Codecs"). Steps that
// write a topic or a state store take it to override the codec they write
// with ([Stream.To], [Stream.ToFunc], [Stream.Repartition], [GroupByKey],
// [GroupBy], the table and window steps that keep a store), and steps
// that make keys of a new type take it to set the codec the resulting
// handle carries ([Map], [SelectKey], [FlatMap], [Process]). K must be the
// step's key type, else Build reports ErrInvalidOption; a nil kc is
// reported as ErrNilCodec by the step that would encode with it. Default:
// the handle's key codec, or codec.For of a new key type.
func WithKeyCodec[K any](kc codec.Codec[K]) Option {
	return codecOption(dsl.OptWithKeyCodec, kc, func(c *dsl.StepConfig, o *dsl.CodecOption) { c.KeyCodec = o })
}

// WithValueCodec is [WithKeyCodec] for values: it overrides the value
// codec of a step that writes a topic or a store, and sets the value codec
// of a step that makes values of a new type ([Map], [MapValues],
// [FlatMap], [FlatMapValues], [Process], aggregations and joins of
// packages table and window). V must be the step's value type, else
// Build reports ErrInvalidOption. Default: the handle's value codec, or
// codec.For of a new value type.
func WithValueCodec[V any](vc codec.Codec[V]) Option {
	return codecOption(dsl.OptWithValueCodec, vc, func(c *dsl.StepConfig, o *dsl.CodecOption) { c.ValueCodec = o })
}

func codecOption[T any](name string, c codec.Codec[T], set func(*dsl.StepConfig, *dsl.CodecOption)) Option {
	o := &dsl.CodecOption{Type: reflect.TypeFor[T]()}
	if c != nil {
		o.Codec = c
	}
	return optionFunc(func(cfg *dsl.StepConfig) {
		cfg.Mark(name, "steps that write a topic or a store, or make keys or values of a new type")
		set(cfg, o)
	})
}

// Accepted option sets of the steps of this package.
var (
	namedOnly   = []string{dsl.OptNamed}
	keyOpts     = []string{dsl.OptNamed, dsl.OptWithKeyCodec}
	valueOpts   = []string{dsl.OptNamed, dsl.OptWithValueCodec}
	codecOpts   = []string{dsl.OptNamed, dsl.OptWithKeyCodec, dsl.OptWithValueCodec}
	sourceOpts  = []string{dsl.OptNamed, dsl.OptWithTimestamp}
	processOpts = []string{dsl.OptNamed, dsl.OptWithStores, dsl.OptWithKeyCodec, dsl.OptWithValueCodec}
	repartOpts  = []string{dsl.OptNamed, dsl.OptPartitions, dsl.OptWithKeyCodec, dsl.OptWithValueCodec}
)

// outCodecs returns the codecs of the output of a step with options cfg
// (of which it takes accepts) whose input has the codecs kc and vc: the
// input's codec of the same type (the key's first for keys, the value's
// first for values), else codec.For of the new type, unless WithKeyCodec
// or WithValueCodec gives one.
func outCodecs[K, V any](cfg *dsl.StepConfig, accepts []string, kc, vc any) (codec.Codec[K], codec.Codec[V]) {
	k, v := dsl.CodecFor[K](kc, vc), dsl.CodecFor[V](vc, kc)
	if slices.Contains(accepts, dsl.OptWithKeyCodec) {
		k = dsl.KeyCodec(cfg, k)
	}
	if slices.Contains(accepts, dsl.OptWithValueCodec) {
		v = dsl.ValueCodec(cfg, v)
	}
	return k, v
}
