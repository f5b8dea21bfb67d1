// Command guarantee measures what duality.ProcessingGuarantee costs and
// buys: a keyed count (table.Count over stream.GroupByKey, its updates
// written to an output topic) run to the end of its input (App.RunToEnd)
// under ExactlyOnce and under AtLeastOnce, on an in-process kfake cluster
// (three brokers on 127.0.0.1) by default, on a Kafka cluster with
// -brokers, or on the embedded broker with -backends embedded.
//
//	go run ./benchmarks/guarantee
//	go run ./benchmarks/guarantee -records 1000000 -rounds 5
//	go run ./benchmarks/guarantee -backends kfake,embedded
//	go run ./benchmarks/guarantee -max-uncommitted 500  # many small commits
//	go run ./benchmarks/guarantee -brokers 127.0.0.1:9092
//
// For each case it reports records/s from the start of the run to the
// commit of the last input offset (the input is produced beforehand, not
// timed), the process's CPU time per input record (kfake's included when
// it runs in-process), the number of commits and their latency (median
// and 99th percentile of Committer.Commit calls: output, changelog and
// offsets), and checks that the counts are exact (no crash: at-least-once
// duplicates nothing either). The guarantees are interleaved round by
// round, in alternating order (A B, B A, ...), each case on a fresh
// cluster, and medians reported, because machines are noisy. On the
// embedded broker both guarantees run the same code (its at-least-once
// committer is its atomic one), so its two rows show how far apart noise
// alone puts two identical cases. Each run prints "result ..." lines, one per case
// and round, then a summary.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/duality-streams/duality/benchmarks/internal/proc"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/broker/kafka"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
)

var (
	records    = flag.Int("records", 200_000, "input records of a case")
	keys       = flag.Int("keys", 1000, "distinct keys of the input")
	partitions = flag.Int("partitions", 4, "partitions of the input and output topics")
	rounds     = flag.Int("rounds", 3, "interleaved rounds")
	workers    = flag.Int("workers", 0, "duality.Workers (0: the default, GOMAXPROCS)")
	interval   = flag.Duration("commit-interval", duality.DefaultCommitInterval, "duality.CommitInterval")
	maxUncomm  = flag.Int("max-uncommitted", duality.DefaultMaxUncommittedRecords, "duality.MaxUncommittedRecords: smaller makes more, smaller commits")
	backends   = flag.String("backends", "kfake", "comma-separated backends: kfake, embedded")
	brokers    = flag.String("brokers", "", "run on the Kafka cluster at these comma-separated host:port addresses instead of kfake (topics and groups get names of their own per case)")
)

func main() {
	flag.Parse()
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "guarantee:", err)
		os.Exit(1)
	}
}

// result is one case's run.
type result struct {
	backend   string
	guarantee duality.Guarantee
	round     int
	dur       time.Duration
	cpu       time.Duration
	commits   []time.Duration // the latency of every commit
}

func (r result) rate() float64 { return float64(*records) / r.dur.Seconds() }

func run(ctx context.Context) error {
	var bs []string
	for b := range strings.SplitSeq(*backends, ",") {
		switch b = strings.TrimSpace(b); b {
		case "kfake", "embedded":
			bs = append(bs, b)
		default:
			return fmt.Errorf("-backends: unknown backend %q (kfake, embedded)", b)
		}
	}
	if *records < 1 || *keys < 1 || *partitions < 1 || *rounds < 1 {
		return errors.New("-records, -keys, -partitions and -rounds must be at least 1")
	}
	if *brokers != "" {
		bs = slices.DeleteFunc(bs, func(b string) bool { return b == "kfake" })
		bs = append([]string{"kafka"}, bs...)
	}
	guarantees := []duality.Guarantee{duality.ExactlyOnce, duality.AtLeastOnce}
	fmt.Printf("keyed count of %d records over %d keys, %d partitions, commit interval %v, max uncommitted %d, %d rounds\n",
		*records, *keys, *partitions, *interval, *maxUncomm, *rounds)
	var all []result
	for round := range *rounds {
		for _, backend := range bs {
			order := slices.Clone(guarantees)
			if round%2 == 1 {
				slices.Reverse(order) // A B, B A: no guarantee always runs second
			}
			for _, g := range order {
				r, err := runCase(ctx, backend, g, round)
				if err != nil {
					return fmt.Errorf("%s %v round %d: %w", backend, g, round, err)
				}
				p50, p99 := percentile(r.commits, 50), percentile(r.commits, 99)
				fmt.Printf("result backend=%s guarantee=%v round=%d records=%d dur=%v records/s=%.0f cpu_us/record=%.2f commits=%d commit_p50=%v commit_p99=%v\n",
					backend, g, round, *records, r.dur.Round(time.Millisecond), r.rate(),
					float64(r.cpu.Microseconds())/float64(*records), len(r.commits), p50, p99)
				all = append(all, r)
			}
		}
	}
	fmt.Println()
	fmt.Printf("%-9s %-16s %10s %14s %8s %11s %11s\n", "backend", "guarantee", "records/s", "CPU µs/record", "commits", "commit p50", "commit p99")
	for _, backend := range bs {
		var base float64
		for _, g := range guarantees {
			var rs []result
			for _, r := range all {
				if r.backend == backend && r.guarantee == g {
					rs = append(rs, r)
				}
			}
			rate := median(rs, func(r result) float64 { return r.rate() })
			cpu := median(rs, func(r result) float64 { return float64(r.cpu.Microseconds()) / float64(*records) })
			commits := median(rs, func(r result) float64 { return float64(len(r.commits)) })
			p50 := median(rs, func(r result) float64 { return float64(percentile(r.commits, 50)) })
			p99 := median(rs, func(r result) float64 { return float64(percentile(r.commits, 99)) })
			line := fmt.Sprintf("%-9s %-16v %10.0f %14.2f %8.0f %11v %11v", backend, g, rate, cpu, commits,
				time.Duration(p50).Round(10*time.Microsecond), time.Duration(p99).Round(10*time.Microsecond))
			if g == duality.ExactlyOnce {
				base = rate
			} else {
				line += fmt.Sprintf("   %.2fx the records/s of exactly_once_v2", rate/base)
			}
			fmt.Println(line)
		}
	}
	return nil
}

// runCase produces the input on a fresh broker of backend, runs the count
// to the end under g, and checks its output.
func runCase(ctx context.Context, backend string, g duality.Guarantee, round int) (result, error) {
	b, closeBroker, err := openBroker(ctx, backend)
	if err != nil {
		return result{}, err
	}
	defer closeBroker()
	name := fmt.Sprintf("guarantee-%s-%d-%d-%d", backend, g, round, time.Now().UnixNano())
	in, out := name+"-in", name+"-out"
	for _, topic := range []string{in, out} {
		if err := b.CreateTopic(ctx, topic, broker.TopicConfig{Partitions: int32(*partitions)}); err != nil {
			return result{}, err
		}
	}
	if err := produce(ctx, b, in); err != nil {
		return result{}, err
	}

	sb := stream.NewBuilder()
	table.Count(stream.GroupByKey(stream.From(sb, in, codec.String(), codec.String())), "counts").
		ToStream().To(out)
	topo, err := sb.Build()
	if err != nil {
		return result{}, err
	}
	timed := &timedBroker{Broker: b}
	opts := []duality.Option{duality.ProcessingGuarantee(g), duality.CommitInterval(*interval), duality.MaxUncommittedRecords(*maxUncomm)}
	if *workers > 0 {
		opts = append(opts, duality.Workers(*workers))
	}
	app, err := duality.New(name, topo, timed, opts...)
	if err != nil {
		return result{}, err
	}
	cpu0 := proc.CPUTime()
	start := time.Now()
	if err := app.RunToEnd(ctx); err != nil {
		return result{}, err
	}
	r := result{backend: backend, guarantee: g, round: round, dur: time.Since(start), cpu: proc.CPUTime() - cpu0}
	r.commits = timed.latencies()
	return r, checkCounts(ctx, b, out)
}

// openBroker returns a fresh broker of backend and what closes it.
func openBroker(ctx context.Context, backend string) (broker.Broker, func(), error) {
	switch backend {
	case "embedded":
		dir, err := os.MkdirTemp("", "duality-guarantee-")
		if err != nil {
			return nil, nil, err
		}
		b, err := embedded.Open(dir)
		if err != nil {
			os.RemoveAll(dir)
			return nil, nil, err
		}
		return b, func() { b.Close(); os.RemoveAll(dir) }, nil
	case "kafka":
		b, err := kafka.New(ctx, strings.Split(*brokers, ","))
		if err != nil {
			return nil, nil, err
		}
		return b, func() { b.Close() }, nil
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(3))
	if err != nil {
		return nil, nil, err
	}
	b, err := kafka.New(ctx, c.ListenAddrs())
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return b, func() { b.Close(); c.Close() }, nil
}

// produce appends the input to topic: record i has the key k<i mod keys>.
func produce(ctx context.Context, b broker.Broker, topic string) error {
	const batch = 1000
	recs := make([]broker.Record, 0, batch)
	for i := range *records {
		recs = append(recs, broker.Record{Topic: topic, Partition: broker.PartitionByKey,
			Key: fmt.Appendf(nil, "k%d", i%*keys), Value: []byte("v")})
		if len(recs) == batch || i == *records-1 {
			if err := b.Produce(ctx, recs); err != nil {
				return err
			}
			recs = recs[:0]
		}
	}
	return nil
}

// checkCounts checks that the newest count of every key in topic is the
// number of its input records: nothing lost, nothing counted twice.
func checkCounts(ctx context.Context, b broker.Broker, topic string) error {
	recs, err := broker.ReadAll(ctx, b, topic)
	if err != nil {
		return err
	}
	newest := map[string]int64{}
	for _, r := range recs {
		n, err := codec.Int64().Decode(r.Value)
		if err != nil {
			return err
		}
		newest[string(r.Key)] = n
	}
	if len(newest) != *keys {
		return fmt.Errorf("%d keys counted, want %d", len(newest), *keys)
	}
	for k, n := range newest {
		var i int
		if _, err := fmt.Sscanf(k, "k%d", &i); err != nil {
			return fmt.Errorf("unexpected key %q", k)
		}
		want := int64(*records / *keys)
		if i < *records%*keys {
			want++
		}
		if n != want {
			return fmt.Errorf("count of %s is %d, want %d", k, n, want)
		}
	}
	return nil
}

// timedBroker times the commits of the committers it opens.
type timedBroker struct {
	broker.Broker
	mu  sync.Mutex
	lat []time.Duration
}

func (b *timedBroker) NewCommitter(ctx context.Context, id string) (broker.Committer, error) {
	c, err := b.Broker.NewCommitter(ctx, id)
	return b.wrap(c, err)
}

func (b *timedBroker) NewAtLeastOnceCommitter(ctx context.Context, id string) (broker.Committer, error) {
	c, err := b.Broker.NewAtLeastOnceCommitter(ctx, id)
	return b.wrap(c, err)
}

func (b *timedBroker) wrap(c broker.Committer, err error) (broker.Committer, error) {
	if err != nil {
		return nil, err
	}
	return &timedCommitter{Committer: c, b: b}, nil
}

func (b *timedBroker) latencies() []time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.lat)
}

type timedCommitter struct {
	broker.Committer
	b *timedBroker
}

func (c *timedCommitter) Commit(ctx context.Context, req broker.CommitRequest) error {
	start := time.Now()
	err := c.Committer.Commit(ctx, req)
	if err == nil {
		d := time.Since(start)
		c.b.mu.Lock()
		c.b.lat = append(c.b.lat, d)
		c.b.mu.Unlock()
	}
	return err
}

// percentile returns the p-th percentile of ds (0 for none).
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

// median returns the median of f over rs.
func median(rs []result, f func(result) float64) float64 {
	vs := make([]float64, len(rs))
	for i, r := range rs {
		vs[i] = f(r)
	}
	slices.SortFunc(vs, cmp.Compare)
	if len(vs)%2 == 1 {
		return vs[len(vs)/2]
	}
	return (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2
}
