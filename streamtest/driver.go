package streamtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/internal/dsl"
	"github.com/duality-streams/duality/internal/runtime"
	"github.com/duality-streams/duality/internal/topology"
	"github.com/duality-streams/duality/stream"
)

var (
	// ErrClosed is returned by calls on a closed Driver.
	ErrClosed = errors.New("streamtest: driver closed")
	// ErrCoPartition is matched by the error of New when a sub-topology
	// that keeps state (an aggregation, a table, a join) reads topics with
	// different partition counts: the runtime's check, so it is
	// [stream.ErrNotCoPartitioned]. A stateless sub-topology may read
	// topics of different counts, as in the runtime.
	ErrCoPartition = stream.ErrNotCoPartitioned
	// ErrLoop is returned when one piped record causes more records to be
	// processed than MaxRecordsPerPipe allows: topics feeding each other
	// through several sub-topologies.
	ErrLoop = errors.New("streamtest: too many records for one input record; do topics feed each other in a loop?")
)

// config is what the options set.
type config struct {
	appID       string
	defaultPart int32
	partitions  map[string]int32
	start       time.Time
	logger      *slog.Logger
	maxPerPipe  int
	errs        []error
}

// Option configures a Driver.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// AppID sets the application id; internal topics are named
// "<app-id>-<name>". The default is "test".
func AppID(id string) Option {
	return optionFunc(func(c *config) {
		if id == "" {
			c.errs = append(c.errs, errors.New("streamtest: AppID: empty id"))
			return
		}
		c.appID = id
	})
}

// Partitions sets the partition count of a topic the topology reads or
// writes (not of internal topics, whose counts the topology decides). The
// default is DefaultPartitions. New creates the topic, also when the
// topology does not name it: a topic that a stream.ToFunc step chooses
// per record must be declared this way, as it must exist for the
// runtime. n must be >= 1 and topic a valid topic name; New reports
// violations (broker.ErrInvalidPartitions, broker.ErrInvalidTopicName).
func Partitions(topic string, n int32) Option {
	return optionFunc(func(c *config) {
		if err := broker.ValidateTopicName(topic); err != nil {
			c.errs = append(c.errs, fmt.Errorf("streamtest: Partitions: %w", err))
			return
		}
		if n < 1 {
			c.errs = append(c.errs, fmt.Errorf("streamtest: Partitions(%q, %d): %w", topic, n, broker.ErrInvalidPartitions))
			return
		}
		c.partitions[topic] = n
	})
}

// DefaultPartitions sets the partition count of the topology's external
// topics (sources, sinks with a fixed topic, global tables' topics)
// without a Partitions option. The default is 1; n must be >= 1
// (broker.ErrInvalidPartitions).
func DefaultPartitions(n int32) Option {
	return optionFunc(func(c *config) {
		if n < 1 {
			c.errs = append(c.errs, fmt.Errorf("streamtest: DefaultPartitions(%d): %w", n, broker.ErrInvalidPartitions))
			return
		}
		c.defaultPart = n
	})
}

// StartTime sets the driver's clock at start: the timestamp of records
// piped without one, the runtime's wall clock (what TaskEnv.Now returns)
// and the broker's. The default is the Unix epoch
// (1970-01-01T00:00:00Z), so tests are deterministic. Move the clock with
// [Driver.Advance].
func StartTime(t time.Time) Option {
	return optionFunc(func(c *config) { c.start = t })
}

// Logger sets the runtime's logger, which the tasks get (their lines
// carry the attributes app and task). The default discards everything.
func Logger(l *slog.Logger) Option {
	return optionFunc(func(c *config) {
		if l != nil {
			c.logger = l
		}
	})
}

// MaxRecordsPerPipe bounds the records processed for one piped record:
// the piped one and those it causes in topics the topology reads. Beyond
// it the pipe fails with ErrLoop instead of running forever when topics
// feed each other in a loop. The default is 100000; n must be >= 1.
func MaxRecordsPerPipe(n int) Option {
	return optionFunc(func(c *config) {
		if n < 1 {
			c.errs = append(c.errs, fmt.Errorf("streamtest: MaxRecordsPerPipe(%d): must be >= 1", n))
			return
		}
		c.maxPerPipe = n
	})
}

// topicLog is one topic's records, by partition and in arrival order.
type topicLog struct {
	partitions int32
	parts      [][]broker.Record // records by partition, in offset order
	all        []broker.Record   // every record in arrival order
	cursor     int               // first record of all not yet read by Output
}

// Driver runs a topology synchronously on the runtime that runs apps,
// over an in-memory embedded broker: every piped record goes through the
// task of its partition before the pipe call returns, and records written
// to topics the topology reads (repartition topics, or topics of other
// sub-topologies) are processed right away, breadth-first, in the order
// they were written. It keeps every written record in memory for
// [Output] and [Driver.Records].
//
// New creates the topology's tasks, one per partition of each
// sub-topology, as the runtime does for an app that owns every partition;
// records reach the task of their partition, chosen from the key by
// Kafka's default partitioner (partition 0 for piped records without a
// key).
//
// Tasks get the state stores their sub-topology declares; each record a
// task processes is one commit (see the package documentation, # State
// stores).
//
// A record that fails is skipped as the runtime's SkipOnError policy
// skips it: it leaves no output and no state writes, the records
// processed before it stay written, and the records queued behind it are
// processed; the pipe returns its error once every record is processed
// (see the package documentation, # Errors). A Driver is not safe for
// concurrent use.
type Driver struct {
	topo   *topology.Topology
	cfg    config
	now    time.Time
	b      *embedded.Broker
	st     *runtime.Stepper
	topics map[string]*topicLog
	queue  []broker.Record
	closed bool
}

// New creates an in-memory broker with the topology's topics, creates
// the tasks of topo and returns a Driver for it. It fails with the joined
// errors of invalid options, with an error matching ErrCoPartition when
// a sub-topology that keeps state reads topics with different partition
// counts, and with the first task creation error (for example an Init
// error of a stream.Process step).
func New(topo *stream.Topology, opts ...Option) (*Driver, error) {
	cfg := config{appID: "test", defaultPart: 1, partitions: make(map[string]int32), start: time.Unix(0, 0).UTC(), logger: slog.New(slog.DiscardHandler), maxPerPipe: 100_000}
	for _, o := range opts {
		if o != nil {
			o.apply(&cfg)
		}
	}
	raw := dsl.Unwrap((*dsl.Topology)(topo))
	if raw == nil {
		cfg.errs = append(cfg.errs, errors.New("streamtest: nil topology"))
	}
	if len(cfg.errs) > 0 {
		return nil, errors.Join(cfg.errs...)
	}
	d := &Driver{topo: raw, cfg: cfg, now: cfg.start, topics: make(map[string]*topicLog)}
	// The broker's clock stamps changelog records; cleanup never runs.
	b, err := embedded.Open("/broker", embedded.WithFS(vfs.NewMem()), embedded.WithClock(d.Now),
		embedded.WithCleanupInterval(-1))
	if err != nil {
		return nil, fmt.Errorf("streamtest: open broker: %w", err)
	}
	d.b = b
	if err := d.start(); err != nil {
		return nil, errors.Join(err, d.Close())
	}
	return d, nil
}

// start creates the topics the runtime needs to exist, then the tasks.
func (d *Driver) start() error {
	ctx := context.Background()
	rc := runtime.DefaultConfig()
	rc.Workers = 1
	rc.Logger = d.cfg.logger
	rc.Clock = d.Now
	rc.RepartitionPurgeInterval = 0
	app, err := runtime.New(d.cfg.appID, d.topo, d.b, rc)
	if err != nil {
		return fmt.Errorf("streamtest: %w", err)
	}
	topics := app.ExternalTopics()
	for name := range d.cfg.partitions {
		if !slices.Contains(topics, name) {
			topics = append(topics, name)
		}
	}
	for _, name := range topics {
		n, ok := d.cfg.partitions[name]
		if !ok {
			n = d.cfg.defaultPart
		}
		if err := d.b.CreateTopic(ctx, name, broker.TopicConfig{Partitions: n}); err != nil {
			return fmt.Errorf("streamtest: create topic %q: %w", name, err)
		}
	}
	st, recs, err := app.Step(ctx)
	if err != nil {
		return fmt.Errorf("streamtest: %w", err)
	}
	d.st = st
	return d.written(ctx, recs)
}

// log returns the log of topic, which exists in the broker.
func (d *Driver) log(ctx context.Context, topic string) (*topicLog, error) {
	if l, ok := d.topics[topic]; ok {
		return l, nil
	}
	info, err := d.b.DescribeTopic(ctx, topic)
	if err != nil {
		return nil, err
	}
	n := info.Config.Partitions
	l := &topicLog{partitions: n, parts: make([][]broker.Record, n)}
	d.topics[topic] = l
	return l, nil
}

// Now returns the driver's clock.
func (d *Driver) Now() time.Time { return d.now }

// Advance moves the driver's clock forward by dt (backwards if dt < 0). It
// runs no punctuation: [Driver.AdvanceWallClock] does.
func (d *Driver) Advance(dt time.Duration) { d.now = d.now.Add(dt) }

// add logs rec, written to the broker, and queues it when a task reads
// its topic. A zero timestamp is the driver's clock, which the broker
// stamped it with; the broker keeps milliseconds.
func (d *Driver) add(ctx context.Context, rec broker.Record) error {
	l, err := d.log(ctx, rec.Topic)
	if err != nil {
		return err
	}
	if rec.Timestamp.IsZero() {
		rec.Timestamp = d.now
	}
	rec.Timestamp = rec.Timestamp.Truncate(time.Millisecond)
	l.parts[rec.Partition] = append(l.parts[rec.Partition], rec)
	l.all = append(l.all, rec)
	if tasks, _ := d.st.Reads(rec.Topic); tasks {
		d.queue = append(d.queue, rec)
	}
	return nil
}

// written logs the records a commit wrote.
func (d *Driver) written(ctx context.Context, recs []broker.Record) error {
	for _, rec := range recs {
		if err := d.add(ctx, rec); err != nil {
			return err
		}
	}
	return nil
}

// PipeRaw writes rec (already encoded) to its topic and processes it and
// every record it causes, as the typed [InputTopic] methods do. Use it to
// feed bytes a codec cannot produce, such as corrupt records. rec.Topic
// must be read by the topology (else an error matching
// broker.ErrUnknownTopic); rec.Partition may be broker.PartitionByKey; a
// zero rec.Timestamp means the driver's clock.
//
// A record that fails (the piped one or one it causes) does not stop the
// pipe: it is skipped as under the runtime's SkipOnError policy, and the
// records queued behind it are processed. PipeRaw returns the processing
// errors once every record is processed: the error of the one record
// that failed (usually wrapping a *stream.NodeError; its message names
// the task and the record), or errors.Join of them when several failed.
// It stops early, dropping the records still queued, when ctx ends (its
// error), when the pipe causes more records than MaxRecordsPerPipe
// (ErrLoop) and on an error of the runtime that is not a record's.
func (d *Driver) PipeRaw(ctx context.Context, rec broker.Record) error {
	if d.closed {
		return ErrClosed
	}
	tasks, global := d.st.Reads(rec.Topic)
	if !tasks && !global {
		return &broker.TopicError{Topic: rec.Topic, Partition: -1, Err: fmt.Errorf("no sub-topology reads it: %w", broker.ErrUnknownTopic)}
	}
	l, err := d.log(ctx, rec.Topic)
	if err != nil {
		return err
	}
	switch {
	case rec.Partition == broker.PartitionByKey && rec.Key == nil:
		rec.Partition = 0
	case rec.Partition == broker.PartitionByKey:
		rec.Partition = broker.KeyPartition(rec.Key, l.partitions)
	case rec.Partition < 0 || rec.Partition >= l.partitions:
		return &broker.TopicError{Topic: rec.Topic, Partition: rec.Partition, Err: broker.ErrUnknownPartition}
	}
	if rec.Timestamp.IsZero() {
		rec.Timestamp = d.now
	}
	recs := []broker.Record{rec}
	if err := d.b.Produce(ctx, recs); err != nil {
		return err
	}
	if err := d.add(ctx, recs[0]); err != nil {
		return err
	}
	if global {
		if err := d.st.CatchUpGlobals(ctx); err != nil {
			return err
		}
	}
	return pipeError(d.drain(ctx, nil))
}

// drain processes the queued records, breadth-first. A record that
// fails is skipped as the runtime's SkipOnError policy skips it, and the
// records queued behind it are processed: drain returns failed with the
// errors of the records that failed appended. It stops early, dropping
// the records still queued, with err: ErrLoop, ctx's error or an error
// of the runtime that is not a record's (a failed commit).
func (d *Driver) drain(ctx context.Context, failed []error) (_ []error, err error) {
	defer func() {
		clear(d.queue)
		d.queue = d.queue[:0]
	}()
	for i := 0; i < len(d.queue); i++ {
		if i >= d.cfg.maxPerPipe {
			return failed, ErrLoop
		}
		if err := ctx.Err(); err != nil {
			return failed, err
		}
		recs, err := d.st.Process(ctx, d.queue[i])
		if failed, err = d.step(ctx, failed, recs, err); err != nil {
			return failed, err
		}
	}
	return failed, nil
}

// drainAfter logs the records of a step that is not a record's (recs
// and err are what it returned) and drains what they queued, as drain
// does.
func (d *Driver) drainAfter(ctx context.Context, failed []error, recs []broker.Record, err error) ([]error, error) {
	if failed, err = d.step(ctx, failed, recs, err); err != nil {
		clear(d.queue)
		d.queue = d.queue[:0]
		return failed, err
	}
	return d.drain(ctx, failed)
}

// pipeError returns the error of a pipe: nil, the one error of failed
// and err, or errors.Join of them.
func pipeError(failed []error, err error) error {
	if err != nil {
		failed = append(failed, err)
	}
	if len(failed) == 1 {
		return failed[0]
	}
	return errors.Join(failed...)
}

// step logs the records a step of the runtime wrote and sorts its error
// serr. A *ProcessingError (a record or punctuation that failed,
// wrapping the step's error, usually a *stream.NodeError; its message
// names the task and the record once), whose work is undone while the
// rest of the step is committed, is appended to failed. Any other error,
// the runtime's or the failure to log the records, is returned as err.
func (d *Driver) step(ctx context.Context, failed []error, recs []broker.Record, serr error) (_ []error, err error) {
	err = d.written(ctx, recs)
	if pe, ok := serr.(*runtime.ProcessingError); ok {
		return append(failed, pe), err
	}
	return failed, errors.Join(serr, err)
}

// AdvanceWallClock moves the driver's clock forward by dt and runs the
// wall-clock punctuations that are due, as the runtime does when its
// clock moves: every task's due punctuations, then one commit; then the
// records they wrote to topics the topology reads are processed, as after
// a pipe (Kafka Streams' TopologyTestDriver.advanceWallClockTime). A
// punctuation that several due times passed runs once. A punctuation or
// record that fails does not stop the others; the errors are returned
// as by [Driver.PipeRaw] (a punctuator's is usually a *stream.NodeError;
// its output and state writes are dropped). It returns ErrClosed on a
// closed driver. dt must not be negative.
func (d *Driver) AdvanceWallClock(ctx context.Context, dt time.Duration) error {
	if d.closed {
		return ErrClosed
	}
	if dt < 0 {
		return fmt.Errorf("streamtest: AdvanceWallClock(%v): must not be negative", dt)
	}
	d.now = d.now.Add(dt)
	recs, err := d.st.Tick(ctx)
	return pipeError(d.drainAfter(ctx, nil, recs, err))
}

// AdvanceToEnd moves stream time to the end of time, as the runtime's
// bounded run (RunToEnd) does once its input is processed, so that every
// window closes and every final result and unmatched join record comes
// out without a flush record: the tasks of each sub-topology move their
// stream time through the due times of their timers (a window's close,
// a join's unmatched record) to stream.MaxTimestamp, running the
// stream-time punctuations due at each, and commit; the records they
// wrote to topics the topology reads are processed, as after a pipe,
// before the sub-topologies that read them are advanced (in topological
// order). It returns the errors as [Driver.PipeRaw] does, and ErrClosed
// on a closed driver.
//
// Afterwards the driver's state is at the end of time: every task's
// stream time is stream.MaxTimestamp, so windowed steps drop records
// piped later as late, and stream-time punctuations do not fire again.
// Call it once, after the input, and read the final output.
func (d *Driver) AdvanceToEnd(ctx context.Context) error {
	if d.closed {
		return ErrClosed
	}
	var failed []error
	for _, g := range d.st.EndOrder() {
		recs, err := d.st.AdvanceToEnd(ctx, g)
		if failed, err = d.drainAfter(ctx, failed, recs, err); err != nil {
			return pipeError(failed, err)
		}
	}
	return pipeError(failed, nil)
}

// StreamTime returns the stream time of the task of sub-topology sub and
// partition p: the largest timestamp of the records it has processed. ok
// is false before its first record or for an unknown task.
func (d *Driver) StreamTime(sub int, p int32) (t time.Time, ok bool) {
	if sub < 0 || sub >= len(d.topo.SubTopologies) {
		return time.Time{}, false
	}
	ms, ok := d.st.StreamTime(topology.TaskID{SubTopology: d.topo.SubTopologies[sub].ID, Partition: p})
	if !ok {
		return time.Time{}, false
	}
	return time.UnixMilli(ms).UTC(), true
}

// Records returns the records written to topic so far, by partition and
// then offset. The slice is new; the records' byte slices are shared with
// the driver and must not be modified. Internal topics have broker names:
// "<app-id>-<name>". Records does not consume them for [Output].
func (d *Driver) Records(topic string) []broker.Record {
	l, ok := d.topics[topic]
	if !ok {
		return nil
	}
	var out []broker.Record
	for _, p := range l.parts {
		out = append(out, p...)
	}
	return slices.Clip(out)
}

// Close closes every task (calling Close of stream.Process processors;
// their store writes are not written), the state stores and the broker.
// Later pipes and store reads return ErrClosed. Close is idempotent.
func (d *Driver) Close() error {
	if d.closed {
		return nil
	}
	d.closed = true
	var errs []error
	if d.st != nil {
		errs = append(errs, d.st.Close())
	}
	return errors.Join(append(errs, d.b.Close())...)
}
