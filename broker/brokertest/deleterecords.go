package brokertest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
)

var deleteRecordsCases = []testCase{
	{"DeleteRecords/Earliest", testDeleteRecordsEarliest},
	{"DeleteRecords/Idempotent", testDeleteRecordsIdempotent},
	{"DeleteRecords/All", testDeleteRecordsAll},
	{"DeleteRecords/OutOfRange", testDeleteRecordsOutOfRange},
	{"DeleteRecords/Policy", testDeleteRecordsPolicy},
}

// requireOutOfRange asserts err is a *broker.OffsetOutOfRangeError for
// t/partition at off that reports offs.
func requireOutOfRange(t *testing.T, err error, topic string, partition int32, off int64, offs broker.Offsets) {
	t.Helper()
	var oor *broker.OffsetOutOfRangeError
	require.ErrorAs(t, err, &oor, "offset %d", off)
	require.Equal(t, topic, oor.Topic)
	require.Equal(t, partition, oor.Partition)
	require.Equal(t, off, oor.Offset)
	require.Equal(t, offs, oor.Offsets)
	require.False(t, broker.IsRetryable(err))
}

// testDeleteRecordsEarliest deletes up to the middle of a produced batch:
// the earliest offset moves there, fetches below it are out of range,
// fetches from it return the rest intact, OffsetForTime does not return an
// offset below it, and the other partition is untouched.
func testDeleteRecordsEarliest(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	createTopic(t, b, "t", 2)
	ts := time.UnixMilli(1_700_000_000_000)
	var want []broker.Record
	for i := range 3 { // three calls of three records: offsets 0-8
		recs := make([]broker.Record, 3)
		for j := range recs {
			n := 3*i + j
			recs[j] = rec("t", 0, seq("k", 9)[n], seq("v", 9)[n])
			recs[j].Timestamp = ts.Add(time.Duration(n) * time.Second)
		}
		want = append(want, produce(t, b, recs...)...)
	}
	other := produceValues(t, b, "t", 1, seq("w", 4)...)

	require.NoError(t, b.DeleteRecords(ctx, "t", 0, 4))
	offs, err := b.ListOffsets(ctx, "t", 0)
	require.NoError(t, err)
	require.Equal(t, broker.Offsets{Earliest: 4, Latest: 9}, offs)
	for _, off := range []int64{0, 3} {
		_, err := fetch(ctx, b, []broker.FetchRequest{{Topic: "t", Partition: 0, Offset: off}}, broker.FetchOptions{})
		requireOutOfRange(t, err, "t", 0, off, offs)
	}
	got := fetchAll(t, b, "t", 0, 4)
	require.Len(t, got, 5)
	for i, r := range got {
		requireSameRecord(t, want[4+i], r)
	}
	at, err := b.OffsetForTime(ctx, "t", 0, ts)
	require.NoError(t, err)
	require.Equal(t, int64(4), at, "OffsetForTime before the earliest record returns the earliest offset")
	at, err = b.OffsetForTime(ctx, "t", 0, ts.Add(6*time.Second))
	require.NoError(t, err)
	require.Equal(t, int64(6), at)

	offs, err = b.ListOffsets(ctx, "t", 1)
	require.NoError(t, err)
	require.Equal(t, broker.Offsets{Earliest: 0, Latest: 4}, offs, "another partition is untouched")
	require.Equal(t, values(other), values(fetchAll(t, b, "t", 1, 0)))

	// Appends go on at the latest offset.
	more := produceValues(t, b, "t", 0, "x")
	require.Equal(t, int64(9), more[0].Offset)
	require.Equal(t, []string{"v4", "v5", "v6", "v7", "v8", "x"}, values(fetchAll(t, b, "t", 0, 4)))
}

// testDeleteRecordsIdempotent repeats a deletion and asks for one below
// the earliest offset: neither changes anything.
func testDeleteRecordsIdempotent(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	createTopic(t, b, "t", 1)
	produceValues(t, b, "t", 0, seq("v", 6)...)
	for _, before := range []int64{3, 3, 2, 0} {
		require.NoError(t, b.DeleteRecords(ctx, "t", 0, before), "before %d", before)
		offs, err := b.ListOffsets(ctx, "t", 0)
		require.NoError(t, err)
		require.Equal(t, broker.Offsets{Earliest: 3, Latest: 6}, offs, "after DeleteRecords(%d)", before)
	}
	require.Equal(t, []string{"v3", "v4", "v5"}, values(fetchAll(t, b, "t", 0, 3)))
}

// testDeleteRecordsAll deletes everything: the partition is empty at its
// latest offset, which is still valid to fetch and to append at.
func testDeleteRecordsAll(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	createTopic(t, b, "t", 1)
	require.NoError(t, b.DeleteRecords(ctx, "t", 0, 0), "deleting nothing of an empty partition")
	produceValues(t, b, "t", 0, seq("v", 4)...)
	require.NoError(t, b.DeleteRecords(ctx, "t", 0, 4))
	offs, err := b.ListOffsets(ctx, "t", 0)
	require.NoError(t, err)
	require.Equal(t, broker.Offsets{Earliest: 4, Latest: 4}, offs)
	_, err = fetch(ctx, b, []broker.FetchRequest{{Topic: "t", Partition: 0, Offset: 3}}, broker.FetchOptions{})
	requireOutOfRange(t, err, "t", 0, 3, offs)
	got, err := fetch(ctx, b, []broker.FetchRequest{{Topic: "t", Partition: 0, Offset: 4}}, broker.FetchOptions{})
	require.NoError(t, err)
	require.Empty(t, got)
	at, err := b.OffsetForTime(ctx, "t", 0, time.UnixMilli(0))
	require.NoError(t, err)
	require.Equal(t, int64(4), at, "no record left: OffsetForTime gives the latest offset")
	produceValues(t, b, "t", 0, "x")
	require.Equal(t, []string{"x"}, values(fetchAll(t, b, "t", 0, 4)))
}

// testDeleteRecordsOutOfRange asks for deletions beyond the latest offset
// and at a negative one: each fails with *broker.OffsetOutOfRangeError and
// changes nothing. Unknown topics and partitions give the usual errors.
func testDeleteRecordsOutOfRange(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	createTopic(t, b, "t", 2)
	produceValues(t, b, "t", 1, seq("v", 5)...)
	require.NoError(t, b.DeleteRecords(ctx, "t", 1, 2))
	want := broker.Offsets{Earliest: 2, Latest: 5}
	for _, before := range []int64{6, 1000, -1} {
		err := b.DeleteRecords(ctx, "t", 1, before)
		requireOutOfRange(t, err, "t", 1, before, want)
		offs, err := b.ListOffsets(ctx, "t", 1)
		require.NoError(t, err)
		require.Equal(t, want, offs, "a refused DeleteRecords(%d) changes nothing", before)
	}
	requireOutOfRange(t, b.DeleteRecords(ctx, "t", 0, 1), "t", 0, 1, broker.Offsets{})
	require.ErrorIs(t, b.DeleteRecords(ctx, "t", 2, 0), broker.ErrUnknownPartition)
	require.ErrorIs(t, b.DeleteRecords(ctx, "t", -1, 0), broker.ErrUnknownPartition)
	require.ErrorIs(t, b.DeleteRecords(ctx, "nope", 0, 0), broker.ErrUnknownTopic)
}

// testDeleteRecordsPolicy checks the cleanup policies: a compacted topic
// refuses DeleteRecords (as Kafka does), one with "compact,delete" allows
// it.
func testDeleteRecordsPolicy(t *testing.T, b broker.Broker) {
	ctx := t.Context()
	require.NoError(t, b.CreateTopic(ctx, "c", broker.TopicConfig{Partitions: 1, Cleanup: broker.CleanupCompact}))
	produceValues(t, b, "c", 0, seq("v", 3)...)
	require.ErrorIs(t, b.DeleteRecords(ctx, "c", 0, 2), broker.ErrInvalidConfig)
	offs, err := b.ListOffsets(ctx, "c", 0)
	require.NoError(t, err)
	require.Equal(t, broker.Offsets{Earliest: 0, Latest: 3}, offs)

	require.NoError(t, b.CreateTopic(ctx, "cd", broker.TopicConfig{Partitions: 1, Cleanup: broker.CleanupCompactDelete}))
	produceValues(t, b, "cd", 0, seq("v", 3)...)
	require.NoError(t, b.DeleteRecords(ctx, "cd", 0, 2))
	require.Equal(t, []string{"v2"}, values(fetchAll(t, b, "cd", 0, 2)))
}
