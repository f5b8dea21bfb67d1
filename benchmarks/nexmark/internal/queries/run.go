package queries

import (
	"context"
	"errors"
	"fmt"
	"github.com/duality-streams/duality/benchmarks/internal/proc"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/benchmarks/nexmark/internal/gen"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/window"
)

// RunConfig configures Run.
type RunConfig struct {
	Dir        string        // for the broker and the state; must be empty or absent
	Gen        gen.Config    // the events
	Events     int64         // how many events
	Partitions int           // partitions of the events and output topics; 0 means 2
	Grace      time.Duration // Env.Grace; 0 means 30s
	Workers    int           // duality.Workers; 0 means the default
	// BeforeRun, if set, is called after the input is produced, just before
	// the query starts (the benchmark resets the peak RSS there).
	BeforeRun func()
	// AfterRun, if set, is called when the query's run returned, before
	// its output is read.
	AfterRun func()
}

// Result is what Run measured and read.
type Result struct {
	Events  int64
	Produce time.Duration // generating and producing the input
	Wall    time.Duration // RunToEnd, from start to return
	CPU     time.Duration // CPU time (user + system) of the process during RunToEnd
	Outputs int64         // records in the output topic
	Late    int64         // records dropped as late by windowed steps
	Rows    []any         // the final output
}

// Run produces cfg.Events events of cfg.Gen into a new embedded broker in
// cfg.Dir, runs q over them to their end with duality.App.RunToEnd (state
// in Pebble) and reads q's final output.
func Run(ctx context.Context, q Query, cfg RunConfig) (res Result, err error) {
	var stats *window.Stats
	res, err = runOn(ctx, q, cfg, func(brk broker.Broker, g *gen.Generator, cfg RunConfig) (func(context.Context) error, error) {
		env := Env{Gen: g, Stats: new(window.Stats), Grace: cfg.Grace}
		stats = env.Stats
		b := stream.NewBuilder()
		q.Build(b, env)
		topo, err := b.Build()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", q.Name, err)
		}
		opts := []duality.Option{duality.StateDir(filepath.Join(cfg.Dir, "state"))}
		if cfg.Workers > 0 {
			opts = append(opts, duality.Workers(cfg.Workers))
		}
		app, err := duality.New("nexmark-"+q.Name, topo, brk, opts...)
		if err != nil {
			return nil, err
		}
		return app.RunToEnd, nil
	})
	if stats != nil {
		res.Late = stats.LateRecords()
	}
	return res, err
}

// runOn produces cfg.Events events of cfg.Gen into a new embedded broker
// in cfg.Dir, then calls prepare, times the function it returns (wall
// and CPU time, between cfg.BeforeRun and cfg.AfterRun) and reads q's
// final output.
func runOn(ctx context.Context, q Query, cfg RunConfig,
	prepare func(brk broker.Broker, g *gen.Generator, cfg RunConfig) (func(context.Context) error, error)) (res Result, err error) {
	if cfg.Partitions == 0 {
		cfg.Partitions = 2
	}
	if cfg.Grace == 0 {
		cfg.Grace = 30 * time.Second
	}
	if cfg.Events < 0 || cfg.Partitions < 0 {
		return res, fmt.Errorf("queries: invalid run: %d events, %d partitions", cfg.Events, cfg.Partitions)
	}
	g, err := gen.New(cfg.Gen)
	if err != nil {
		return res, err
	}
	brk, err := embedded.Open(filepath.Join(cfg.Dir, "broker"), embedded.WithCleanupInterval(-1))
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, brk.Close()) }()
	topics := []string{EventsTopic, OutputTopic(q.Name)}
	if q.Side {
		topics = append(topics, SideTopic)
	}
	for _, t := range topics {
		if err := brk.CreateTopic(ctx, t, broker.TopicConfig{Partitions: int32(cfg.Partitions)}); err != nil {
			return res, err
		}
	}
	start := time.Now()
	if err := Produce(ctx, brk, g, cfg.Events, cfg.Partitions); err != nil {
		return res, err
	}
	if q.Side {
		if err := produceSide(ctx, brk); err != nil {
			return res, err
		}
	}
	res.Events, res.Produce = cfg.Events, time.Since(start)

	run, err := prepare(brk, g, cfg)
	if err != nil {
		return res, err
	}
	if cfg.BeforeRun != nil {
		cfg.BeforeRun()
	}
	cpu0 := proc.CPUTime()
	start = time.Now()
	if err := run(ctx); err != nil {
		return res, fmt.Errorf("%s: %w", q.Name, err)
	}
	res.Wall, res.CPU = time.Since(start), proc.CPUTime()-cpu0
	if cfg.AfterRun != nil {
		cfg.AfterRun()
	}
	res.Outputs, res.Rows, err = readOutput(ctx, brk, q)
	return res, err
}

// Produce appends events [0, count) of g to EventsTopic, event n to
// partition n % partitions with its event time as the timestamp: one
// goroutine per partition generates its events (the generator is the same
// whatever the split) and appends them in order, in batches.
func Produce(ctx context.Context, brk broker.Broker, g *gen.Generator, count int64, partitions int) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	c := gen.EventCodec()
	var wg sync.WaitGroup
	for p := range partitions {
		wg.Go(func() {
			const batchSize = 1000
			batch := make([]broker.Record, 0, batchSize)
			flush := func() bool {
				if err := brk.Produce(ctx, batch); err != nil {
					cancel(err)
					return false
				}
				batch = batch[:0]
				return true
			}
			for _, e := range g.Events(int64(p), count, int64(partitions)) {
				v, err := c.Append(nil, e)
				if err != nil {
					cancel(err)
					return
				}
				batch = append(batch, broker.Record{Topic: EventsTopic, Partition: int32(p), Value: v,
					Timestamp: time.UnixMilli(e.DateTime())})
				if len(batch) == batchSize && !flush() {
					return
				}
			}
			if len(batch) > 0 {
				flush()
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

func produceSide(ctx context.Context, brk broker.Broker) error {
	recs := make([]broker.Record, 0, SideKeys)
	for i := range int64(SideKeys) {
		k, _ := codec.Int64().Append(nil, i)
		recs = append(recs, broker.Record{Topic: SideTopic, Partition: broker.PartitionByKey, Key: k, Value: []byte(SideValue(i))})
	}
	return brk.Produce(ctx, recs)
}

// readOutput reads q's output topic: every record, or with q.Table the
// newest value of every key.
func readOutput(ctx context.Context, brk broker.Broker, q Query) (int64, []any, error) {
	recs, err := broker.ReadAll(ctx, brk, OutputTopic(q.Name))
	if err != nil {
		return 0, nil, err
	}
	total := int64(len(recs))
	slices.SortStableFunc(recs, func(a, b broker.Record) int {
		if a.Partition != b.Partition {
			return int(a.Partition - b.Partition)
		}
		return int(a.Offset - b.Offset)
	})
	if q.Table {
		newest := map[string][]byte{}
		var order []string
		for _, r := range recs {
			k := string(r.Key)
			if _, ok := newest[k]; !ok {
				order = append(order, k)
			}
			newest[k] = r.Value
		}
		recs = recs[:0]
		for _, k := range order {
			if v := newest[k]; v != nil {
				recs = append(recs, broker.Record{Key: []byte(k), Value: v})
			}
		}
	}
	var rows []any
	for _, r := range recs {
		if r.Value == nil {
			return 0, nil, fmt.Errorf("%s: unexpected tombstone in the output at partition %d offset %d", q.Name, r.Partition, r.Offset)
		}
		rs, err := q.Rows(r.Value)
		if err != nil {
			return 0, nil, fmt.Errorf("%s: output record %d/%d: %w", q.Name, r.Partition, r.Offset, err)
		}
		rows = append(rows, rs...)
	}
	return total, rows, nil
}
