package stream_test

import (
	"context"
	"fmt"
	"iter"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/dsl"
	"github.com/duality-streams/duality/stream"
)

// TestTasksRunInParallel runs tasks of one topology on separate
// goroutines, as the runtime does; under -race it shows that tasks share
// no mutable state.
func TestTasksRunInParallel(t *testing.T) {
	b := stream.NewBuilder()
	s := stream.From(b, "in", str, str)
	words := stream.FlatMapValues(s.Filter(func(_, v string) bool { return v != "" }), func(v string) iter.Seq[string] {
		return strings.FieldsSeq(v)
	})
	br := words.Split()
	br.Branch("short", func(_, w string) bool { return len(w) < 4 }).To("short")
	upper := stream.MapValues(br.Default(), strings.ToUpper)
	stream.Process(upper, func() stream.Processor[string, string, string, string] {
		return &funcProcessor[string, string, string, string]{process: func(ctx context.Context, pc stream.ProcessorContext[string, string], r stream.Record[string, string]) error {
			return pc.Forward(ctx, r)
		}}
	}).ToFunc(func(_, v string, _ stream.RecordContext) string { return "len-" + fmt.Sprint(len(v)) })
	topo, err := b.Build()
	require.NoError(t, err)

	const tasks, records = 4, 500
	envs := make([]*countingEnv, tasks)
	var wg sync.WaitGroup
	errs := make(chan error, tasks)
	for p := range tasks {
		envs[p] = &countingEnv{}
		wg.Go(func() {
			proc, err := dsl.Unwrap((*dsl.Topology)(topo)).SubTopologies[0].NewTask(envs[p])
			if err != nil {
				errs <- err
				return
			}
			defer proc.Close()
			for i := range records {
				rec := &broker.Record{Topic: "in", Partition: int32(p), Offset: int64(i), Key: []byte("k"), Value: []byte("a bb ccc dddd eeeee"), Timestamp: time.UnixMilli(int64(i))}
				if err := proc.Process(context.Background(), rec); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for _, e := range envs {
		require.Equal(t, records*5, e.sent)
	}
}
