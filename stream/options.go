package stream

import (
	"fmt"
	"slices"
	"time"

	"github.com/duality-streams/duality/internal/dsl"
)

// stepConfig is what options set; each step reads the fields it uses.
type stepConfig struct {
	name       string
	partitions int32
	stores     []string
	timestamp  any // func(K, V, time.Time) time.Time of a source
	errs       []error
}

// Option configures a step (From, Filter, Map, To, ...).
type Option interface{ applyStep(*stepConfig) }

// RepartitionOption configures [Stream.Repartition]. [Named] is both an
// Option and a RepartitionOption.
type RepartitionOption interface{ applyRepartition(*stepConfig) }

// NameOption is returned by [Named]; it is accepted by every step.
type NameOption struct{ name string }

// Named names a step instead of the default "<operation>-<n>" (n is the
// step's position in the builder, so default names change when steps are
// added before it). Names appear in Describe and in errors, must be unique
// in a builder (else Build reports ErrDuplicateName) and must not be
// empty (ErrInvalidOption). A Repartition's name also names its internal
// topic "<name>-repartition" and must then form a valid topic name: name
// repartitions so that their topics stay stable as the topology evolves.
func Named(name string) NameOption { return NameOption{name: name} }

func (o NameOption) set(c *stepConfig) {
	if o.name == "" {
		c.errs = append(c.errs, fmt.Errorf("%w: Named with an empty name", dsl.ErrInvalidOption))
		return
	}
	c.name = o.name
}

func (o NameOption) applyStep(c *stepConfig)        { o.set(c) }
func (o NameOption) applyRepartition(c *stepConfig) { o.set(c) }
func (o NameOption) applyProcess(c *stepConfig)     { o.set(c) }

// ProcessOption configures [Process]. [Named] is both an Option and a
// ProcessOption.
type ProcessOption interface{ applyProcess(*stepConfig) }

type storesOption []string

func (o storesOption) applyProcess(c *stepConfig) {
	if len(o) == 0 {
		c.errs = append(c.errs, fmt.Errorf("%w: WithStores without a store name", dsl.ErrInvalidOption))
		return
	}
	for _, name := range o {
		if !slices.Contains(c.stores, name) {
			c.stores = append(c.stores, name)
		}
	}
}

// WithStores declares the state stores a [Process] step's processor uses,
// by name; the processor reaches them with [ProcessorContext.Store]. Each
// store is a key-value store per task, logged to the compacted changelog
// topic "<app-id>-<name>-changelog" and restored from it, so a name must
// form a valid topic name (else Build reports ErrInvalidOption). Steps of
// one sub-topology may share a store; a store used by two sub-topologies
// (steps separated by a repartition or reading unrelated sources) is
// reported by Build as ErrStoreConflict. Several WithStores add up;
// default: no stores.
func WithStores(names ...string) ProcessOption { return storesOption(names) }

type partitionsOption int32

func (o partitionsOption) applyRepartition(c *stepConfig) {
	if o < 1 {
		c.errs = append(c.errs, fmt.Errorf("%w: Partitions(%d); the count must be >= 1", dsl.ErrInvalidOption, int32(o)))
		return
	}
	c.partitions = int32(o)
}

// Partitions sets the partition count of a Repartition's internal topic.
// The default (0) is the largest partition count among the source topics
// of the sub-topology that writes it. n must be >= 1 (else Build reports
// ErrInvalidOption).
func Partitions(n int32) RepartitionOption { return partitionsOption(n) }

func stepOptions(g *dsl.Graph, opts []Option) stepConfig {
	c := sourceOptions(g, opts)
	if c.timestamp != nil {
		g.AddError(fmt.Errorf("%w: WithTimestamp applies to From and FromTopics only", dsl.ErrInvalidOption))
	}
	return c
}

// sourceOptions is stepOptions for the steps that accept WithTimestamp.
func sourceOptions(g *dsl.Graph, opts []Option) stepConfig {
	var c stepConfig
	for _, o := range opts {
		if o != nil {
			o.applyStep(&c)
		}
	}
	for _, err := range c.errs {
		g.AddError(err)
	}
	return c
}

type timestampOption struct{ fn any }

func (o timestampOption) applyStep(c *stepConfig) {
	if o.fn == nil {
		c.errs = append(c.errs, fmt.Errorf("%w: WithTimestamp with a nil function", dsl.ErrNilFunc))
		return
	}
	c.timestamp = o.fn
}

// WithTimestamp sets the timestamp extractor of a source ([From],
// [FromTopics]): every record read with a value gets the timestamp fn
// returns, given the decoded key and value and the broker record's
// timestamp, instead of the broker record's timestamp (Kafka Streams'
// Consumed.withTimestampExtractor). The steps after the source see it in
// [RecordContext.Timestamp], windowed aggregations use it as event time,
// and sinks write it. Records with a nil value (tombstones) keep the
// broker record's timestamp; fn is not called for them. A panic in fn
// fails the record like a panic in any step. Default: the broker record's
// timestamp.
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
	if fn == nil {
		return timestampOption{}
	}
	return timestampOption{fn: fn}
}

func processOptions(g *dsl.Graph, opts []ProcessOption) stepConfig {
	var c stepConfig
	for _, o := range opts {
		if o != nil {
			o.applyProcess(&c)
		}
	}
	for _, err := range c.errs {
		g.AddError(err)
	}
	return c
}

func repartitionOptions(g *dsl.Graph, opts []RepartitionOption) stepConfig {
	var c stepConfig
	for _, o := range opts {
		if o != nil {
			o.applyRepartition(&c)
		}
	}
	for _, err := range c.errs {
		g.AddError(err)
	}
	return c
}
