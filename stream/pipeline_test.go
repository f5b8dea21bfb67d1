package stream_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
)

func TestFilterMapValuesTo(t *testing.T) {
	b := stream.NewBuilder()
	s := stream.From(b, "in", codec.String(), codec.String())
	up := stream.MapValues(s.Filter(func(_, v string) bool { return v != "" }), strings.ToUpper)
	up.To("out", codec.String(), codec.String())
	topo, err := b.Build()
	require.NoError(t, err)

	d, err := streamtest.New(topo)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, d.Close()) })
	in := streamtest.Input(d, "in", codec.String(), codec.String())
	out := streamtest.Output(d, "out", codec.String(), codec.String())
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	require.NoError(t, in.PipeAt(t.Context(), "a", "hello", ts))
	require.NoError(t, in.Pipe(t.Context(), "b", ""))
	require.NoError(t, in.Pipe(t.Context(), "c", "world"))
	recs, err := out.ReadAll()
	require.NoError(t, err)
	require.Len(t, recs, 2)
	require.Equal(t, "HELLO", recs[0].Value)
	require.Equal(t, ts, recs[0].Timestamp)
	require.Equal(t, "c", recs[1].Key)
	t.Log(topo.Describe())
}
