package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// An Option configures a Broker; see New.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	clientOpts        []kgo.Opt
	replicationFactor int16
	txnTimeout        time.Duration
	logger            *slog.Logger
	metadataMaxAge    time.Duration
}

// Defaults of the options.
const (
	// DefaultReplicationFactor asks the cluster for its default
	// replication factor (default.replication.factor) for the topics the
	// broker creates.
	DefaultReplicationFactor int16 = -1
	// DefaultTransactionTimeout is a Committer's transaction timeout, as
	// Kafka Streams' exactly-once default: a worker that stops half way
	// through a commit has its transaction aborted by the cluster after
	// this long.
	DefaultTransactionTimeout = 10 * time.Second
	// DefaultMetadataMaxAge is how long the broker trusts the partition
	// counts it learned before asking the cluster again.
	DefaultMetadataMaxAge = 10 * time.Second
)

func defaultConfig() config {
	return config{
		replicationFactor: DefaultReplicationFactor,
		txnTimeout:        DefaultTransactionTimeout,
		logger:            slog.New(slog.DiscardHandler),
		metadataMaxAge:    DefaultMetadataMaxAge,
	}
}

// WithClientOptions passes franz-go client options to every client the
// broker creates (its admin and producer client, each Consumer's,
// Committer's and group member's): TLS (kgo.DialTLSConfig), SASL
// (kgo.SASL), kgo.ClientID, timeouts, group timing (kgo.SessionTimeout,
// kgo.HeartbeatInterval, kgo.RebalanceTimeout), and so on. Options that
// would take over what the broker manages itself (kgo.ConsumerGroup,
// kgo.ConsumeTopics, kgo.ConsumePartitions, kgo.TransactionalID,
// kgo.SeedBrokers) make New fail. Default: none.
func WithClientOptions(opts ...kgo.Opt) Option {
	return optionFunc(func(c *config) { c.clientOpts = append(c.clientOpts, opts...) })
}

// WithReplicationFactor sets the replication factor of the topics
// CreateTopic creates. Default DefaultReplicationFactor (-1: the
// cluster's default.replication.factor); use 3 in production when the
// cluster's default is lower. It must be -1 or at least 1.
func WithReplicationFactor(n int16) Option {
	return optionFunc(func(c *config) { c.replicationFactor = n })
}

// WithTransactionTimeout sets the transaction timeout of every
// Committer's transactional producer (transaction.timeout.ms): how long
// the cluster waits for a transaction to end before aborting it. It must
// be at least 1s and at most the cluster's transaction.max.timeout.ms
// (15 minutes by default). Default DefaultTransactionTimeout.
func WithTransactionTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.txnTimeout = d })
}

// WithLogger sets the logger of the broker and of its franz-go clients
// (their messages at the logger's enabled level). Default: silent.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) { c.logger = l })
}

// WithMetadataMaxAge sets how long the broker trusts the partition
// counts of topics it learned, for checking records' partitions and for
// PartitionByKey, before asking the cluster again. Topics the broker
// creates or deletes itself are forgotten at once. Default
// DefaultMetadataMaxAge; it must be positive.
func WithMetadataMaxAge(d time.Duration) Option {
	return optionFunc(func(c *config) { c.metadataMaxAge = d })
}

// validate reports every problem of c at once.
func (c *config) validate(seeds []string) error {
	var errs []error
	if len(seeds) == 0 {
		errs = append(errs, errors.New("no seed brokers"))
	}
	for _, s := range seeds {
		if s == "" {
			errs = append(errs, errors.New("empty seed broker address"))
		}
	}
	if c.replicationFactor != -1 && c.replicationFactor < 1 {
		errs = append(errs, fmt.Errorf("replication factor %d: must be -1 (the cluster's default) or at least 1", c.replicationFactor))
	}
	if c.txnTimeout < time.Second {
		errs = append(errs, fmt.Errorf("transaction timeout %v: must be at least 1s", c.txnTimeout))
	}
	if c.metadataMaxAge <= 0 {
		errs = append(errs, fmt.Errorf("metadata max age %v: must be positive", c.metadataMaxAge))
	}
	if c.logger == nil {
		errs = append(errs, errors.New("nil logger"))
	}
	for i, o := range c.clientOpts {
		if o == nil {
			errs = append(errs, fmt.Errorf("client option %d is nil", i))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("kafka: invalid options: %w", errors.Join(errs...))
	}
	return nil
}

// checkClientOpts refuses client options that would take over what the
// broker manages, by reading them back from a client built with them.
func checkClientOpts(cl *kgo.Client) error {
	var errs []error
	if g, _ := cl.OptValue(kgo.ConsumerGroup).(string); g != "" {
		errs = append(errs, fmt.Errorf("kgo.ConsumerGroup(%q): groups are joined with JoinGroup", g))
	}
	if nonEmpty(cl.OptValue(kgo.ConsumeTopics)) {
		errs = append(errs, errors.New("kgo.ConsumeTopics: records are read with NewConsumer"))
	}
	if nonEmpty(cl.OptValue(kgo.ConsumePartitions)) {
		errs = append(errs, errors.New("kgo.ConsumePartitions: records are read with NewConsumer"))
	}
	if id, _ := cl.OptValue(kgo.TransactionalID).(string); id != "" {
		errs = append(errs, fmt.Errorf("kgo.TransactionalID(%q): transactions are made by NewCommitter", id))
	}
	if len(errs) > 0 {
		return fmt.Errorf("kafka: invalid client options: %w", errors.Join(errs...))
	}
	return nil
}

// nonEmpty reports whether v, an option's value (a map or slice), has
// elements.
func nonEmpty(v any) bool {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Map, reflect.Slice:
		return rv.Len() > 0
	}
	return false
}

// slogLogger adapts a *slog.Logger to kgo.Logger.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Level() kgo.LogLevel {
	ctx := context.Background()
	switch {
	case s.l.Enabled(ctx, slog.LevelDebug):
		return kgo.LogLevelDebug
	case s.l.Enabled(ctx, slog.LevelInfo):
		return kgo.LogLevelInfo
	case s.l.Enabled(ctx, slog.LevelWarn):
		return kgo.LogLevelWarn
	case s.l.Enabled(ctx, slog.LevelError):
		return kgo.LogLevelError
	}
	return kgo.LogLevelNone
}

func (s slogLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	var l slog.Level
	switch level {
	case kgo.LogLevelError:
		l = slog.LevelError
	case kgo.LogLevelWarn:
		l = slog.LevelWarn
	case kgo.LogLevelInfo:
		l = slog.LevelInfo
	default:
		l = slog.LevelDebug
	}
	s.l.Log(context.Background(), l, "kafka: franz-go: "+msg, keyvals...)
}
