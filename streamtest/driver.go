package streamtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/dsl"
	"github.com/duality-streams/duality/internal/topology"
	"github.com/duality-streams/duality/store"
	"github.com/duality-streams/duality/stream"
)

var (
	// ErrClosed is returned by calls on a closed Driver.
	ErrClosed = errors.New("streamtest: driver closed")
	// ErrCoPartition is matched by the error of New when the source topics
	// of one sub-topology have different partition counts.
	ErrCoPartition = errors.New("streamtest: source topics are not co-partitioned")
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
// default is DefaultPartitions. n must be >= 1 and topic a valid topic
// name; New reports violations (broker.ErrInvalidPartitions,
// broker.ErrInvalidTopicName).
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

// DefaultPartitions sets the partition count of topics without a
// Partitions option. The default is 1; n must be >= 1
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
// piped without one, and what TaskEnv.Now returns. The default is the
// Unix epoch (1970-01-01T00:00:00Z), so tests are deterministic. Move the
// clock with [Driver.Advance].
func StartTime(t time.Time) Option {
	return optionFunc(func(c *config) { c.start = t })
}

// Logger sets the logger the tasks get. The default discards everything.
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
	name       string
	partitions int32
	parts      [][]broker.Record // records by partition; offset = index
	all        []broker.Record   // every record in arrival order
	cursor     int               // first record of all not yet read by Output
	readers    []int             // sub-topologies reading the topic
	global     store.Store       // the global store the topic feeds, if any
}

// Driver runs a topology synchronously, without a broker: every piped
// record goes through the tasks of the sub-topologies reading its topic
// before the pipe call returns, and records written to topics the
// topology reads (repartition topics, or topics of other sub-topologies)
// are processed right away, breadth-first, in the order they were
// written. It keeps every written record in memory for [Output] and
// [Driver.Records].
//
// A topology's tasks are created by New, one per partition of each
// sub-topology, as the runtime would; records reach the task of their
// partition, chosen from the key by Kafka's default partitioner
// (partition 0 for records without a key).
//
// Tasks get the state stores their sub-topology declares; each record a
// task processes is one commit of its state (see the package
// documentation, # State stores).
//
// Records written before a processing error stay written; the state
// writes of the record that failed are undone. A Driver is not safe for
// concurrent use.
type Driver struct {
	topo   *topology.Topology
	cfg    config
	now    time.Time
	topics map[string]*topicLog
	tasks  [][]task // by sub-topology, then partition
	queue  []broker.Record
	db     *store.MemoryDB      // the state of every store
	stores map[string]storeInfo // by store name
	closed bool
	// storesClosed is set once the tasks are closed.
	storesClosed bool
}

// task is an instantiated task and its environment.
type task struct {
	proc topology.Processor
	env  *taskEnv
}

// New instantiates the tasks of topo and returns a Driver for it. It
// fails with the joined errors of invalid options, with ErrCoPartition
// when the source topics of a sub-topology have different partition
// counts, and with the first task instantiation error (for example an Init
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
	d := &Driver{
		topo:   raw,
		cfg:    cfg,
		now:    cfg.start,
		topics: make(map[string]*topicLog),
		db:     store.NewMemoryDB(),
		stores: make(map[string]storeInfo),
	}
	if err := d.layout(); err != nil {
		return nil, errors.Join(err, d.db.Close())
	}
	if err := d.openGlobals(); err != nil {
		return nil, errors.Join(err, d.db.Close())
	}
	for st, sub := range d.topo.SubTopologies {
		n := d.topics[d.topicName(sub.Sources[0].Topic, sub.Sources[0].Internal)].partitions
		for _, ss := range sub.Stores {
			// Build rejects a store used by two sub-topologies.
			info := storeInfo{sub: st, changelog: d.changelogTopic(ss.Name), partitions: n}
			d.stores[ss.Name] = info
			d.log(info.changelog, n)
		}
		d.tasks = append(d.tasks, make([]task, n))
		for p := range n {
			env := &taskEnv{d: d, id: topology.TaskID{SubTopology: sub.ID, Partition: p}, streamTime: topology.NoTime}
			env.logger = cfg.logger.With("task", stream.TaskID{SubTopology: sub.ID, Partition: p}.String())
			d.tasks[st][p].env = env
			if err := d.openStores(env, sub); err != nil {
				return nil, errors.Join(err, d.Close())
			}
			proc, err := sub.NewTask(env)
			if err != nil {
				return nil, errors.Join(fmt.Errorf("streamtest: task %d_%d: %w", sub.ID, p, err), d.Close())
			}
			d.tasks[st][p].proc = proc
			// Writes made by Init are committed with the task's creation.
			if err := env.commitStores(); err != nil {
				return nil, errors.Join(fmt.Errorf("streamtest: task %d_%d: %w", sub.ID, p, err), d.Close())
			}
		}
	}
	return d, nil
}

// layout decides every known topic's partition count and readers.
func (d *Driver) layout() error {
	internalParts := make(map[string]int32)
	likeOf := make(map[string]*topology.Source)
	for _, it := range d.topo.InternalTopics {
		internalParts[it.Name] = it.Partitions
		likeOf[it.Name] = it.PartitionsLike
	}
	writerOf := make(map[string]int)
	for _, it := range d.topo.InternalTopics {
		writerOf[it.Name] = it.WrittenBy
	}
	// Partition counts of sub-topologies (as many as their sources) and
	// of internal topics (as given, or as their writer's) depend on each
	// other; resolve them recursively.
	subParts := make(map[int]int32)
	visiting := make(map[int]bool)
	var sourceParts func(st int) (int32, error)
	var topicParts func(src topology.Source) (int32, error)
	topicParts = func(src topology.Source) (int32, error) {
		if !src.Internal {
			if n, ok := d.cfg.partitions[src.Topic]; ok {
				return n, nil
			}
			return d.cfg.defaultPart, nil
		}
		if n := internalParts[src.Topic]; n > 0 {
			return n, nil
		}
		if like := likeOf[src.Topic]; like != nil && *like != src {
			return topicParts(*like)
		}
		w, ok := writerOf[src.Topic]
		if !ok {
			return d.cfg.defaultPart, nil
		}
		return sourceParts(w)
	}
	sourceParts = func(st int) (int32, error) {
		if n, ok := subParts[st]; ok {
			return n, nil
		}
		if visiting[st] || st < 0 || st >= len(d.topo.SubTopologies) {
			return 0, fmt.Errorf("streamtest: cannot size the internal topics of sub-topology %d", st)
		}
		visiting[st] = true
		defer delete(visiting, st)
		sub := d.topo.SubTopologies[st]
		var n int32
		var errs []error
		for _, src := range sub.Sources {
			m, err := topicParts(src)
			if err != nil {
				return 0, err
			}
			if n != 0 && m != n {
				errs = append(errs, fmt.Errorf("%w: sub-topology %d reads topics with %d and %d partitions", ErrCoPartition, st, n, m))
			}
			n = max(n, m)
		}
		if len(errs) > 0 {
			return 0, errors.Join(errs...)
		}
		subParts[st] = n
		return n, nil
	}
	var errs []error
	for st, sub := range d.topo.SubTopologies {
		if _, err := sourceParts(st); err != nil {
			errs = append(errs, err)
			continue
		}
		for _, src := range sub.Sources {
			n, _ := topicParts(src)
			l := d.log(d.topicName(src.Topic, src.Internal), n)
			l.readers = append(l.readers, st)
		}
	}
	for _, it := range d.topo.InternalTopics {
		n, _ := topicParts(topology.Source{Topic: it.Name, Internal: true})
		if n > 0 {
			d.log(d.topicName(it.Name, true), n)
		}
	}
	return errors.Join(errs...)
}

// log returns the topic's log, creating it with n partitions (or the
// configured count when n is 0).
func (d *Driver) log(name string, n int32) *topicLog {
	if l, ok := d.topics[name]; ok {
		return l
	}
	if n == 0 {
		n = d.cfg.defaultPart
		if m, ok := d.cfg.partitions[name]; ok {
			n = m
		}
	}
	l := &topicLog{name: name, partitions: n, parts: make([][]broker.Record, n)}
	d.topics[name] = l
	return l
}

func (d *Driver) topicName(logical string, internal bool) string {
	if internal {
		return d.cfg.appID + "-" + logical
	}
	return logical
}

// Now returns the driver's clock.
func (d *Driver) Now() time.Time { return d.now }

// Advance moves the driver's clock forward by dt (backwards if dt < 0). It
// runs no punctuation: [Driver.AdvanceWallClock] does.
func (d *Driver) Advance(dt time.Duration) { d.now = d.now.Add(dt) }

// append stores rec in its topic: it resolves PartitionByKey (partition 0
// for a nil key), assigns the offset, stamps a zero timestamp with the
// clock, and queues the record if a sub-topology reads the topic.
func (d *Driver) append(rec broker.Record) error {
	if err := broker.ValidateTopicName(rec.Topic); err != nil {
		return err
	}
	l := d.log(rec.Topic, 0)
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
	rec.Timestamp = rec.Timestamp.Truncate(time.Millisecond)
	rec.Offset = int64(len(l.parts[rec.Partition]))
	l.parts[rec.Partition] = append(l.parts[rec.Partition], rec)
	l.all = append(l.all, rec)
	if l.global != nil {
		if err := applyGlobal(l.global, &rec); err != nil {
			return err
		}
	}
	if len(l.readers) > 0 {
		d.queue = append(d.queue, rec)
	}
	return nil
}

// PipeRaw writes rec (already encoded) to its topic and processes it and
// every record it causes, as the typed [InputTopic] methods do. Use it to
// feed bytes a codec cannot produce, such as corrupt records. rec.Topic
// must be read by the topology (else an error matching
// broker.ErrUnknownTopic); rec.Partition may be broker.PartitionByKey; a
// zero rec.Timestamp means the driver's clock. It returns the first
// processing error (usually wrapping a *stream.NodeError; its message
// names the task and the record), or ctx's error if ctx ends before every
// record is processed.
func (d *Driver) PipeRaw(ctx context.Context, rec broker.Record) error {
	if d.closed {
		return ErrClosed
	}
	if l, ok := d.topics[rec.Topic]; !ok || len(l.readers) == 0 && l.global == nil {
		return &broker.TopicError{Topic: rec.Topic, Partition: -1, Err: fmt.Errorf("no sub-topology reads it: %w", broker.ErrUnknownTopic)}
	}
	if err := d.append(rec); err != nil {
		return err
	}
	return d.drain(ctx)
}

func (d *Driver) drain(ctx context.Context) error {
	defer func() {
		clear(d.queue)
		d.queue = d.queue[:0]
	}()
	for i := 0; i < len(d.queue); i++ {
		if i >= d.cfg.maxPerPipe {
			return ErrLoop
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rec := d.queue[i]
		for _, st := range d.topics[rec.Topic].readers {
			// Each task gets its own copy, as from a broker fetch.
			in := rec
			// Every processed record is a commit of its task.
			if err := d.tasks[st][rec.Partition].process(ctx, &in); err != nil {
				// Named here, once, as the runtime's ProcessingError does:
				// the steps' errors name only themselves.
				return fmt.Errorf("streamtest: task %d_%d: processing record %s/%d at offset %d: %w",
					st, rec.Partition, rec.Topic, rec.Partition, rec.Offset, err)
			}
		}
	}
	return nil
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
// their store writes are not written) and then the state stores. Later
// pipes and store reads return ErrClosed. Close is idempotent.
func (d *Driver) Close() error {
	if d.closed {
		return nil
	}
	d.closed = true
	var errs []error
	for _, tasks := range d.tasks {
		for _, t := range tasks {
			if t.proc != nil {
				errs = append(errs, t.proc.Close())
			}
		}
	}
	// Store writes made from Close are not written, as in the runtime.
	d.storesClosed = true
	errs = append(errs, d.db.Close())
	return errors.Join(errs...)
}

// taskEnv is the topology.TaskEnv of one task.
type taskEnv struct {
	d      *Driver
	id     topology.TaskID
	logger *slog.Logger
	stores map[string]*taskStore // by name
	order  []*taskStore          // stores in declaration order
	// streamTime is the largest timestamp (ms) the task has processed
	// (topology.NoTime before any); scheds are its punctuations.
	streamTime int64
	scheds     []*schedule
}

func (e *taskEnv) AppID() string           { return e.d.cfg.appID }
func (e *taskEnv) TaskID() topology.TaskID { return e.id }
func (e *taskEnv) Logger() *slog.Logger    { return e.logger }
func (e *taskEnv) Now() time.Time          { return e.d.now }
func (e *taskEnv) TopicName(logical string, internal bool) string {
	return e.d.topicName(logical, internal)
}

func (e *taskEnv) Send(_ context.Context, rec broker.Record) error {
	return e.d.append(rec)
}

// Item emits it (topology.TaskEnv.Item). The driver has no error policy:
// a failing item fails the pipe (or the flush) it was emitted in, which
// returns the error to the test, as a failing record does.
func (e *taskEnv) Item(ctx context.Context, it topology.Item) error { return it.Emit(ctx) }
