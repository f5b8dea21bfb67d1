package stream_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
)

// nop is a processor that forwards nothing.
type nop struct{}

func (nop) Init(stream.ProcessorContext[string, string]) error           { return nil }
func (nop) Process(context.Context, stream.Record[string, string]) error { return nil }
func (nop) Close() error                                                 { return nil }
func nopSupplier() stream.Processor[string, string, string, string]      { return nop{} }

func TestWithStoresBuild(t *testing.T) {
	str := codec.String()
	tests := []struct {
		name  string
		build func(b *stream.Builder)
		want  []error // nil: Build succeeds
	}{
		{"one store", func(b *stream.Builder) {
			stream.Process(stream.From(b, "in", str, str), nopSupplier, stream.WithStores(stream.BytesStoreSpec("counts")))
		}, nil},
		{"two steps of one sub-topology share a store", func(b *stream.Builder) {
			s := stream.Process(stream.From(b, "in", str, str), nopSupplier, stream.WithStores(stream.BytesStoreSpec("counts")))
			stream.Process(s, nopSupplier, stream.WithStores(stream.BytesStoreSpec("counts"), stream.BytesStoreSpec("other")), stream.WithStores(stream.BytesStoreSpec("counts")))
		}, nil},
		{"invalid store name", func(b *stream.Builder) {
			stream.Process(stream.From(b, "in", str, str), nopSupplier, stream.WithStores(stream.BytesStoreSpec("no spaces")))
		}, []error{stream.ErrInvalidOption}},
		{"empty store name", func(b *stream.Builder) {
			stream.Process(stream.From(b, "in", str, str), nopSupplier, stream.WithStores(stream.BytesStoreSpec("")))
		}, []error{stream.ErrInvalidOption}},
		{"WithStores without a name", func(b *stream.Builder) {
			stream.Process(stream.From(b, "in", str, str), nopSupplier, stream.WithStores())
		}, []error{stream.ErrInvalidOption}},
		{"store of two sub-topologies", func(b *stream.Builder) {
			stream.Process(stream.From(b, "a", str, str), nopSupplier, stream.WithStores(stream.BytesStoreSpec("counts")))
			stream.Process(stream.From(b, "b", str, str), nopSupplier, stream.WithStores(stream.BytesStoreSpec("counts")))
		}, []error{stream.ErrStoreConflict}},
		{"store on both sides of a repartition", func(b *stream.Builder) {
			s := stream.Process(stream.From(b, "a", str, str), nopSupplier, stream.WithStores(stream.BytesStoreSpec("counts")))
			r := s.Repartition(stream.Named("r"))
			stream.Process(r, nopSupplier, stream.WithStores(stream.BytesStoreSpec("counts")))
		}, []error{stream.ErrStoreConflict}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := stream.NewBuilder()
			tt.build(b)
			topo, err := b.Build()
			if tt.want == nil {
				require.NoError(t, err)
				require.Contains(t, topo.Describe(), "stores: [counts")
				require.Contains(t, topo.Describe(), "  Stores\n    counts (sub-topology 0, changelog: <app-id>-counts-changelog, cleanup: compact)\n")
				return
			}
			for _, w := range tt.want {
				require.ErrorIs(t, err, w)
			}
		})
	}
}
