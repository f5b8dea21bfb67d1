package dsl

import (
	"fmt"
	"reflect"
	"slices"

	"github.com/duality-streams/duality/codec"
)

// Names of the options of package stream, as [StepConfig.Mark] records
// them and errors report them. Packages table and window name theirs the
// same way.
const (
	OptNamed          = "Named"
	OptPartitions     = "Partitions"
	OptWithStores     = "WithStores"
	OptWithTimestamp  = "WithTimestamp"
	OptWithKeyCodec   = "WithKeyCodec"
	OptWithValueCodec = "WithValueCodec"
)

// StepConfig is what the options given to one DSL step set. Package
// stream's Option is any value with an ApplyStep(*StepConfig) method:
// the argument's type is internal, so only the DSL packages (stream,
// table, window) define options, and every step of every package takes
// the same option type. A step applies its options with [ApplyOptions],
// reads the fields it uses, and reports with [StepConfig.Report] the
// options it does not take and the invalid values the options recorded.
type StepConfig struct {
	// Name is the step's name (Named); "" for the default.
	Name string
	// Partitions is the partition count of a repartition topic
	// (Partitions); 0 for the default.
	Partitions int32
	// Stores are the state stores a Process step declares (WithStores),
	// without duplicates.
	Stores []string
	// Timestamp is a source's timestamp extractor (WithTimestamp), a
	// func(K, V, time.Time) time.Time.
	Timestamp any
	// KeyCodec and ValueCodec are the codecs WithKeyCodec and
	// WithValueCodec give, read with [KeyCodec] and [ValueCodec].
	KeyCodec, ValueCodec *CodecOption

	ext   map[string]any
	given []givenOption
	errs  []error
	// stepErrs are errors that need the step's name to make sense.
	stepErrs []error
}

// CodecOption is a codec an option gives: a codec.Codec[T] (nil when the
// option was given a nil codec: the step that uses it reports that) and
// T.
type CodecOption struct {
	Codec any
	Type  reflect.Type
}

type givenOption struct{ name, where string }

// Mark records that the option name was given; where says which steps
// take it, for the error of a step that does not ("From and FromTopics
// only", "windowed aggregations").
func (c *StepConfig) Mark(name, where string) {
	if !c.Has(name) {
		c.given = append(c.given, givenOption{name: name, where: where})
	}
}

// Has reports whether the option name was given.
func (c *StepConfig) Has(name string) bool {
	return slices.ContainsFunc(c.given, func(o givenOption) bool { return o.name == name })
}

// Fail records an error about an option's value; [StepConfig.Report]
// reports it. err should match ErrInvalidOption, ErrNilFunc or
// ErrNilCodec.
func (c *StepConfig) Fail(err error) { c.errs = append(c.errs, err) }

// Ext returns the value of type *T that a sibling package keeps in c
// under key (package window keeps its options there), creating it on
// first use.
func Ext[T any](c *StepConfig, key string) *T {
	if v, ok := c.ext[key].(*T); ok {
		return v
	}
	if c.ext == nil {
		c.ext = map[string]any{}
	}
	v := new(T)
	c.ext[key] = v
	return v
}

// ApplyOptions returns the configuration opts set, in order (a later
// option overrides an earlier one of the same kind); nil options are
// skipped.
func ApplyOptions[O interface{ ApplyStep(*StepConfig) }](opts []O) *StepConfig {
	c := new(StepConfig)
	for _, o := range opts {
		if any(o) != nil {
			o.ApplyStep(c)
		}
	}
	return c
}

// Report adds to g the errors the options recorded (with [StepConfig.Fail]
// they say which option they are about), and errors prefixed with the step
// (op and name): codecs of the wrong type, and an error matching
// ErrInvalidOption for every option given that is not among accepts.
func (c *StepConfig) Report(g *Graph, op, name string, accepts ...string) {
	if g == nil {
		return
	}
	for _, err := range c.errs {
		g.AddError(err)
	}
	for _, err := range c.stepErrs {
		g.AddError(fmt.Errorf("%s %q: %w", op, name, err))
	}
	for _, o := range c.given {
		if !slices.Contains(accepts, o.name) {
			g.AddError(fmt.Errorf("%w: %s %q does not take %s; %s applies to %s", ErrInvalidOption, op, name, o.name, o.name, o.where))
		}
	}
}

// KeyCodec returns the key codec a WithKeyCodec option in c gave, else
// def. A codec of another type than K is recorded as an error matching
// ErrInvalidOption (see [StepConfig.Report]), and def is returned. A nil
// codec given is returned: the steps that encode with codecs report nil
// ones (ErrNilCodec).
func KeyCodec[K any](c *StepConfig, def codec.Codec[K]) codec.Codec[K] {
	return optionCodec(c, c.KeyCodec, OptWithKeyCodec, "keys", def)
}

// ValueCodec is [KeyCodec] for WithValueCodec.
func ValueCodec[V any](c *StepConfig, def codec.Codec[V]) codec.Codec[V] {
	return optionCodec(c, c.ValueCodec, OptWithValueCodec, "values", def)
}

func optionCodec[T any](c *StepConfig, o *CodecOption, opt, part string, def codec.Codec[T]) codec.Codec[T] {
	if o == nil {
		return def
	}
	if t := reflect.TypeFor[T](); o.Type != t {
		c.stepErrs = append(c.stepErrs, fmt.Errorf("%w: %s gives a codec of %v, the step's %s are %v", ErrInvalidOption, opt, o.Type, part, t))
		return def
	}
	if o.Codec == nil {
		return nil
	}
	return o.Codec.(codec.Codec[T])
}

// CodecFor returns the codec of a step's output of type T whose inputs
// were encoded with the codecs in: the first of them that is a
// codec.Codec[T] (the output keeps the type of that input, so it keeps its
// codec), else codec.For[T]().
func CodecFor[T any](in ...any) codec.Codec[T] {
	for _, c := range in {
		if c, ok := c.(codec.Codec[T]); ok && c != nil {
			return c
		}
	}
	return codec.For[T]()
}
