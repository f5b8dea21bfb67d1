package stream_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/window"
)

// One option type for every step: each step reports at Build the options
// it does not take, naming itself and the option.
func TestOptionNotTaken(t *testing.T) {
	b := stream.NewBuilder()
	s := stream.From(b, "in", str, str, stream.WithStores(stream.BytesStoreSpec("s")))
	s = s.Filter(func(string, string) bool { return true }, stream.Partitions(2), stream.Named("keep"))
	m := stream.MapValues(s, func(v string) string { return v }, stream.WithStores(stream.BytesStoreSpec("s")))
	m.Repartition(window.WithStats(new(window.Stats)))
	stream.Process(m, func() stream.Processor[string, string, string, string] { return nil }, stream.Partitions(1))
	m.To("out", window.EmitOnWindowClose())
	_, err := b.Build()
	require.ErrorIs(t, err, stream.ErrInvalidOption)
	for _, msg := range []string{
		`source "source-0" does not take WithStores; WithStores applies to Process`,
		`filter "keep" does not take Partitions; Partitions applies to Repartition and table.GroupBy`,
		`map-values "map-values-2" does not take WithStores`,
		`repartition "repartition-3" does not take WithStats; WithStats applies to windowed aggregations and joins`,
		`process "process-5" does not take Partitions`,
		`sink "sink-6" does not take EmitOnWindowClose`,
	} {
		require.ErrorContains(t, err, msg)
	}
	errs := err.(interface{ Unwrap() []error }).Unwrap()
	require.Len(t, errs, 6, "%v", err)
}
