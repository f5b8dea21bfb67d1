package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"

	"github.com/duality-streams/duality/codec"
)

// stateKind is where both systems keep their local state: "disk", each
// one's default (goka: LevelDB, storage.DefaultBuilder; Duality: Pebble,
// duality.StateDir), or "memory" (goka: storage.MemoryBuilder; Duality:
// its in-memory stores, no StateDir). Either way the state is logged to
// a changelog topic and restored from it.
var stateKind = "disk"

func gokaStorageBuilder(dir string) (storage.Builder, error) {
	switch stateKind {
	case "disk":
		return storage.DefaultBuilder(filepath.Join(dir, "goka")), nil
	case "memory":
		return storage.MemoryBuilder(), nil
	}
	return nil, fmt.Errorf("state %q: want disk or memory", stateKind)
}

// gokaTable is goka's group table of workload w: "<group>-table".
func gokaTable(w string) string { return string(goka.GroupTable(gokaGroup(w))) }

func gokaGroup(w string) goka.Group { return goka.Group("goka-" + strings.ToLower(w)) }

// int64Codec is goka's codec of the values: the encoding of Duality's
// codec.Int64 (8 bytes), so both systems do the same codec work and
// write identical bytes. goka's Codec takes and returns interface{}:
// boxing the int64 is goka's API, not a choice of this benchmark.
type int64Codec struct{}

func (int64Codec) Encode(v any) ([]byte, error) {
	n, ok := v.(int64)
	if !ok {
		return nil, fmt.Errorf("int64 codec: got %T", v)
	}
	return codec.Int64().Append(make([]byte, 0, 8), n)
}

func (int64Codec) Decode(b []byte) (any, error) { return codec.Int64().Decode(b) }

// gokaGraph is workload w as a goka group graph, the way goka's examples
// write it: a callback per input message, state through ctx.Value and
// ctx.SetValue (the group table), joins through ctx.Join of a
// co-partitioned table.
func gokaGraph(w string) (*goka.GroupGraph, error) {
	c := int64Codec{}
	count := func(ctx goka.Context, _ any) {
		var n int64
		if v := ctx.Value(); v != nil {
			n = v.(int64)
		}
		ctx.SetValue(n + 1)
	}
	switch w {
	case W1:
		return goka.DefineGroup(gokaGroup(w),
			goka.Input(inputTopic, c, func(ctx goka.Context, msg any) {
				if v := msg.(int64); v%3 != 0 {
					ctx.Emit(outputTopic, ctx.Key(), 2*v+1)
				}
			}),
			goka.Output(outputTopic, c),
		), nil
	case W2, W3:
		return goka.DefineGroup(gokaGroup(w), goka.Input(inputTopic, c, count), goka.Persist(c)), nil
	case W4:
		return goka.DefineGroup(gokaGroup(w),
			goka.Input(inputTopic, c, func(ctx goka.Context, msg any) {
				if tv := ctx.Join(tableTopic); tv != nil {
					ctx.Emit(outputTopic, ctx.Key(), 1000*msg.(int64)+tv.(int64))
				}
			}),
			goka.Join(tableTopic, c),
			goka.Output(outputTopic, c),
		), nil
	}
	return nil, fmt.Errorf("workload %q: goka has no windows", w)
}

// gokaConfig is goka's default configuration (goka.DefaultConfig: sarama
// with its async producer flushing every 100 ms or 64 KiB, snappy,
// acks from the leader) with one change: streams are read from the
// oldest offset, since the input is written before the processor starts
// (goka's default starts a new group at the newest offset).
func gokaConfig() *sarama.Config {
	cfg := goka.DefaultConfig()
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	return cfg
}

// runGoka runs workload w on goka over the kfake cluster c (input
// written), from NewProcessor until the work is done: every output
// record (W1, W4) or every table update (W2; goka writes one per input
// message) acknowledged by the cluster, or for W3 the processor ready
// (its partitions recovered). Its local storage is stateKind's: by
// default goka's default, LevelDB in dir, as Duality's is Pebble on
// disk. The checksum is the output topic's (W1, W4), the newest value
// per key of the group table topic (W2) or the recovered table read
// through Processor.Get (W3).
func runGoka(ctx context.Context, c *cluster, w string, s sizes, dir string) (measured, checksum, error) {
	if c.seeds == nil {
		return measured{}, checksum{}, errors.New("goka runs on Kafka only")
	}
	g, err := gokaGraph(w)
	if err != nil {
		return measured{}, checksum{}, err
	}
	goka.ReplaceGlobalConfig(gokaConfig())
	var want int64
	var topic string
	switch w {
	case W1:
		topic = outputTopic
		for i := range s.Records {
			if i%3 != 0 {
				want++
			}
		}
	case W2:
		topic, want = gokaTable(w), int64(s.Records)
	case W4:
		topic, want = outputTopic, int64(s.Records)
	}

	sb, err := gokaStorageBuilder(dir)
	if err != nil {
		return measured{}, checksum{}, err
	}
	m := startMeasure()
	p, err := goka.NewProcessor(c.seeds, g,
		goka.WithStorageBuilder(sb),
		goka.WithHasher(newKafkaHash))
	if err != nil {
		return measured{}, checksum{}, err
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	stopped := make(chan error, 1)
	go func() { stopped <- p.Run(runCtx) }()
	if w == W3 {
		if err := p.WaitForReadyContext(ctx); err != nil {
			stop()
			return measured{}, checksum{}, errors.Join(err, <-stopped)
		}
	} else {
		err := waitUntil(ctx, stopped, func() (bool, error) {
			n, err := endOffsets(ctx, c.b, topic, s.Partitions)
			return n >= want, err
		})
		if err != nil {
			stop()
			return measured{}, checksum{}, errors.Join(err, <-stopped)
		}
	}
	run := m.stop()

	var sum checksum
	if w == W3 {
		for j := range s.RestoreKeys {
			k := key(j, s.RestoreKeys)
			v, gerr := p.Get(string(k))
			if gerr != nil || v == nil {
				err = fmt.Errorf("get %s from the recovered table: %v (value %v)", k, gerr, v)
				break
			}
			sum.add(k, int64Bytes(v.(int64)))
		}
	}
	stop()
	if rerr := <-stopped; rerr != nil {
		return measured{}, checksum{}, errors.Join(err, fmt.Errorf("run: %w", rerr))
	}
	if err != nil {
		return measured{}, checksum{}, err
	}
	switch w {
	case W1, W4:
		sum, err = readChecksum(ctx, c.b, outputTopic, streamChecksum)
	case W2:
		sum, err = readChecksum(ctx, c.b, gokaTable(w), tableChecksum)
	}
	return run, sum, err
}
