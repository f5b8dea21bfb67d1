package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/duality-streams/duality/broker"
)

// Broker is a broker.Broker on an Apache Kafka cluster (or any cluster
// speaking Kafka's protocol). It is safe for concurrent use.
//
// The Broker holds one franz-go client for administration and for
// Produce; every Consumer, Committer and group Membership it returns has
// its own client (its own connections), as a Kafka consumer, transactional
// producer or group member does. Close closes all of them.
type Broker struct {
	cfg   config
	seeds []string
	log   *slog.Logger
	cl    *kgo.Client // admin and idempotent producer
	adm   *kadm.Client

	// produceMu serializes the enqueueing of one Produce call's records,
	// so that the records of a call that go to one partition are
	// contiguous in the producer's buffer and so in the log.
	produceMu sync.Mutex

	meta metaCache

	mu struct {
		sync.Mutex
		closed bool
		// open holds the consumers, committers and memberships to close
		// with the broker.
		open map[closer]struct{}
	}
	closedCh chan struct{}
}

type closer interface{ close() }

// New returns a Broker for the cluster reached through seeds (host:port
// addresses of some of its brokers). It checks the options (every
// problem at once, as an error) and that the cluster answers, within ctx.
// It starts no goroutine of its own; the franz-go client it creates
// does, until Close.
func New(ctx context.Context, seeds []string, opts ...Option) (*Broker, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if o != nil {
			o.apply(&cfg)
		}
	}
	if err := cfg.validate(seeds); err != nil {
		return nil, err
	}
	b := &Broker{cfg: cfg, seeds: append([]string(nil), seeds...), log: cfg.logger, closedCh: make(chan struct{})}
	b.mu.open = make(map[closer]struct{})
	cl, err := b.newClient(
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0), // Produce waits for its records: lingering only delays it
	)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	if err := checkClientOpts(cl); err != nil {
		cl.Close()
		return nil, err
	}
	if err := cl.Ping(ctx); err != nil {
		cl.Close()
		return nil, fmt.Errorf("kafka: cluster at %v does not answer: %w", seeds, err)
	}
	b.cl = cl
	b.adm = kadm.NewClient(cl)
	b.meta.init(b)
	return b, nil
}

// newClient returns a franz-go client with the user's options, then
// the broker's (which win).
func (b *Broker) newClient(opts ...kgo.Opt) (*kgo.Client, error) {
	return b.newClientDefaults(nil, opts...)
}

// newClientDefaults is newClient with defaults that the user's options
// override.
func (b *Broker) newClientDefaults(defaults []kgo.Opt, opts ...kgo.Opt) (*kgo.Client, error) {
	all := make([]kgo.Opt, 0, len(defaults)+len(b.cfg.clientOpts)+len(opts)+2)
	all = append(all, kgo.WithLogger(slogLogger{b.log}))
	all = append(all, defaults...)
	all = append(all, b.cfg.clientOpts...)
	all = append(all, kgo.SeedBrokers(b.seeds...))
	all = append(all, opts...)
	return kgo.NewClient(all...)
}

// enter returns ErrClosed after Close.
func (b *Broker) enter() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mu.closed {
		return broker.ErrClosed
	}
	return nil
}

func (b *Broker) closed() bool {
	select {
	case <-b.closedCh:
		return true
	default:
		return false
	}
}

// track registers c to be closed with the broker; it fails after Close.
func (b *Broker) track(c closer) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.mu.closed {
		return broker.ErrClosed
	}
	b.mu.open[c] = struct{}{}
	return nil
}

func (b *Broker) untrack(c closer) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.mu.open, c)
}

// Close closes every Consumer, Committer and Membership of the broker
// (members leave their groups), then the broker's client. Calls blocked
// in any of them return ErrClosed, and so do later calls. Closing twice
// is a no-op.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.mu.closed {
		b.mu.Unlock()
		return nil
	}
	b.mu.closed = true
	close(b.closedCh)
	open := b.mu.open
	b.mu.open = nil
	b.mu.Unlock()
	for c := range open {
		c.close()
	}
	b.cl.Close()
	return nil
}

// retryableError marks a transient error for broker.IsRetryable.
type retryableError struct{ err error }

func (e *retryableError) Error() string   { return e.err.Error() }
func (e *retryableError) Unwrap() error   { return e.err }
func (e *retryableError) Retryable() bool { return true }

// mapErr turns a franz-go or Kafka error about topic (partition, or -1)
// into the broker package's errors.
func (b *Broker) mapErr(err error, topic string, partition int32) error {
	if err == nil {
		return nil
	}
	if b.closed() || errors.Is(err, kgo.ErrClientClosed) {
		return broker.ErrClosed
	}
	wrap := func(sentinel error) error {
		return &broker.TopicError{Topic: topic, Partition: partition, Err: fmt.Errorf("%w: %w", sentinel, err)}
	}
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, kerr.UnknownTopicOrPartition), errors.Is(err, kerr.UnknownTopicID):
		if topic == "" {
			return fmt.Errorf("%w: %w", broker.ErrUnknownTopic, err)
		}
		return wrap(broker.ErrUnknownTopic)
	case errors.Is(err, kerr.TopicAlreadyExists):
		return wrap(broker.ErrTopicExists)
	case errors.Is(err, kerr.InvalidTopicException):
		return wrap(broker.ErrInvalidTopicName)
	case errors.Is(err, kerr.InvalidPartitions):
		return wrap(broker.ErrInvalidPartitions)
	case errors.Is(err, kerr.InvalidConfig), errors.Is(err, kerr.PolicyViolation),
		errors.Is(err, kerr.InvalidReplicationFactor), errors.Is(err, kerr.InvalidRequest):
		return wrap(broker.ErrInvalidConfig)
	case errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.RecordListTooLarge):
		return wrap(broker.ErrRecordTooLarge)
	case errors.Is(err, kerr.CorruptMessage):
		return wrap(broker.ErrCorrupt)
	}
	var ke *kerr.Error
	if errors.As(err, &ke) && ke.Retriable {
		return &retryableError{fmt.Errorf("kafka: topic %q: %w", topic, err)}
	}
	if kgo.IsRetryableBrokerErr(err) {
		return &retryableError{fmt.Errorf("kafka: topic %q: %w", topic, err)}
	}
	if topic == "" {
		return fmt.Errorf("kafka: %w", err)
	}
	return fmt.Errorf("kafka: topic %q: %w", topic, err)
}

// checkTopic validates a topic name before any request is sent.
func checkTopic(name string) error {
	if err := broker.ValidateTopicName(name); err != nil {
		return &broker.TopicError{Topic: name, Partition: -1, Err: err}
	}
	return nil
}

// metaCache caches topics' partition counts and ids.
type metaCache struct {
	b  *Broker
	mu struct {
		sync.Mutex
		topics map[string]topicMeta
	}
}

type topicMeta struct {
	partitions int32
	id         [16]byte
	fetched    time.Time
}

func (m *metaCache) init(b *Broker) {
	m.b = b
	m.mu.topics = make(map[string]topicMeta)
}

func (m *metaCache) forget(topics ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range topics {
		delete(m.mu.topics, t)
	}
}

// partitions returns the partition counts of topics, from the cache when
// fresh (and, when refresh is false, when not), asking the cluster for the
// others. A topic that does not exist is an error matching
// broker.ErrUnknownTopic.
func (m *metaCache) partitions(ctx context.Context, topics []string, refresh bool) (map[string]topicMeta, error) {
	out := make(map[string]topicMeta, len(topics))
	var missing []string
	now := time.Now()
	m.mu.Lock()
	for _, t := range topics {
		if _, ok := out[t]; ok {
			continue
		}
		tm, ok := m.mu.topics[t]
		if ok && !refresh && now.Sub(tm.fetched) < m.b.cfg.metadataMaxAge {
			out[t] = tm
			continue
		}
		out[t] = topicMeta{}
		missing = append(missing, t)
	}
	m.mu.Unlock()
	if len(missing) == 0 {
		return out, nil
	}
	md, err := m.b.metadata(ctx, missing)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range missing {
		d, ok := md[t]
		if !ok {
			return nil, m.b.mapErr(kerr.UnknownTopicOrPartition, t, -1)
		}
		if d.err != nil {
			return nil, m.b.mapErr(d.err, t, -1)
		}
		tm := topicMeta{partitions: d.partitions, id: d.id, fetched: now}
		m.mu.topics[t] = tm
		out[t] = tm
	}
	return out, nil
}

// topicInfo is a topic as a metadata response describes it.
type topicInfo struct {
	partitions int32
	id         [16]byte
	internal   bool
	err        error
}

// metadata asks the cluster for topics (all when nil), bypassing
// franz-go's metadata cache (kadm's answers may be seconds old, which
// would show a deleted and recreated topic as it was).
func (b *Broker) metadata(ctx context.Context, topics []string) (map[string]topicInfo, error) {
	req := kmsg.NewPtrMetadataRequest()
	req.AllowAutoTopicCreation = false
	if topics != nil {
		req.Topics = make([]kmsg.MetadataRequestTopic, 0, len(topics))
		for _, t := range topics {
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(t)
			req.Topics = append(req.Topics, rt)
		}
	}
	resp, err := req.RequestWith(ctx, b.cl)
	if err != nil {
		return nil, b.mapErr(err, "", -1)
	}
	out := make(map[string]topicInfo, len(resp.Topics))
	for _, rt := range resp.Topics {
		if rt.Topic == nil {
			continue
		}
		out[*rt.Topic] = topicInfo{
			partitions: int32(len(rt.Partitions)),
			id:         rt.TopicID,
			internal:   rt.IsInternal,
			err:        kerr.ErrorForCode(rt.ErrorCode),
		}
	}
	return out, nil
}

var _ broker.Broker = (*Broker)(nil)
