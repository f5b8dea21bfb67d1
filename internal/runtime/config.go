package runtime

import (
	"errors"
	"fmt"
	"log/slog"
	goruntime "runtime"
	"time"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/store"
)

// Defaults of the Config fields (the root package re-exports them with
// its options, which document them).
const (
	DefaultCommitInterval        = 100 * time.Millisecond
	DefaultMaxUncommittedRecords = 100_000
	DefaultFetchMaxWait          = 500 * time.Millisecond
	DefaultFetchMaxRecords       = 10_000
	DefaultCacheMaxBytes         = 10 << 20
	DefaultMaxTaskIdle           = 10 * time.Second
	DefaultRepartitionPurge      = 30 * time.Second
	DefaultShutdownTimeout       = 30 * time.Second
	// The defaults of Kafka Streams' acceptable.recovery.lag,
	// max.warmup.replicas and probing.rebalance.interval.ms.
	DefaultAcceptableRecoveryLag    = 10_000
	DefaultMaxWarmupReplicas        = 2
	DefaultProbingRebalanceInterval = 10 * time.Minute
)

// Config is what the root package's options set, one field per option
// of the same name (duality.Workers sets Workers, ...), where the options
// document each. Start from [DefaultConfig]; [New] validates it.
type Config struct {
	Workers               int
	CommitInterval        time.Duration
	MaxUncommittedRecords int
	// CacheMaxBytes bounds the record caches of the instance's stores; 0
	// turns them off.
	CacheMaxBytes   int64
	FetchMaxWait    time.Duration
	FetchMaxRecords int
	Logger          *slog.Logger
	// Descriptions are the descriptions of the topology by format
	// (topology.DescriptionText, ...), which Run publishes to the app's
	// topology topic (see publishTopology); none: nothing is published.
	Descriptions map[string]string
	// Clock is the app's wall clock (duality.Clock).
	Clock func() time.Time
	// StateDir, when StateDirSet, is the directory of the Pebble database
	// of the app's stores, opened with StateOptions; otherwise state is
	// kept in memory. StateDirSet with an empty StateDir is invalid.
	StateDir     string
	StateDirSet  bool
	StateOptions []store.Option
	// OnRestore, when not nil, is called with the progress of each
	// restoration and global store bootstrap.
	OnRestore func(RestoreProgress)
	// SkipOnError skips records and punctuations that fail, calling
	// OnSkip (when not nil) with each failure; otherwise a failure stops
	// the app (duality.ErrorPolicy).
	SkipOnError bool
	OnSkip      func(*ProcessingError)
	// DeadLetter, with SkipOnError, writes each failing input record
	// to the dead-letter topic (see worker.deadLetter) instead of
	// dropping it: DeadLetterTopic, or "<app id>-dlq" when empty
	// (duality.DeadLetterOnError).
	DeadLetter               bool
	DeadLetterTopic          string
	MaxTaskIdle              time.Duration
	IdleStreamTimeAdvance    time.Duration
	RepartitionPurgeInterval time.Duration
	// ShutdownTimeout bounds how long Run waits for broker calls once it
	// stops (see shutdown).
	ShutdownTimeout time.Duration
	// InstanceID, when InstanceIDSet, is the app instance's stable
	// identity (duality.InstanceID); otherwise it is derived (see
	// App.resolveInstanceID).
	InstanceID    string
	InstanceIDSet bool
	// NumStandbyReplicas is the number of standby copies of each
	// stateful task kept on other instances (see standby.go); 0: none.
	NumStandbyReplicas int
	// AcceptableRecoveryLag, MaxWarmupReplicas and
	// ProbingRebalanceInterval govern the placement of stateful tasks
	// (placement.go): the changelog offsets a copy may be behind and
	// still count as caught up, the warm-up replicas of the group at
	// once, and the most time a member with warm-ups waits before it
	// asks for a rebalance to probe them.
	AcceptableRecoveryLag    int64
	MaxWarmupReplicas        int
	ProbingRebalanceInterval time.Duration
	// Endpoint, when EndpointSet, is the URL the instance advertises to
	// the other members of its group (duality.Endpoint, see memberMeta).
	Endpoint    string
	EndpointSet bool
	// Guarantee is the processing guarantee (duality.ProcessingGuarantee):
	// which kind of committer the workers open.
	Guarantee Guarantee
}

// Guarantee is a processing guarantee: what a commit promises about the
// input it covers (duality.Guarantee is this type).
type Guarantee uint8

// The processing guarantees.
const (
	// ExactlyOnce commits each worker's output, changelog records and
	// input offsets atomically (broker.Broker.NewCommitter).
	ExactlyOnce Guarantee = iota
	// AtLeastOnce makes the output and changelog records durable first,
	// then commits the input offsets
	// (broker.Broker.NewAtLeastOnceCommitter).
	AtLeastOnce
)

// String returns the name Kafka Streams gives the guarantee in its
// processing.guarantee setting: "exactly_once_v2" (a transactional
// producer per worker, as EOS v2 has per thread) or "at_least_once".
func (g Guarantee) String() string {
	switch g {
	case ExactlyOnce:
		return "exactly_once_v2"
	case AtLeastOnce:
		return "at_least_once"
	}
	return fmt.Sprintf("Guarantee(%d)", uint8(g))
}

// DefaultConfig returns the defaults: GOMAXPROCS workers, the Default
// constants, no logging, the real clock, state in memory, FailOnError.
func DefaultConfig() Config {
	return Config{
		Workers:                  goruntime.GOMAXPROCS(0),
		CommitInterval:           DefaultCommitInterval,
		MaxUncommittedRecords:    DefaultMaxUncommittedRecords,
		CacheMaxBytes:            DefaultCacheMaxBytes,
		FetchMaxWait:             DefaultFetchMaxWait,
		FetchMaxRecords:          DefaultFetchMaxRecords,
		Logger:                   slog.New(slog.DiscardHandler),
		Clock:                    time.Now,
		MaxTaskIdle:              DefaultMaxTaskIdle,
		RepartitionPurgeInterval: DefaultRepartitionPurge,
		ShutdownTimeout:          DefaultShutdownTimeout,
		AcceptableRecoveryLag:    DefaultAcceptableRecoveryLag,
		MaxWarmupReplicas:        DefaultMaxWarmupReplicas,
		ProbingRebalanceInterval: DefaultProbingRebalanceInterval,
	}
}

// validate reports every problem of c, each matching ErrInvalidConfig and
// naming the option that set the field.
func (c *Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if c.Workers < 1 {
		bad("Workers(%d): must be at least 1", c.Workers)
	}
	if c.CommitInterval <= 0 {
		bad("CommitInterval(%v): must be positive", c.CommitInterval)
	}
	if c.MaxUncommittedRecords < 1 {
		bad("MaxUncommittedRecords(%d): must be at least 1", c.MaxUncommittedRecords)
	}
	if c.CacheMaxBytes < 0 {
		bad("CacheMaxBytes(%d): must be 0 (no record cache) or positive", c.CacheMaxBytes)
	}
	if c.FetchMaxWait <= 0 {
		bad("FetchMaxWait(%v): must be positive", c.FetchMaxWait)
	}
	if c.FetchMaxRecords < 1 {
		bad("FetchMaxRecords(%d): must be at least 1", c.FetchMaxRecords)
	}
	if c.Logger == nil {
		bad("Logger(nil): use slog.New(slog.DiscardHandler) for no logging")
	}
	if c.StateDirSet && c.StateDir == "" {
		bad("StateDir(\"\"): a directory is required (leave the option out for in-memory state)")
	}
	if c.DeadLetter && !c.SkipOnError {
		bad("DeadLetterOnError: the dead-letter policy skips the failed record's own output (SkipOnError must be set)")
	}
	if c.DeadLetterTopic != "" {
		if err := broker.ValidateTopicName(c.DeadLetterTopic); err != nil {
			bad("DeadLetterTopic(%q): %v", c.DeadLetterTopic, err)
		}
	}
	if c.IdleStreamTimeAdvance < 0 {
		bad("IdleStreamTimeAdvance(%v): must be 0 (off) or positive", c.IdleStreamTimeAdvance)
	}
	if c.RepartitionPurgeInterval < 0 {
		bad("RepartitionPurgeInterval(%v): must be 0 (off) or positive", c.RepartitionPurgeInterval)
	}
	if c.ShutdownTimeout <= 0 {
		bad("ShutdownTimeout(%v): must be positive", c.ShutdownTimeout)
	}
	if c.InstanceIDSet {
		if err := validInstanceID(c.InstanceID); err != nil {
			errs = append(errs, fmt.Errorf("InstanceID: %w", err))
		}
	}
	if c.NumStandbyReplicas < 0 {
		bad("NumStandbyReplicas(%d): must be 0 (none) or positive", c.NumStandbyReplicas)
	}
	if c.AcceptableRecoveryLag < 0 {
		bad("AcceptableRecoveryLag(%d): must be 0 or positive", c.AcceptableRecoveryLag)
	}
	if c.MaxWarmupReplicas < 1 {
		bad("MaxWarmupReplicas(%d): must be at least 1", c.MaxWarmupReplicas)
	}
	if c.ProbingRebalanceInterval <= 0 {
		bad("ProbingRebalanceInterval(%v): must be positive", c.ProbingRebalanceInterval)
	}
	if c.EndpointSet {
		if err := validEndpoint(c.Endpoint); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Guarantee != ExactlyOnce && c.Guarantee != AtLeastOnce {
		bad("ProcessingGuarantee(%v): must be ExactlyOnce or AtLeastOnce", c.Guarantee)
	}
	if c.Clock == nil {
		bad("Clock(nil): a clock function is required")
	}
	return errors.Join(errs...)
}
