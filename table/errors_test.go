package table_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
)

func TestBuildErrors(t *testing.T) {
	sum := func(a, v int64) int64 { return a + v }
	tests := []struct {
		name  string
		build func(b *stream.Builder)
		want  []error
		msg   string
	}{
		{
			name: "two aggregations with one store",
			build: func(b *stream.Builder) {
				g := stream.GroupByKey(stream.From(b, "in", str, i64))
				table.Count(g, "s")
				table.Reduce(g, sum, "s")
			},
			want: []error{stream.ErrStoreConflict},
			msg:  `store "s" is already used by step "count-`,
		},
		{
			name: "a store of a Process step",
			build: func(b *stream.Builder) {
				s := stream.From(b, "in", str, i64)
				stream.Process(s, func() stream.Processor[string, int64, string, int64] { return nil }, stream.WithStores(stream.BytesStoreSpec("s")))
				table.Count(stream.GroupByKey(s), "s")
			},
			want: []error{stream.ErrStoreConflict},
		},
		{
			name: "invalid store names",
			build: func(b *stream.Builder) {
				g := stream.GroupByKey(stream.From(b, "in", str, i64))
				table.Count(g, "")
				table.Count(g, "no spaces")
			},
			want: []error{stream.ErrInvalidOption},
			msg:  `store name "no spaces"`,
		},
		{
			name: "nil functions",
			build: func(b *stream.Builder) {
				g := stream.GroupByKey(stream.From(b, "in", str, i64))
				table.Reduce(g, nil, "r")
				table.Aggregate(g, nil, func(string, int64, int64) int64 { return 0 }, "a1")
				table.Aggregate(g, func() int64 { return 0 }, nil, "a2")
				stream.GroupBy(stream.From(b, "in2", str, i64), (func(string, int64) string)(nil))
			},
			want: []error{stream.ErrNilFunc},
			msg:  `reduce "reduce-`,
		},
		{
			name: "nil codecs",
			build: func(b *stream.Builder) {
				s := stream.From(b, "in", str, i64)
				table.Count(stream.GroupByKey(s, stream.WithKeyCodec[string](nil)), "c1")
				table.Reduce(stream.GroupByKey(s, stream.WithValueCodec[int64](nil)), sum, "c2")
				table.Aggregate(stream.GroupByKey(s), func() int64 { return 0 },
					func(string, int64, int64) int64 { return 0 }, "c3", stream.WithValueCodec[int64](nil))
				table.Count(stream.GroupBy(s, func(k string, _ int64) string { return k }, stream.WithKeyCodec[string](nil)), "c4")
			},
			want: []error{stream.ErrNilCodec},
			msg:  "aggregate codec",
		},
		{
			name: "zero Grouped is ignored, no panic",
			build: func(b *stream.Builder) {
				stream.From(b, "in", str, i64).To("out")
				table.Count(stream.Grouped[string, int64]{}, "c").ToStream().To("x")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := stream.NewBuilder()
			tt.build(b)
			_, err := b.Build()
			if len(tt.want) == 0 {
				require.NoError(t, err)
				return
			}
			for _, w := range tt.want {
				require.ErrorIs(t, err, w)
			}
			require.Contains(t, err.Error(), tt.msg)
		})
	}
}
