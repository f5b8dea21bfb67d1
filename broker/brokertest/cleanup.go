package brokertest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
)

// Cleaner is implemented by brokers that can run their retention and
// compaction on demand (the embedded broker's Cleanup). The cleanup cases
// of Run check what cleanup leaves behind only for such brokers; for the
// others they check the topic configuration alone.
type Cleaner interface {
	Cleanup(ctx context.Context) error
}

var cleanupCases = []testCase{
	{"Cleanup/CompactDelete", testCompactDelete},
}

// testCompactDelete checks broker.CleanupCompactDelete: the configuration
// round-trips, and cleanup both deletes whole data older than RetentionTime
// (even the newest record of a key) and compacts what remains.
func testCompactDelete(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	cfg := broker.TopicConfig{Partitions: 1, Cleanup: broker.CleanupCompactDelete, RetentionTime: time.Hour}
	require.NoError(t, b.CreateTopic(ctx, "cd", cfg))
	info, err := b.DescribeTopic(ctx, "cd")
	require.NoError(t, err)
	require.Equal(t, broker.CleanupCompactDelete, info.Config.Cleanup)
	require.Equal(t, "compact,delete", info.Config.Cleanup.String())
	require.Equal(t, time.Hour, info.Config.RetentionTime)
	require.Equal(t, broker.DefaultDeleteRetention, info.Config.DeleteRetention)

	now := time.Now()
	at := func(r broker.Record, ts time.Time) broker.Record {
		r.Timestamp = ts.Truncate(time.Millisecond)
		return r
	}
	old := now.Add(-2 * time.Hour)
	// Offsets 0-1: expired by retention; "gone" has no newer record.
	produce(t, b, at(rec("cd", 0, "gone", "g0"), old), at(rec("cd", 0, "a", "a0"), old))
	// Offsets 2-4: recent; a1 is replaced by a2, b0 survives, tomb is a
	// recent tombstone (kept until DeleteRetention).
	tomb := at(rec("cd", 0, "tomb", ""), now)
	tomb.Value = nil
	produce(t, b, at(rec("cd", 0, "a", "a1"), now), at(rec("cd", 0, "b", "b0"), now), tomb)
	produce(t, b, at(rec("cd", 0, "a", "a2"), now))

	c, ok := b.(Cleaner)
	if !ok {
		return
	}
	require.NoError(t, c.Cleanup(ctx))
	offs, err := b.ListOffsets(ctx, "cd", 0)
	require.NoError(t, err)
	require.Equal(t, broker.Offsets{Earliest: 3, Latest: 6}, offs, "retention dropped offsets 0-1, compaction offset 2")
	got, err := fetch(ctx, b, []broker.FetchRequest{{Topic: "cd", Partition: 0, Offset: offs.Earliest}}, broker.FetchOptions{})
	require.NoError(t, err)
	var keys, vals []string
	var offsets []int64
	for _, r := range got {
		keys = append(keys, string(r.Key))
		vals = append(vals, string(r.Value))
		offsets = append(offsets, r.Offset)
	}
	require.Equal(t, []string{"b", "tomb", "a"}, keys)
	require.Equal(t, []string{"b0", "", "a2"}, vals)
	require.Equal(t, []int64{3, 4, 5}, offsets)
	require.Nil(t, got[1].Value, "a recent tombstone survives")
}
