// Command failover measures how long an instance of a Duality app takes
// to take a stateful task over when the instance that ran it stops, with
// and without a standby replica of its store (duality.NumStandbyReplicas),
// on the embedded broker and on Kafka (an in-process kfake cluster).
//
// Each case builds a count table (table.Count over stream.GroupByKey) of
// -keys distinct keys on one input partition on instance A, with state in
// Pebble (duality.StateDir); then starts instance B on its own state
// directory, which with -standby keeps a standby copy of A's store, and
// waits until the copy has applied every changelog record A wrote. Then A
// is stopped (a graceful stop: its last commit, then it leaves the group),
// one new input record is produced, and the case measures the takeover:
// from the stop of A until B has processed that record, which includes
// A's stop, the rebalance, B's restore of the store and its first fetch.
// It also reports the part of it A's stop took, and the records B's
// restore read (the case fails unless they are all of A's changelog
// records without standby, none with it).
//
//	go run ./benchmarks/failover
//	go run ./benchmarks/failover -rounds 5 -backends embedded
//
// Cases are interleaved round by round and medians reported, because
// machines are noisy; each prints a "result" line per run and per median.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/broker/kafka"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
)

var (
	keys     = flag.Int("keys", 1_000_000, "distinct keys of the count store built on A")
	rounds   = flag.Int("rounds", 3, "interleaved rounds")
	backends = flag.String("backends", "embedded,kafka", "comma-separated backends: embedded, kafka")
	batch    = flag.Int("batch", 5000, "records per Produce call of the input")
	timeout  = flag.Duration("timeout", 10*time.Minute, "bound of one case")
)

const (
	appID       = "failover"
	inputTopic  = "input"
	outputTopic = "counts"
	storeName   = "counts"
	changelog   = appID + "-" + storeName + "-changelog"
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "failover:", err)
		os.Exit(1)
	}
}

// spec is one case: a backend, with or without standby.
type spec struct {
	backend string
	standby bool
}

func (s spec) String() string {
	if s.standby {
		return s.backend + "/standby"
	}
	return s.backend + "/no-standby"
}

// result is what a case measured.
type result struct {
	Takeover time.Duration // from the stop of A until B processed the new record
	StopA    time.Duration // A's stop (its Run returning), part of Takeover
	Restored int64         // changelog records B's restore read
	Logged   int64         // changelog records A wrote
	Build    time.Duration // building the table on A
	Warm     time.Duration // B's standby catching up, from B's start
}

func run() error {
	if *keys < 1 || *rounds < 1 || *batch < 1 {
		return errors.New("-keys, -rounds and -batch must be at least 1")
	}
	var specs []spec
	for be := range strings.SplitSeq(*backends, ",") {
		if be != "embedded" && be != "kafka" {
			return fmt.Errorf("-backends %q: want embedded, kafka or both", *backends)
		}
		specs = append(specs, spec{be, false}, spec{be, true})
	}
	fmt.Printf("Duality failover: a %d-key count store (1 partition, Pebble state) taken over by a second instance, with and without a standby replica; GOMAXPROCS=%d, %d cores\n\n",
		*keys, runtime.GOMAXPROCS(0), runtime.NumCPU())
	results := map[spec][]result{}
	for round := range *rounds {
		for _, s := range specs {
			r, err := runCase(s)
			if err != nil {
				return fmt.Errorf("round %d, case %s: %w", round+1, s, err)
			}
			results[s] = append(results[s], r)
			fmt.Printf("result round=%d case=%s takeover=%v stop-a=%v restored=%d changelog=%d build=%v warm=%v\n",
				round+1, s, r.Takeover.Round(time.Millisecond), r.StopA.Round(time.Millisecond), r.Restored, r.Logged,
				r.Build.Round(time.Millisecond), r.Warm.Round(time.Millisecond))
		}
	}
	fmt.Println()
	for _, s := range specs {
		rs := results[s]
		fmt.Printf("result median case=%s takeover=%v stop-a=%v restored=%d (takeovers: %s)\n", s,
			median(rs, func(r result) time.Duration { return r.Takeover }).Round(time.Millisecond),
			median(rs, func(r result) time.Duration { return r.StopA }).Round(time.Millisecond),
			rs[0].Restored, durations(rs))
		if s.standby {
			without := results[spec{s.backend, false}]
			with := median(rs, func(r result) time.Duration { return r.Takeover })
			base := median(without, func(r result) time.Duration { return r.Takeover })
			fmt.Printf("result median case=%s takeover-ratio=%.2fx (with standby / without) warm=%v\n", s.backend,
				float64(with)/float64(base), median(rs, func(r result) time.Duration { return r.Warm }).Round(time.Millisecond))
		}
	}
	return nil
}

// runCase runs one case on a fresh broker and fresh state directories.
func runCase(s spec) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	dir, err := os.MkdirTemp("", "duality-failover-")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	b, closeBroker, err := openBroker(ctx, s.backend, dir)
	if err != nil {
		return result{}, err
	}
	defer closeBroker()
	r, err := failover(ctx, b, dir, s.standby)
	runtime.GC()
	return r, err
}

// openBroker opens the backend: the embedded broker in dir, or a kfake
// cluster of one broker on 127.0.0.1 with a kafka.Broker on it, with
// quick group timing (rebalances noticed within 100 ms).
func openBroker(ctx context.Context, backend, dir string) (broker.Broker, func(), error) {
	if backend == "embedded" {
		b, err := embedded.Open(filepath.Join(dir, "broker"))
		if err != nil {
			return nil, nil, err
		}
		return b, func() { _ = b.Close() }, nil
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		return nil, nil, err
	}
	b, err := kafka.New(ctx, c.ListenAddrs(), kafka.WithClientOptions(
		kgo.SessionTimeout(10*time.Second),
		kgo.HeartbeatInterval(100*time.Millisecond),
		kgo.RebalanceTimeout(10*time.Second),
	))
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return b, func() { _ = b.Close(); c.Close() }, nil
}

func topology() (*stream.Topology, error) {
	sb := stream.NewBuilder()
	in := stream.From(sb, inputTopic, codec.String(), codec.Bytes())
	table.Count(stream.GroupByKey(in), storeName).ToStream().To(outputTopic)
	return sb.Build()
}

// instance is a running app.
type instance struct {
	app  *duality.App
	stop context.CancelFunc
	done chan error
	// halted is Run's error once halt returned.
	once   sync.Once
	halted error
	// restored is the changelog records its restores read.
	mu       sync.Mutex
	restored int64
}

// start runs an instance of the count app with its state in dir.
func start(ctx context.Context, b broker.Broker, dir string, standbys int) (*instance, error) {
	topo, err := topology()
	if err != nil {
		return nil, err
	}
	in := &instance{done: make(chan error, 1)}
	app, err := duality.New(appID, topo, b, duality.StateDir(dir), duality.NumStandbyReplicas(standbys),
		duality.Workers(1), duality.OnRestore(in.onRestore))
	if err != nil {
		return nil, err
	}
	in.app = app
	rctx, stop := context.WithCancel(ctx)
	in.stop = stop
	go func() { in.done <- app.Run(rctx) }()
	return in, nil
}

// onRestore counts the changelog records the restores read.
func (in *instance) onRestore(p duality.RestoreProgress) {
	if p.Done {
		in.mu.Lock()
		in.restored += p.Restored
		in.mu.Unlock()
	}
}

// halt stops the instance, once, and returns Run's error.
func (in *instance) halt() error {
	in.once.Do(func() {
		in.stop()
		in.halted = <-in.done
	})
	return in.halted
}

// failover runs one case on b: see the package documentation.
func failover(ctx context.Context, b broker.Broker, dir string, standby bool) (result, error) {
	var r result
	for _, topic := range []string{inputTopic, outputTopic} {
		if err := b.CreateTopic(ctx, topic, broker.TopicConfig{Partitions: 1}); err != nil {
			return r, err
		}
	}
	standbys := 0
	if standby {
		standbys = 1
	}
	t0 := time.Now()
	if err := produce(ctx, b, 0, *keys); err != nil {
		return r, err
	}
	a, err := start(ctx, b, filepath.Join(dir, "a"), standbys)
	if err != nil {
		return r, err
	}
	defer func() { _ = a.halt() }()
	if err := await(ctx, a, "A counted the input", func() (bool, error) {
		lag, err := broker.GroupLag(ctx, b, appID, inputTopic)
		// The metrics count a commit just after the broker has it.
		return err == nil && lag == 0 && a.app.Metrics().ChangelogRecords >= uint64(*keys), nil
	}); err != nil {
		return r, err
	}
	r.Build = time.Since(t0)
	// Each key counted once: one changelog record each.
	r.Logged = int64(a.app.Metrics().ChangelogRecords)
	if r.Logged != int64(*keys) {
		return r, fmt.Errorf("A wrote %d changelog records for %d keys", r.Logged, *keys)
	}

	t1 := time.Now()
	bi, err := start(ctx, b, filepath.Join(dir, "b"), standbys)
	if err != nil {
		return r, err
	}
	defer func() { _ = bi.halt() }()
	if err := await(ctx, bi, "B joined", func() (bool, error) {
		return bi.app.Metrics().Assignments > 0 && a.app.Metrics().Assignments > 1, nil
	}); err != nil {
		return r, err
	}
	if m := bi.app.Metrics(); m.Tasks != 0 || a.app.Metrics().Tasks != 1 {
		return r, fmt.Errorf("A has %d tasks and B %d: want A to keep the task", a.app.Metrics().Tasks, m.Tasks)
	}
	if standby {
		if err := await(ctx, bi, "B's standby caught up", func() (bool, error) {
			m := bi.app.Metrics()
			return m.StandbyTasks == 1 && m.StandbyRecords == uint64(r.Logged) && m.StandbyLag == 0, nil
		}); err != nil {
			return r, err
		}
		r.Warm = time.Since(t1)
	}

	// The takeover.
	t2 := time.Now()
	if err := a.halt(); err != nil {
		return r, fmt.Errorf("A: %w", err)
	}
	r.StopA = time.Since(t2)
	if err := produce(ctx, b, *keys, *keys+1); err != nil {
		return r, err
	}
	if err := await(ctx, bi, "B processed the new record", func() (bool, error) {
		return bi.app.Metrics().RecordsProcessed >= 1, nil
	}); err != nil {
		return r, err
	}
	r.Takeover = time.Since(t2)
	bi.mu.Lock()
	r.Restored = bi.restored
	bi.mu.Unlock()
	if err := bi.halt(); err != nil {
		return r, fmt.Errorf("B: %w", err)
	}
	want := r.Logged
	if standby {
		want = 0
	}
	if r.Restored != want {
		return r, fmt.Errorf("B restored %d changelog records, want %d", r.Restored, want)
	}
	return r, nil
}

// await polls cond every millisecond until it holds, the instance stops
// or ctx ends.
func await(ctx context.Context, in *instance, what string, cond func() (bool, error)) error {
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if ok {
			return nil
		}
		select {
		case err := <-in.done:
			in.done <- err // for halt
			return fmt.Errorf("waiting until %s: the app stopped: %v", what, err)
		case <-ctx.Done():
			return fmt.Errorf("waiting until %s: %w", what, ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}

// produce appends the input records i in [from, to), each with its own
// key.
func produce(ctx context.Context, b broker.Broker, from, to int) error {
	recs := make([]broker.Record, 0, *batch)
	for i := from; i < to; i += *batch {
		recs = recs[:0]
		for j := i; j < min(to, i+*batch); j++ {
			recs = append(recs, broker.Record{Topic: inputTopic, Partition: 0,
				Key: fmt.Appendf(nil, "key-%08d", j), Value: []byte("v")})
		}
		if err := b.Produce(ctx, recs); err != nil {
			return fmt.Errorf("produce: %w", err)
		}
	}
	return nil
}

func median(rs []result, f func(result) time.Duration) time.Duration {
	ds := make([]time.Duration, len(rs))
	for i, r := range rs {
		ds[i] = f(r)
	}
	slices.Sort(ds)
	return ds[len(ds)/2]
}

func durations(rs []result) string {
	var s []string
	for _, r := range rs {
		s = append(s, r.Takeover.Round(time.Millisecond).String())
	}
	return strings.Join(s, ", ")
}
