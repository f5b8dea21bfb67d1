package stream

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"runtime/debug"
	"slices"
	"time"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/dsl"
	"github.com/duality-streams/duality/internal/topology"
)

// Record is a record as a [Processor] sees and forwards it.
type Record[K, V any] struct {
	Key       K
	Value     V
	Timestamp time.Time
	// Headers are shared with the input record: copy before modifying.
	Headers []broker.Header
	// Tombstone says the value is absent: the source read a nil value
	// (Value is then V's zero value), and sinks write a forwarded
	// Tombstone record with a nil value, which deletes its key on a
	// compacted topic.
	Tombstone bool
}

// Processor is a low-level step for what the other steps cannot express:
// it sees each record with its metadata, forwards any number of records
// (with any key, value, timestamp and headers) and can fail a record with
// an error. [Process] creates one Processor per task, so a Processor needs
// no locking for its own fields.
type Processor[K, V, KOut, VOut any] interface {
	// Init is called once, when the task is created, before any record.
	// pc stays valid until Close. An error fails the task's creation.
	// A task is created again after every rebalance and restart, so
	// records forwarded from Init are forwarded each time.
	Init(pc ProcessorContext[KOut, VOut]) error
	// Process handles one record. A returned error fails the record:
	// it leaves the task's Process wrapped in a *NodeError naming the step
	// (unless it already is one, from a downstream step). ctx is not
	// canceled when the app stops: the runtime lets the record finish
	// (the app waits for it), so a Process that blocks on I/O should bound
	// its own wait.
	Process(ctx context.Context, rec Record[K, V]) error
	// Close is called once when the task closes, after its last commit:
	// records forwarded and store writes made from Close are not written.
	Close() error
}

// ProcessorContext is what a [Processor] gets from its task.
type ProcessorContext[K, V any] interface {
	// Forward passes rec to the steps after the processor and returns
	// their error. A zero rec.Timestamp means the timestamp of the record
	// being processed (in a punctuator: the punctuation's time). Call it
	// from Process, a punctuator (or Init); not safe for concurrent use.
	Forward(ctx context.Context, rec Record[K, V]) error
	// RecordContext returns the metadata of the record being processed:
	// topic, partition, offset, timestamp, headers. In a punctuator it
	// has the punctuation's time as Timestamp, an empty Topic and -1 as
	// Partition and Offset (as in Kafka Streams); elsewhere outside
	// Process it returns the zero RecordContext.
	RecordContext() RecordContext
	// StreamTime returns the task's stream time: the largest timestamp
	// of the input records the task has processed, the one being
	// processed included (moved further while the task is idle when the
	// app sets duality.IdleStreamTimeAdvance). It is the zero Time before
	// the task's first record. The runtime does not persist it: after a
	// restart or a rebalance it is the zero Time until the task's first
	// record, unless a step of the task restored the stream time it
	// persisted in its store (package window's steps with
	// WithTaskStreamTime do), from which it then starts.
	StreamTime() time.Time
	// Schedule calls p every interval by the clock typ names, on the
	// task's goroutine between two records, until the returned
	// Cancellable is canceled or the task closes (Kafka Streams'
	// ProcessorContext.schedule):
	//
	//   - [PunctuateStreamTime]: driven by the task's stream time, so
	//     only by input (and the idle advance). Due times are multiples
	//     of interval; the first record with a non-negative timestamp
	//     fires it the first time. p gets the stream time.
	//   - [PunctuateWallClock]: driven by the runtime's clock (the app's
	//     duality.Clock option, the driver's clock in streamtest), also
	//     while no input arrives; first one interval after Schedule.
	//     p gets the clock's time.
	//
	// When a clock jumps by several intervals, p is called once and the
	// missed calls are skipped. p may Forward records and use the step's
	// stores; its output and store writes are committed like those of a
	// record, atomically with the task's input offsets, so they happen
	// exactly once (a punctuation whose work was not committed before a
	// crash runs again after the restart, when it is due again). An
	// error or panic from p fails it like a failed record: with the
	// runtime's default policy the app stops; under a skip policy its
	// output and writes are dropped. Call Schedule from Init (usually),
	// Process or a punctuator. It returns an error matching
	// [ErrInvalidSchedule] for an interval below a millisecond, an
	// unknown type or a nil p.
	Schedule(interval time.Duration, typ PunctuationType, p Punctuator) (Cancellable, error)
	// TaskID names the processor's task.
	TaskID() TaskID
	// AppID is the application id.
	AppID() string
	// Logger is the task's logger with a "node" attribute.
	Logger() *slog.Logger
	// Now is the runtime's clock.
	Now() time.Time
	// Store returns the task's partition of the state store name, which
	// the step declared with [WithStores], as a store of byte strings (a
	// typed store declared with [NewKeyValueStoreSpec] is opened with
	// [KeyValueStoreSpec.Open], which calls Store); otherwise it returns
	// an error matching ErrUnknownStore.
	// The store is restored from its changelog before Init is called and
	// is valid until Close. Call it from Init or Process; not safe for
	// concurrent use.
	Store(name string) (BytesStore, error)
}

// BytesStore is a task's partition of a state store: an ordered key-value
// store of byte strings (keys ordered by bytes.Compare). Writes are
// buffered until the task's next commit, which logs the newest value of
// each written key (one record per key and commit, however often it was
// written) to the store's changelog topic atomically with the task's
// output records and input offsets, so after a crash or a move to another instance the state is
// exactly the one that matches the committed output. Reads see the task's
// own uncommitted writes. A record that fails under a skip error policy
// leaves no writes behind. Not safe for concurrent use.
type BytesStore interface {
	// Get returns a copy of key's value and true, or nil and false if
	// key is absent.
	Get(key []byte) ([]byte, bool, error)
	// Put sets key to value. Both are copied; a nil value is stored as
	// an empty value (use Delete to delete).
	Put(key, value []byte) error
	// Delete deletes key (a tombstone in the changelog, even for an
	// absent key). A key put since the last commit that was absent
	// before that Put is forgotten instead: the changelog gets neither
	// record.
	Delete(key []byte) error
	// Range returns a single-use iterator over the pairs whose keys are
	// in [start, end), ascending (nil start: from the first key; nil end:
	// no upper bound), and a function that returns the error that ended
	// the iteration, if any (check it after the loop). The yielded slices
	// are valid until the next step and must not be modified. Writes
	// made during the iteration are not seen by it.
	Range(start, end []byte) (iter.Seq2[[]byte, []byte], func() error)
}

// PunctuationType says which clock drives a punctuation (see
// [ProcessorContext.Schedule]).
type PunctuationType uint8

const (
	// PunctuateStreamTime fires as the task's stream time passes the due
	// times: only input moves it.
	PunctuateStreamTime = PunctuationType(topology.StreamTimePunctuation)
	// PunctuateWallClock fires as the runtime's clock passes the due
	// times, also without input.
	PunctuateWallClock = PunctuationType(topology.WallClockPunctuation)
)

// String returns "stream-time" or "wall-clock".
func (t PunctuationType) String() string { return topology.PunctuationType(t).String() }

// Punctuator is a scheduled callback of a [Processor]. ts is the time
// that fired it: the stream time for [PunctuateStreamTime], the clock for
// [PunctuateWallClock]. A returned error fails the punctuation like a
// failed record.
type Punctuator func(ctx context.Context, ts time.Time) error

// Cancellable stops a scheduled punctuation.
type Cancellable interface {
	// Cancel stops the punctuation: it is not called again. Cancel may
	// be called more than once, also from the punctuator itself.
	Cancel()
}

// ErrInvalidSchedule is matched by the errors of
// [ProcessorContext.Schedule] for invalid arguments.
var ErrInvalidSchedule = errors.New("stream: invalid punctuation schedule")

type cancelFunc func()

func (f cancelFunc) Cancel() { f() }

type processorContext[K, V any] struct {
	t      *dsl.Task
	n      *dsl.Node
	stores []string
	next   emit[K, V]
	in     *RecordContext
	out    RecordContext
	logger *slog.Logger
}

func (pc *processorContext[K, V]) Forward(ctx context.Context, rec Record[K, V]) error {
	var base RecordContext
	if pc.in != nil {
		base = *pc.in
	}
	ts := rec.Timestamp
	if ts.IsZero() {
		ts = base.Timestamp
	}
	// Reusing out is safe: the steps below never reach this processor
	// again while it forwards (the graph has no cycles), and no step
	// keeps the pointer.
	pc.out = RecordContext{Topic: base.Topic, Partition: base.Partition, Offset: base.Offset, Timestamp: ts, Headers: rec.Headers, Tombstone: rec.Tombstone}
	err := pc.next(ctx, &pc.out, rec.Key, rec.Value)
	pc.t.Current = pc.n
	return err
}

func (pc *processorContext[K, V]) RecordContext() RecordContext {
	if pc.in == nil {
		return RecordContext{}
	}
	return *pc.in
}

func (pc *processorContext[K, V]) TaskID() TaskID { return pc.t.Env().TaskID() }

func (pc *processorContext[K, V]) Store(name string) (BytesStore, error) {
	if !slices.Contains(pc.stores, name) {
		return nil, fmt.Errorf("%w: step %q did not declare store %q (use stream.WithStores)", ErrUnknownStore, pc.n.Name, name)
	}
	kv, err := pc.t.Env().Store(name)
	if err != nil {
		return nil, fmt.Errorf("step %q: store %q: %w", pc.n.Name, name, err)
	}
	return kv, nil
}

func (pc *processorContext[K, V]) StreamTime() time.Time {
	st := pc.t.Env().StreamTime()
	if st == topology.NoTime {
		return time.Time{}
	}
	return time.UnixMilli(st).UTC()
}

func (pc *processorContext[K, V]) Schedule(interval time.Duration, typ PunctuationType, p Punctuator) (Cancellable, error) {
	switch {
	case interval < time.Millisecond:
		return nil, fmt.Errorf("%w: step %q: interval %v: must be at least 1ms", ErrInvalidSchedule, pc.n.Name, interval)
	case typ != PunctuateStreamTime && typ != PunctuateWallClock:
		return nil, fmt.Errorf("%w: step %q: unknown punctuation type %d", ErrInvalidSchedule, pc.n.Name, typ)
	case p == nil:
		return nil, fmt.Errorf("%w: step %q: nil punctuator", ErrInvalidSchedule, pc.n.Name)
	}
	cancel, err := pc.t.Env().Schedule(interval, topology.PunctuationType(typ), func(ctx context.Context, ts int64) error {
		return pc.punctuate(ctx, time.UnixMilli(ts).UTC(), p)
	})
	if err != nil {
		return nil, fmt.Errorf("step %q: schedule: %w", pc.n.Name, err)
	}
	return cancelFunc(cancel), nil
}

// punctuate runs p with a record context that carries the punctuation's
// time, and turns its error or panic into a *NodeError naming the step.
func (pc *processorContext[K, V]) punctuate(ctx context.Context, ts time.Time, p Punctuator) error {
	rc := RecordContext{Timestamp: ts, Partition: -1, Offset: -1}
	in := pc.in
	pc.in = &rc
	pc.t.Current = pc.n
	err := guard(func() error { return p(ctx, ts) })
	pc.in = in
	if err != nil {
		if _, ok := errors.AsType[*NodeError](err); ok {
			return err
		}
		return nodeError(pc.n, &rc, err)
	}
	return nil
}

func (pc *processorContext[K, V]) AppID() string        { return pc.t.Env().AppID() }
func (pc *processorContext[K, V]) Logger() *slog.Logger { return pc.logger }
func (pc *processorContext[K, V]) Now() time.Time       { return pc.t.Env().Now() }

// Process runs the records of s through processors that supplier creates,
// one per task, and returns the stream of the records they forward.
// Processors can schedule punctuations by stream time and by wall-clock
// time ([ProcessorContext.Schedule]) and read the task's stream time.
// Init runs when the task is created and Close when it closes; a panic in
// supplier, Init or Close is returned as an error (*PanicError), one in
// Process fails the record like any step's panic. The output's codecs are
// codec.For of KOut and VOut (the input's codec for a type that is the
// input's type), or the ones [WithKeyCodec] and [WithValueCodec] give.
// Options: [Named] (default "process-<n>"), [WithStores] (default: no
// stores), [WithKeyCodec], [WithValueCodec].
//
// Build reports a nil supplier (ErrNilFunc); task creation fails if it
// returns nil.
func Process[K, V, KOut, VOut any](s Stream[K, V], supplier func() Processor[K, V, KOut, VOut], opts ...Option) Stream[KOut, VOut] {
	p := nodeOf(s)
	if p == nil {
		return Stream[KOut, VOut]{}
	}
	g := p.Graph()
	cfg := dsl.ApplyOptions(opts)
	kc, vc := codecsOf(s)
	kcOut, vcOut := outCodecs[KOut, VOut](cfg, processOpts, kc, vc)
	n := &dsl.Node{Op: "process", Kind: dsl.KindProcessor, Name: cfg.Name, Stores: cfg.Stores}
	n.Instantiate = func(t *dsl.Task) (any, error) {
		next, err := fanout[KOut, VOut](t, n)
		if err != nil {
			return nil, err
		}
		pc := &processorContext[KOut, VOut]{t: t, n: n, stores: cfg.Stores, next: next, logger: t.Env().Logger().With("node", n.Name)}
		var proc Processor[K, V, KOut, VOut]
		err = guard(func() error {
			proc = supplier()
			if proc == nil {
				return fmt.Errorf("process %q: the supplier returned a nil Processor", n.Name)
			}
			if err := proc.Init(pc); err != nil {
				return fmt.Errorf("process %q: init: %w", n.Name, err)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		t.OnClose(func() error {
			if err := guard(proc.Close); err != nil {
				return fmt.Errorf("process %q: close: %w", n.Name, err)
			}
			return nil
		})
		return emit[K, V](func(ctx context.Context, rc *RecordContext, k K, v V) error {
			t.Current = n
			pc.in = rc
			err := proc.Process(ctx, Record[K, V]{Key: k, Value: v, Timestamp: rc.Timestamp, Headers: rc.Headers, Tombstone: rc.Tombstone})
			pc.in = nil
			if err != nil {
				if _, ok := errors.AsType[*NodeError](err); ok {
					return err
				}
				return nodeError(n, rc, err)
			}
			return nil
		}), nil
	}
	g.AddNode(n, p)
	cfg.Report(g, n.Op, n.Name, processOpts...)
	if supplier == nil {
		g.AddError(fmt.Errorf("process %q: supplier: %w", n.Name, ErrNilFunc))
	}
	return handle(n, kcOut, vcOut)
}

// guard runs f and turns a panic into a *PanicError.
func guard(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return f()
}
