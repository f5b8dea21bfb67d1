package runtime

import (
	"fmt"
	"log/slog"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
)

// recordingConsumer records the calls a reader makes on a real consumer.
type recordingConsumer struct {
	broker.Consumer
	calls []string
}

func (c *recordingConsumer) Assign(positions map[broker.TopicPartition]int64) {
	for tp, off := range positions {
		c.calls = append(c.calls, fmt.Sprintf("assign %d@%d", tp.Partition, off))
	}
	c.Consumer.Assign(positions)
}

func (c *recordingConsumer) Unassign(tps ...broker.TopicPartition) {
	for _, tp := range tps {
		c.calls = append(c.calls, fmt.Sprintf("unassign %d", tp.Partition))
	}
	c.Consumer.Unassign(tps...)
}

func (c *recordingConsumer) Pause(tps ...broker.TopicPartition) {
	for _, tp := range tps {
		c.calls = append(c.calls, fmt.Sprintf("pause %d", tp.Partition))
	}
	c.Consumer.Pause(tps...)
}

func (c *recordingConsumer) Resume(tps ...broker.TopicPartition) {
	for _, tp := range tps {
		c.calls = append(c.calls, fmt.Sprintf("resume %d", tp.Partition))
	}
	c.Consumer.Resume(tps...)
}

// TestReaderTellsOnlyChanges checks that a reader seeks only when asked
// for an offset other than where its records and ends left a partition,
// and pauses and resumes partitions rather than reassigning them.
func TestReaderTellsOnlyChanges(t *testing.T) {
	b, err := embedded.Open("/b", embedded.WithFS(vfs.NewMem()), embedded.WithCleanupInterval(-1))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	ctx := t.Context()
	require.NoError(t, b.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: 2}))
	var recs []broker.Record
	for i := range 6 {
		recs = append(recs, broker.Record{Topic: "t", Partition: int32(i % 2), Value: fmt.Append(nil, i)})
	}
	require.NoError(t, b.Produce(ctx, recs))
	c, err := b.NewConsumer(broker.ConsumerOptions{})
	require.NoError(t, err)
	rc := &recordingConsumer{Consumer: c}
	r := &reader{c: rc, parts: map[broker.TopicPartition]*readPart{}, assign: map[broker.TopicPartition]int64{}}
	defer r.close()
	req := func(p int32, off int64) broker.FetchRequest {
		return broker.FetchRequest{Topic: "t", Partition: p, Offset: off}
	}
	fetch := func(reqs ...broker.FetchRequest) (broker.Polled, []string) {
		t.Helper()
		rc.calls = nil
		polled, err := r.fetch(ctx, reqs, 0)
		require.NoError(t, err)
		return polled, rc.calls
	}

	polled, calls := fetch(req(0, 0), req(1, 1))
	require.ElementsMatch(t, []string{"assign 0@0", "assign 1@1"}, calls)
	require.Len(t, polled.Records, 5)
	require.Equal(t, map[broker.TopicPartition]int64{{Topic: "t", Partition: 0}: 3, {Topic: "t", Partition: 1}: 3}, polled.Ends)

	// At the positions the records left: nothing to tell.
	_, calls = fetch(req(0, 3), req(1, 3))
	require.Empty(t, calls)
	// A partition not asked for is paused, and resumed when asked again.
	_, calls = fetch(req(0, 3))
	require.Equal(t, []string{"pause 1"}, calls)
	_, calls = fetch(req(0, 3), req(1, 3))
	require.Equal(t, []string{"resume 1"}, calls)
	// Another offset is a seek.
	polled, calls = fetch(req(0, 1), req(1, 3))
	require.Equal(t, []string{"assign 0@1"}, calls)
	require.Len(t, polled.Records, 2)
	require.EqualValues(t, 1, polled.Records[0].Offset)

	rc.calls = nil
	r.release()
	require.ElementsMatch(t, []string{"unassign 0", "unassign 1"}, rc.calls)
	polled, calls = fetch(req(1, 0))
	require.Equal(t, []string{"assign 1@0"}, calls, "after a release every partition is assigned afresh")
	require.Len(t, polled.Records, 3)

	// Retries go through fetchRetrying's backoff; a bad offset is an
	// error at once.
	_, err = r.fetchRetrying(ctx, []broker.FetchRequest{req(1, 9)}, 0, slog.New(slog.DiscardHandler), "retry")
	var oor *broker.OffsetOutOfRangeError
	require.ErrorAs(t, err, &oor)
}
