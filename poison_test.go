package duality_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
)

// poisonApp produces three records to "in", of which the one at offset 1
// has a value codec.Int64 cannot decode, and returns an app that copies
// "in" to "out" through a source named "src".
func poisonApp(t *testing.T, id string, opts ...duality.Option) (*duality.App, broker.Broker) {
	t.Helper()
	b := openBroker(t)
	createTopic(t, b, "in", 1)
	createTopic(t, b, "out", 1)
	i64 := func(n int64) []byte { v, _ := codec.Int64().Append(nil, n); return v }
	require.NoError(t, b.Produce(t.Context(), []broker.Record{
		{Topic: "in", Partition: 0, Key: []byte("a"), Value: i64(1)},
		{Topic: "in", Partition: 0, Key: []byte("b"), Value: []byte("abc")},
		{Topic: "in", Partition: 0, Key: []byte("c"), Value: i64(3)},
	}))
	sb := stream.NewBuilder()
	stream.From(sb, "in", codec.String(), codec.Int64(), stream.Named("src")).To("out")
	topo, err := sb.Build()
	require.NoError(t, err)
	app, err := duality.New(id, topo, b, opts...)
	require.NoError(t, err)
	return app, b
}

// TestPoisonRecordNamedOnce: a record that cannot be decoded fails the
// app with an error that names the record once (the ProcessingError),
// the step (the NodeError) and the part (the DecodeError).
func TestPoisonRecordNamedOnce(t *testing.T) {
	app, _ := poisonApp(t, "poison")
	err := app.Run(t.Context())
	require.ErrorIs(t, err, codec.ErrInvalid)
	require.EqualError(t, err, `duality: app "poison": task 0_0: processing record in/0 at offset 1: `+
		`step "src": decode value: codec: invalid encoding: int64 needs 8 bytes, got 3`)
	require.Equal(t, 1, strings.Count(err.Error(), "offset"))
	ne, ok := errors.AsType[*stream.NodeError](err)
	require.True(t, ok)
	require.Equal(t, stream.NodeError{Node: "src", Topic: "in", Partition: 0, Offset: 1, Err: ne.Err}, *ne)
	de, ok := errors.AsType[*codec.DecodeError](err)
	require.True(t, ok)
	require.Equal(t, "value", de.Part)
}

// TestPoisonRecordSkipped: SkipOnError gets past a poison record, as the
// docs of ProcessingError say.
func TestPoisonRecordSkipped(t *testing.T) {
	var skipped []int64
	app, b := poisonApp(t, "poison-skip", duality.OnProcessingError(duality.SkipOnError(func(pe *duality.ProcessingError) {
		skipped = append(skipped, pe.Offset) // one worker: no concurrent calls
	})), duality.Workers(1), duality.CommitInterval(time.Millisecond))
	stop, _ := runApp(t, app)
	eventually(t, "3 records handled", func() bool { m := app.Metrics(); return m.RecordsProcessed+m.RecordsSkipped == 3 })
	require.NoError(t, stop())
	require.Equal(t, []int64{1}, skipped)
	var keys []string
	for _, r := range readTopic(t, b, "out") {
		keys = append(keys, string(r.Key))
	}
	require.Equal(t, []string{"a", "c"}, keys)
}
