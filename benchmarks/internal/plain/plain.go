// Package plain runs the ceiling a benchmark measures a pipeline against:
// a plain-Go loop that does a workload's work over the records it fetches
// from the same broker, with no DSL and no runtime (no topology, no tasks,
// no stores, no group membership, no record cache).
//
// [Run] gives each of its workers some input partitions: the worker polls
// them with a [broker.Consumer], hands every record to the workload's
// [Worker.Process], and commits the output records (and what
// [Worker.Flush] adds, such as changelog records) with the input offsets,
// every commit interval or when its output records pass the maximum of
// uncommitted records, as Duality's runtime does by default (it counts its
// output records too, and the changelog records it will write, which
// Flush makes here), through the committer of the same guarantee
// (the atomic one of [broker.Broker.NewCommitter], or
// [broker.Broker.NewAtLeastOnceCommitter]). It returns when every input
// partition is read to the end offset it had when Run started and that
// offset is committed.
package plain

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"sync"
	"time"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
)

// Worker is the work of one worker of Run. Its functions are called from
// the worker's goroutine only.
type Worker struct {
	// Process handles one fetched record: it appends the output records
	// the record makes to out and returns out. The record is the
	// worker's (broker.Consumer hands records to the caller). An error
	// stops Run.
	Process func(r broker.Record, out []broker.Record) ([]broker.Record, error)
	// Flush, if set, is called before every commit: it appends the
	// records the worker writes once per commit rather than per record
	// (a changelog record per key changed since the last commit) to out
	// and returns out.
	Flush func(out []broker.Record) []broker.Record
}

// Config configures Run.
type Config struct {
	// Group is the consumer group whose offsets Run commits. Required.
	Group string
	// Topics are the input topics, read from offset 0. Required.
	Topics []string
	// Partitions is the number of partitions of every input topic;
	// partition p of every topic goes to worker p % Workers, so
	// co-partitioned topics stay together. Required.
	Partitions int
	// Workers is the number of workers; 0 means runtime.GOMAXPROCS(0),
	// Duality's default. Never more than Partitions.
	Workers int
	// CommitInterval is the longest time between commits; 0 means
	// duality.DefaultCommitInterval.
	CommitInterval time.Duration
	// MaxUncommitted is the number of output records buffered above
	// which a worker commits before its interval, as
	// duality.MaxUncommittedRecords; 0 means
	// duality.DefaultMaxUncommittedRecords.
	MaxUncommitted int
	// AtLeastOnce commits through broker.Broker.NewAtLeastOnceCommitter
	// instead of the atomic committer.
	AtLeastOnce bool
	// New returns worker w's work, for w in [0, Workers). Required.
	New func(w int) Worker
}

// Run runs cfg's workers over the input until each input partition is
// read and committed up to the end offset it had when Run started.
func Run(ctx context.Context, b broker.Broker, cfg Config) error {
	if cfg.Group == "" || len(cfg.Topics) == 0 || cfg.Partitions < 1 || cfg.New == nil || cfg.Workers < 0 {
		return errors.New("plain: invalid config: Group, Topics, Partitions (at least 1) and New are required, Workers at least 0")
	}
	if cfg.Workers == 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	cfg.Workers = min(cfg.Workers, cfg.Partitions)
	if cfg.CommitInterval == 0 {
		cfg.CommitInterval = duality.DefaultCommitInterval
	}
	if cfg.MaxUncommitted == 0 {
		cfg.MaxUncommitted = duality.DefaultMaxUncommittedRecords
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for w := range cfg.Workers {
		wg.Go(func() {
			if err := runWorker(ctx, b, cfg, w); err != nil {
				cancel(fmt.Errorf("plain: worker %d: %w", w, err))
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil { // a worker failed, or the caller's ctx ended
		return context.Cause(ctx)
	}
	return nil
}

func runWorker(ctx context.Context, b broker.Broker, cfg Config, w int) (err error) {
	next := map[broker.TopicPartition]int64{}
	end := map[broker.TopicPartition]int64{}
	for p := w; p < cfg.Partitions; p += cfg.Workers {
		for _, t := range cfg.Topics {
			tp := broker.TopicPartition{Topic: t, Partition: int32(p)}
			o, err := b.ListOffsets(ctx, t, int32(p))
			if err != nil {
				return err
			}
			next[tp], end[tp] = 0, o.Latest
		}
	}
	// A poll holds at most what a commit may.
	c, err := b.NewConsumer(broker.ConsumerOptions{MaxRecords: min(duality.DefaultFetchMaxRecords, cfg.MaxUncommitted)})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, c.Close()) }()
	newCommitter := b.NewCommitter
	if cfg.AtLeastOnce {
		newCommitter = b.NewAtLeastOnceCommitter
	}
	com, err := newCommitter(ctx, fmt.Sprintf("%s-%d", cfg.Group, w))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, com.Close()) }()
	c.Assign(maps.Clone(next))

	work := cfg.New(w)
	// The loop reuses what it can, as the runtime does: the output buffer
	// across commits, and the fetched records' slices, handed back to a
	// consumer that takes them (broker.Recycler) once processed (Process
	// keeps copies of the records, not the slice).
	recycler, _ := c.(broker.Recycler)
	var out []broker.Record
	last := time.Now()
	for {
		polled, err := c.Poll(ctx, duality.DefaultFetchMaxWait)
		if err != nil {
			return err
		}
		for _, r := range polled.Records {
			if out, err = work.Process(r, out); err != nil {
				return fmt.Errorf("%s/%d at %d: %w", r.Topic, r.Partition, r.Offset, err)
			}
			next[broker.TopicPartition{Topic: r.Topic, Partition: r.Partition}] = r.Offset + 1
		}
		if recycler != nil {
			recycler.Recycle(polled.Records)
		}
		// Offsets without records (transaction markers) count as read
		// once the consumer says the partition is read to its end.
		for tp, off := range polled.Ends {
			if off > next[tp] {
				next[tp] = off
			}
		}
		finished := true
		for tp, off := range next {
			if off < end[tp] {
				finished = false
				break
			}
		}
		if finished || len(out) > cfg.MaxUncommitted || time.Since(last) >= cfg.CommitInterval {
			if work.Flush != nil {
				out = work.Flush(out)
			}
			if err := com.Commit(ctx, broker.CommitRequest{Records: out, Group: cfg.Group, Offsets: maps.Clone(next)}); err != nil {
				return err
			}
			clear(out) // the committed records are the broker's now
			out, last = out[:0], time.Now()
		}
		if finished {
			return nil
		}
	}
}
