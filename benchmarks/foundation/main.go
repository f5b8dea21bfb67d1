// Command foundation measures the foundation of Duality on this machine:
// embedded append throughput (fsync per commit and interval sync),
// sequential fetch throughput, and a stateless Filter+MapValues+To pipeline
// end to end next to a raw baseline measured in the same run: a loop that
// reads the input partitions and commits the same output with no framework.
//
//	go run ./benchmarks/foundation
//	go run ./benchmarks/foundation -records 4000000 -rounds 5
//
// Runs of A and B are interleaved and medians reported, because machines
// are noisy.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"time"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
)

var (
	records    = flag.Int("records", 2_000_000, "records per run")
	rounds     = flag.Int("rounds", 3, "interleaved rounds per measurement")
	partitions = flag.Int("partitions", 4, "partitions per topic")
	valueSize  = flag.Int("value", 100, "value size in bytes")
	batchSize  = flag.Int("batch", 1000, "records per Produce call")
	producers  = flag.Int("producers", 4, "concurrent producers for the append benchmarks")
	only       = flag.String("only", "", "run only one suite: append, fetch or pipeline")
	cpuProfile = flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "foundation:", err)
		os.Exit(1)
	}
}

func run() error {
	if *records < *partitions || *rounds < 1 || *partitions < 1 || *valueSize < 1 || *batchSize < 1 || *producers < 1 {
		return errors.New("invalid flags: all counts must be >= 1 and -records >= -partitions")
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	ctx := context.Background()
	fmt.Printf("Duality foundation benchmarks: %d records of %d-byte values, %d partitions, %d rounds, GOMAXPROCS=%d\n\n",
		*records, *valueSize, *partitions, *rounds, runtime.GOMAXPROCS(0))

	if *only == "" || *only == "append" || *only == "fetch" {
		if err := appendAndFetch(ctx); err != nil {
			return err
		}
	}
	if *only == "" || *only == "pipeline" {
		if err := pipeline(ctx); err != nil {
			return err
		}
	}
	return nil
}

// result is one measurement: records in a duration.
type result struct {
	n   int
	dur time.Duration
}

func (r result) rate() float64 { return float64(r.n) / r.dur.Seconds() }

// median returns the result with the median rate.
func median(rs []result) result {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b result) int {
		switch {
		case a.rate() < b.rate():
			return -1
		case a.rate() > b.rate():
			return 1
		}
		return 0
	})
	return s[len(s)/2]
}

func rates(rs []result) string {
	out := ""
	for i, r := range rs {
		if i > 0 {
			out += ", "
		}
		out += fmt.Sprintf("%.2fM", r.rate()/1e6)
	}
	return out
}

func report(name string, rs []result, bytesPerRecord int) {
	m := median(rs)
	fmt.Printf("  %-34s %10.0f records/s %8.1f MB/s   (runs: %s records/s)\n",
		name, m.rate(), m.rate()*float64(bytesPerRecord)/1e6, rates(rs))
}

func openBroker(opts ...embedded.Option) (*embedded.Broker, func(), error) {
	dir, err := os.MkdirTemp("", "duality-bench-")
	if err != nil {
		return nil, nil, err
	}
	b, err := embedded.Open(dir, append([]embedded.Option{embedded.WithCleanupInterval(-1)}, opts...)...)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return b, func() { b.Close(); os.RemoveAll(dir) }, nil
}

func key(i int) []byte { return fmt.Appendf(nil, "key-%08d", i%100_000) }

// produceAll appends n records to topic with the given number of
// concurrent producers, each writing batches to its own partitions.
func produceAll(ctx context.Context, b broker.Broker, topic string, n, prods int) (time.Duration, error) {
	value := make([]byte, *valueSize)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, prods)
	for w := range prods {
		wg.Go(func() {
			batch := make([]broker.Record, 0, *batchSize)
			for i := w; i < n; i += prods {
				p := int32(i % *partitions)
				batch = append(batch, broker.Record{Topic: topic, Partition: p, Key: key(i), Value: value})
				if len(batch) == *batchSize {
					if err := b.Produce(ctx, batch); err != nil {
						errs <- err
						return
					}
					batch = batch[:0]
				}
			}
			if len(batch) > 0 {
				if err := b.Produce(ctx, batch); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return time.Since(start), <-errs
}

func appendAndFetch(ctx context.Context) error {
	perRecord := *valueSize + len(key(0))
	var syncRuns, intervalRuns, fetchRuns []result
	for range *rounds {
		for _, mode := range []string{"sync", "interval"} {
			var opts []embedded.Option
			if mode == "interval" {
				opts = append(opts, embedded.WithSyncInterval(100*time.Millisecond))
			}
			b, done, err := openBroker(opts...)
			if err != nil {
				return err
			}
			if err := b.CreateTopic(ctx, "bench", broker.TopicConfig{Partitions: int32(*partitions)}); err != nil {
				done()
				return err
			}
			d, err := produceAll(ctx, b, "bench", *records, *producers)
			if err != nil {
				done()
				return err
			}
			if mode == "sync" {
				syncRuns = append(syncRuns, result{*records, d})
			} else {
				intervalRuns = append(intervalRuns, result{*records, d})
				r, err := fetchAll(ctx, b, "bench")
				if err != nil {
					done()
					return err
				}
				fetchRuns = append(fetchRuns, r)
			}
			done()
		}
	}
	fmt.Printf("Embedded log (%d producers, batches of %d records, %d-byte keys):\n", *producers, *batchSize, len(key(0)))
	report("append, fsync per commit", syncRuns, perRecord)
	report("append, interval sync (100 ms)", intervalRuns, perRecord)
	report("sequential fetch (1 reader)", fetchRuns, perRecord)
	fmt.Println()
	return nil
}

// fetchAll reads every partition of topic from the start with one
// consumer.
func fetchAll(ctx context.Context, b broker.Broker, topic string) (result, error) {
	c, err := b.NewConsumer(broker.ConsumerOptions{MaxRecords: 10000})
	if err != nil {
		return result{}, err
	}
	defer c.Close()
	from := make(map[broker.TopicPartition]int64, *partitions)
	for p := range *partitions {
		from[broker.TopicPartition{Topic: topic, Partition: int32(p)}] = 0
	}
	c.Assign(from)
	start := time.Now()
	n := 0
	for n < *records {
		polled, err := c.Poll(ctx, time.Second)
		if err != nil {
			return result{}, err
		}
		if len(polled.Records) == 0 {
			return result{}, fmt.Errorf("poll: no records after %d of %d", n, *records)
		}
		n += len(polled.Records)
	}
	return result{n, time.Since(start)}, nil
}

// keep and transform are the pipeline's logic, shared by the framework and
// the baseline: drop one record in ten, rewrite the value's first byte.
func keep(v []byte) bool { return v[len(v)-1]%10 != 0 }

func transform(v []byte) []byte {
	v[0] = 'X'
	return v
}

func pipeline(ctx context.Context) error {
	b, done, err := openBroker()
	if err != nil {
		return err
	}
	defer done()
	if err := b.CreateTopic(ctx, "input", broker.TopicConfig{Partitions: int32(*partitions)}); err != nil {
		return err
	}
	// Values end with a byte that varies, so the filter keeps 90%.
	value := make([]byte, *valueSize)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	var wg sync.WaitGroup
	errs := make(chan error, *partitions)
	for p := range *partitions {
		wg.Go(func() {
			batch := make([]broker.Record, 0, *batchSize)
			for i := p; i < *records; i += *partitions {
				v := append([]byte(nil), value...)
				v[len(v)-1] = byte(i / *partitions)
				batch = append(batch, broker.Record{Topic: "input", Partition: int32(p), Key: key(i), Value: v})
				if len(batch) == *batchSize || i+*partitions >= *records {
					if err := b.Produce(ctx, batch); err != nil {
						errs <- err
						return
					}
					batch = batch[:0]
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}

	var fw, raw []result
	for round := range *rounds {
		r, err := runFramework(ctx, b, round)
		if err != nil {
			return fmt.Errorf("framework: %w", err)
		}
		fw = append(fw, r)
		r, err = runRaw(ctx, b, round)
		if err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
		raw = append(raw, r)
	}
	perRecord := *valueSize + len(key(0))
	fmt.Printf("Stateless pipeline Filter+MapValues+To, input already in the log, commit every 100 ms (%d workers):\n", runtime.GOMAXPROCS(0))
	report("duality (stream DSL + runtime)", fw, perRecord)
	report("raw baseline (poll, sync commit)", raw, perRecord)
	fmt.Printf("  ratio duality / baseline (medians): %.2f (the baseline waits for each commit; the runtime overlaps it with processing)\n", median(fw).rate()/median(raw).rate())
	return nil
}

func runFramework(ctx context.Context, b broker.Broker, round int) (result, error) {
	out := fmt.Sprintf("out-duality-%d", round)
	if err := b.CreateTopic(ctx, out, broker.TopicConfig{Partitions: int32(*partitions)}); err != nil {
		return result{}, err
	}
	sb := stream.NewBuilder()
	in := stream.From(sb, "input", codec.Bytes(), codec.Bytes())
	kept := in.Filter(func(_, v []byte) bool { return keep(v) })
	stream.MapValues(kept, transform).To(out)
	topo, err := sb.Build()
	if err != nil {
		return result{}, err
	}
	group := fmt.Sprintf("bench-duality-%d", round)
	app, err := duality.New(group, topo, b)
	if err != nil {
		return result{}, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	start := time.Now()
	go func() { errc <- app.Run(runCtx) }()
	if err := waitCommitted(ctx, b, group, errc); err != nil {
		return result{}, err
	}
	d := time.Since(start)
	cancel()
	if err := <-errc; err != nil {
		return result{}, err
	}
	return result{*records, d}, nil
}

// runRaw is the no-framework baseline: workers that each own some input
// partitions fetch, filter and rewrite values, and commit the output
// records with the input offsets in one atomic broker commit every 100 ms.
func runRaw(ctx context.Context, b broker.Broker, round int) (result, error) {
	out := fmt.Sprintf("out-raw-%d", round)
	if err := b.CreateTopic(ctx, out, broker.TopicConfig{Partitions: int32(*partitions)}); err != nil {
		return result{}, err
	}
	group := fmt.Sprintf("bench-raw-%d", round)
	workers := min(runtime.GOMAXPROCS(0), *partitions)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			errs <- func() error {
				c, err := b.NewConsumer(broker.ConsumerOptions{MaxRecords: 10000})
				if err != nil {
					return err
				}
				defer c.Close()
				com, err := b.NewCommitter(ctx, fmt.Sprintf("%s-%d", group, w))
				if err != nil {
					return err
				}
				defer com.Close()
				next := map[broker.TopicPartition]int64{}
				end := map[broker.TopicPartition]int64{}
				for p := w; p < *partitions; p += workers {
					tp := broker.TopicPartition{Topic: "input", Partition: int32(p)}
					o, err := b.ListOffsets(ctx, "input", int32(p))
					if err != nil {
						return err
					}
					next[tp], end[tp] = 0, o.Latest
				}
				c.Assign(next)
				var buf []broker.Record
				last := time.Now()
				for {
					polled, err := c.Poll(ctx, time.Second)
					if err != nil {
						return err
					}
					for _, r := range polled.Records {
						if keep(r.Value) {
							buf = append(buf, broker.Record{Topic: out, Partition: broker.PartitionByKey, Key: r.Key, Value: transform(r.Value), Timestamp: r.Timestamp})
						}
						next[broker.TopicPartition{Topic: r.Topic, Partition: r.Partition}] = r.Offset + 1
					}
					finished := true
					for tp, off := range next {
						if off < end[tp] {
							finished = false
						}
					}
					if finished || time.Since(last) >= 100*time.Millisecond {
						err := com.Commit(ctx, broker.CommitRequest{Records: buf, Group: group, Offsets: maps.Clone(next)})
						if err != nil {
							return err
						}
						buf = buf[:0]
						last = time.Now()
					}
					if finished {
						return nil
					}
				}
			}()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return result{}, err
		}
	}
	return result{*records, time.Since(start)}, nil
}

// waitCommitted returns once group has consumed the whole input, which on
// the embedded broker means all its output is committed too.
func waitCommitted(ctx context.Context, b broker.Broker, group string, errc <-chan error) error {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		lag, err := broker.GroupLag(ctx, b, group, "input")
		if err != nil || lag == 0 {
			return err
		}
		select {
		case err := <-errc:
			return fmt.Errorf("app stopped early: %v", err)
		case <-tick.C:
		}
	}
}
