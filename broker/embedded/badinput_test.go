package embedded_test

import (
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
)

// badNames are topic names Kafka refuses, many of them dangerous as paths.
var badNames = []string{
	"", ".", "..", "../evil", "../../evil", "a/evil", "evil/", "/tmp/evil", `..\evil`, `C:\evil`,
	"evil\x00", "evil\n", "evil name", "évil", "evil*", "~evil", strings.Repeat("e", broker.MaxTopicNameLen+1),
}

// TestBadTopicNames checks that every call taking a topic name refuses
// invalid names with ErrInvalidTopicName and that none of them reaches the
// file system: every file operation during the calls stays inside the data
// directory and no path mentions the name.
func TestBadTopicNames(t *testing.T) {
	ctx := t.Context()
	root := t.TempDir()
	dir := filepath.Join(root, "data")
	var watch struct {
		sync.Mutex
		on    bool
		paths []string
	}
	fs := errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op) error {
		watch.Lock()
		defer watch.Unlock()
		if watch.on {
			watch.paths = append(watch.paths, op.Path)
		}
		return nil
	}))
	b, err := embedded.Open(dir, embedded.WithFS(fs), embedded.WithCleanupInterval(-1))
	require.NoError(t, err)
	defer func() { require.NoError(t, b.Close()) }()
	require.NoError(t, b.CreateTopic(ctx, "ok", broker.TopicConfig{Partitions: 1}))
	m, err := b.JoinGroup(ctx, "g", []string{"ok"}, broker.JoinOptions{})
	require.NoError(t, err)
	var a broker.Assignment
	select {
	case a = <-m.Assignments():
	case <-time.After(20 * time.Second):
		require.FailNow(t, "no assignment")
	}

	watch.Lock()
	watch.on = true
	watch.Unlock()
	for _, name := range badNames {
		t.Run(name, func(t *testing.T) {
			is := func(err error, call string) {
				t.Helper()
				require.ErrorIs(t, err, broker.ErrInvalidTopicName, call)
				require.NotErrorIs(t, err, broker.ErrUnknownTopic, call)
			}
			is(b.CreateTopic(ctx, name, broker.TopicConfig{Partitions: 1}), "CreateTopic")
			is(b.DeleteTopic(ctx, name), "DeleteTopic")
			_, err := b.DescribeTopic(ctx, name)
			is(err, "DescribeTopic")
			is(b.Produce(ctx, []broker.Record{{Topic: "ok", Value: []byte("v")}, {Topic: name, Value: []byte("v")}}), "Produce")
			_, err = b.Fetch(ctx, []broker.FetchRequest{{Topic: "ok"}, {Topic: name}}, broker.FetchOptions{})
			is(err, "Fetch")
			_, err = b.ListOffsets(ctx, name, 0)
			is(err, "ListOffsets")
			_, err = b.OffsetForTime(ctx, name, 0, time.Now())
			is(err, "OffsetForTime")
			is(b.CommitOffsets(ctx, "g", map[broker.TopicPartition]int64{{Topic: name}: 1}), "CommitOffsets")
			_, err = b.FetchOffsets(ctx, "g", []broker.TopicPartition{{Topic: name}})
			is(err, "FetchOffsets")
			_, err = b.JoinGroup(ctx, "g2", []string{name}, broker.JoinOptions{})
			is(err, "JoinGroup")
			is(b.Commit(ctx, broker.CommitRequest{Records: []broker.Record{{Topic: name, Value: []byte("v")}}}), "Commit records")
			is(b.Commit(ctx, broker.CommitRequest{Group: "g", Generation: a.Generation, MemberID: m.MemberID(),
				Offsets: map[broker.TopicPartition]int64{{Topic: name}: 1}}), "Commit offsets")
		})
	}
	watch.Lock()
	watch.on = false
	paths := watch.paths
	watch.Unlock()
	for _, p := range paths {
		rel, err := filepath.Rel(dir, p)
		require.NoError(t, err)
		require.False(t, strings.HasPrefix(rel, ".."), "file operation outside the data directory: %s", p)
		require.NotContains(t, p, "evil", "a topic name reached the file system: %s", p)
	}
	entries, err := os.ReadDir(root)
	require.NoError(t, err)
	require.Len(t, entries, 1, "nothing was created next to the data directory")

	// Nothing was written: the valid topic is empty, no other topic exists.
	offs, err := b.ListOffsets(ctx, "ok", 0)
	require.NoError(t, err)
	require.Equal(t, broker.Offsets{}, offs)
	topics, err := b.ListTopics(ctx)
	require.NoError(t, err)
	require.Len(t, topics, 1)
	got, err := b.FetchOffsets(ctx, "g", []broker.TopicPartition{{Topic: "ok"}})
	require.NoError(t, err)
	require.Empty(t, got)

	// Unusual but valid names are keys, not paths: they work and create no file.
	for _, name := range []string{"...", ".hidden", "a..b", "-", "_", strings.Repeat("z", broker.MaxTopicNameLen)} {
		require.NoError(t, b.CreateTopic(ctx, name, broker.TopicConfig{Partitions: 1}), name)
		require.NoError(t, b.Produce(ctx, []broker.Record{{Topic: name, Value: []byte("v")}}), name)
	}
	_, err = os.Stat(filepath.Join(root, "..."))
	require.ErrorIs(t, err, os.ErrNotExist)
}

// TestBadUnknownTopicsAndPartitions checks the errors of calls naming a
// topic that does not exist or a partition outside a topic, including on the
// group calls the conformance suite leaves to each backend.
func TestBadUnknownTopicsAndPartitions(t *testing.T) {
	ctx := t.Context()
	b := openForTest(t)
	require.NoError(t, b.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: 2}))

	err := b.CommitOffsets(ctx, "g", map[broker.TopicPartition]int64{{Topic: "nope"}: 1})
	require.ErrorIs(t, err, broker.ErrUnknownTopic)
	_, err = b.FetchOffsets(ctx, "g", []broker.TopicPartition{{Topic: "nope"}})
	require.ErrorIs(t, err, broker.ErrUnknownTopic)
	_, err = b.JoinGroup(ctx, "g", []string{"t", "nope"}, broker.JoinOptions{})
	require.ErrorIs(t, err, broker.ErrUnknownTopic)

	for _, p := range []int32{2, -1, -2, math.MaxInt32, math.MinInt32} {
		err := b.CommitOffsets(ctx, "g", map[broker.TopicPartition]int64{{Topic: "t", Partition: p}: 1})
		require.ErrorIs(t, err, broker.ErrUnknownPartition, "partition %d", p)
		_, err = b.FetchOffsets(ctx, "g", []broker.TopicPartition{{Topic: "t", Partition: p}})
		require.ErrorIs(t, err, broker.ErrUnknownPartition, "partition %d", p)
		_, err = b.ListOffsets(ctx, "t", p)
		require.ErrorIs(t, err, broker.ErrUnknownPartition, "partition %d", p)
		_, err = b.Fetch(ctx, []broker.FetchRequest{{Topic: "t", Partition: p}}, broker.FetchOptions{})
		require.ErrorIs(t, err, broker.ErrUnknownPartition, "partition %d", p)
	}
	// -1 is PartitionByKey for records, never for fetches and offsets.
	require.NoError(t, b.Produce(ctx, []broker.Record{{Topic: "t", Partition: broker.PartitionByKey, Key: []byte("k")}}))

	// A topic deleted while a fetch waits on it ends the fetch with ErrUnknownTopic.
	started, res := make(chan struct{}), make(chan error, 1)
	go func() {
		close(started)
		_, err := b.Fetch(ctx, []broker.FetchRequest{{Topic: "t", Partition: 1}}, broker.FetchOptions{MaxWait: time.Minute})
		res <- err
	}()
	<-started
	require.NoError(t, b.DeleteTopic(ctx, "t"))
	select {
	case err := <-res:
		require.ErrorIs(t, err, broker.ErrUnknownTopic)
	case <-time.After(20 * time.Second):
		require.FailNow(t, "a fetch on a deleted topic did not return")
	}
}

// TestBadPartitionCounts checks CreateTopic's refusal of partition counts
// below 1 or above embedded.MaxPartitions and of invalid settings, all
// reported at once.
func TestBadPartitionCounts(t *testing.T) {
	ctx := t.Context()
	b := openForTest(t)
	for _, n := range []int32{0, -1, math.MinInt32} {
		err := b.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: n})
		require.ErrorIs(t, err, broker.ErrInvalidPartitions, "partitions %d", n)
		var te *broker.TopicError
		require.ErrorAs(t, err, &te)
		require.Equal(t, "t", te.Topic)
	}
	// Several problems at once: all reported.
	err := b.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: 0, Cleanup: broker.CleanupPolicy(7), DeleteRetention: -time.Second})
	require.ErrorIs(t, err, broker.ErrInvalidPartitions)
	require.ErrorIs(t, err, broker.ErrInvalidConfig)
	require.Contains(t, err.Error(), "cleanup policy")
	require.Contains(t, err.Error(), "delete retention")
	topics, err := b.ListTopics(ctx)
	require.NoError(t, err)
	require.Empty(t, topics)

	// Partition counts are bounded (each partition is stored state): above
	// MaxPartitions is refused at once, MaxPartitions itself works.
	for _, n := range []int32{embedded.MaxPartitions + 1, math.MaxInt32} {
		start := time.Now()
		err = b.CreateTopic(ctx, "huge", broker.TopicConfig{Partitions: n})
		require.ErrorIs(t, err, broker.ErrInvalidPartitions, "partitions %d", n)
		require.Less(t, time.Since(start), time.Second, "refused at once")
	}
	start := time.Now()
	require.NoError(t, b.CreateTopic(ctx, "max", broker.TopicConfig{Partitions: embedded.MaxPartitions}))
	t.Logf("CreateTopic with %d partitions took %v", embedded.MaxPartitions, time.Since(start))
	require.NoError(t, b.Produce(ctx, []broker.Record{{Topic: "max", Partition: embedded.MaxPartitions - 1, Value: []byte("v")}}))
	_, err = b.ListOffsets(ctx, "max", embedded.MaxPartitions)
	require.ErrorIs(t, err, broker.ErrUnknownPartition)
	require.NoError(t, b.CreateTopic(ctx, "after", broker.TopicConfig{Partitions: 1}), "the broker still works")
}

// TestBadRecordTooLarge checks the record size limit: a call with one
// oversized record fails whole with *broker.RecordTooLargeError and writes
// nothing, for Produce and Commit alike.
func TestBadRecordTooLarge(t *testing.T) {
	ctx := t.Context()
	const max = 100
	b := openForTest(t, embedded.WithMaxRecordBytes(max))
	require.NoError(t, b.CreateTopic(ctx, "t", broker.TopicConfig{Partitions: 2}))
	require.NoError(t, b.CreateTopic(ctx, "in", broker.TopicConfig{Partitions: 1}))
	small := broker.Record{Topic: "t", Partition: 0, Key: []byte("k"), Value: []byte("small")}

	// Exactly at the limit: key + value + header key + header value.
	at := broker.Record{Topic: "t", Partition: 1, Key: make([]byte, 10), Value: make([]byte, 80),
		Headers: []broker.Header{{Key: "hk", Value: make([]byte, 8)}}}
	require.NoError(t, b.Produce(ctx, []broker.Record{at}))

	for name, big := range map[string]broker.Record{
		"value":        {Topic: "t", Partition: 1, Value: make([]byte, max+1)},
		"key":          {Topic: "t", Partition: 1, Key: make([]byte, max+1)},
		"key+value":    {Topic: "t", Partition: 1, Key: make([]byte, 50), Value: make([]byte, 51)},
		"header":       {Topic: "t", Partition: 1, Value: []byte("v"), Headers: []broker.Header{{Key: "h", Value: make([]byte, max)}}},
		"header key":   {Topic: "t", Partition: 1, Headers: []broker.Header{{Key: strings.Repeat("h", max+1)}}},
		"many headers": {Topic: "t", Partition: 1, Headers: []broker.Header{{Key: "a", Value: make([]byte, 50)}, {Key: "b", Value: make([]byte, 50)}}},
		"way over":     {Topic: "t", Partition: broker.PartitionByKey, Key: []byte("k"), Value: make([]byte, 10<<20)},
	} {
		t.Run(name, func(t *testing.T) {
			for call, err := range map[string]error{
				"Produce": b.Produce(ctx, []broker.Record{small, big}),
				"Commit": b.Commit(ctx, broker.CommitRequest{Records: []broker.Record{small, big}, Group: "g",
					Offsets: map[broker.TopicPartition]int64{{Topic: "in"}: 1}}),
			} {
				require.ErrorIs(t, err, broker.ErrRecordTooLarge, call)
				var tooLarge *broker.RecordTooLargeError
				require.ErrorAs(t, err, &tooLarge, call)
				require.Equal(t, "t", tooLarge.Topic, call)
				require.Equal(t, max, tooLarge.Max, call)
				require.Greater(t, tooLarge.Size, max, call)
				require.False(t, broker.IsRetryable(err), call)
			}
			for p := range int32(2) {
				offs, err := b.ListOffsets(ctx, "t", p)
				require.NoError(t, err)
				require.Equal(t, int64(p), offs.Latest, "partition %d: nothing of a refused call is written", p)
			}
			got, err := b.FetchOffsets(ctx, "g", []broker.TopicPartition{{Topic: "in"}})
			require.NoError(t, err)
			require.Empty(t, got, "a refused Commit stores no offsets")
		})
	}
}

// TestBadOptions checks that Open reports every invalid option at once with
// ErrInvalidConfig, and refuses an empty or unusable directory.
func TestBadOptions(t *testing.T) {
	dir := t.TempDir()
	_, err := embedded.Open(dir,
		embedded.WithSyncInterval(-time.Second),
		embedded.WithMaxRecordBytes(-1),
		embedded.WithFS(nil),
		embedded.WithClock(nil),
		embedded.WithLogger(nil),
		embedded.WithPebbleOptions(nil),
	)
	require.ErrorIs(t, err, broker.ErrInvalidConfig)
	for _, want := range []string{"sync interval", "max record bytes", "file system", "clock", "logger", "pebble options"} {
		require.Contains(t, err.Error(), want)
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, entries, "a refused Open touches nothing")

	_, err = embedded.Open(dir, embedded.WithMaxRecordBytes(0))
	require.ErrorIs(t, err, broker.ErrInvalidConfig)
	_, err = embedded.Open("")
	require.ErrorIs(t, err, broker.ErrInvalidConfig)

	// A regular file where the directory should be.
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, []byte("x"), 0o644))
	_, err = embedded.Open(file)
	require.Error(t, err)
	require.Contains(t, err.Error(), file)

	// A Pebble option that breaks Pebble is reported by Open, not a panic.
	_, err = embedded.Open(t.TempDir(), embedded.WithPebbleOptions(func(o *pebble.Options) {
		o.FormatMajorVersion = pebble.FormatMajorVersion(1 << 20)
	}))
	require.Error(t, err)
}

// TestBadLocked checks the data directory lock: a second Open in this
// process and one in another process fail with ErrLocked naming the
// directory, and the directory opens again once closed.
func TestBadLocked(t *testing.T) {
	dir := t.TempDir()
	b, err := embedded.Open(dir, embedded.WithCleanupInterval(-1))
	require.NoError(t, err)
	_, err = embedded.Open(dir)
	require.ErrorIs(t, err, embedded.ErrLocked)
	require.Contains(t, err.Error(), dir)

	// Another process.
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"=lock false 0 "+dir)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "locked", "the other process reports ErrLocked")

	// The refused opens did not disturb the open broker.
	require.NoError(t, b.CreateTopic(t.Context(), "t", broker.TopicConfig{Partitions: 1}))
	require.NoError(t, b.Close())
	b, err = embedded.Open(dir, embedded.WithCleanupInterval(-1))
	require.NoError(t, err, "the lock is released by Close")
	_, err = b.DescribeTopic(t.Context(), "t")
	require.NoError(t, err)
	require.NoError(t, b.Close())
}

// openForTest opens a broker in a fresh temporary directory with background
// cleanup off and closes it when the test ends.
func openForTest(t *testing.T, opts ...embedded.Option) *embedded.Broker {
	t.Helper()
	b, err := embedded.Open(t.TempDir(), append([]embedded.Option{embedded.WithCleanupInterval(-1)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() {
		if err := b.Close(); err != nil && !errors.Is(err, broker.ErrClosed) {
			t.Errorf("close: %v", err)
		}
	})
	return b
}

// TestBadGroupCalls checks the refusal of malformed group calls: empty
// group names, no topics, members subscribing to different topics, negative
// offsets, offsets without a group. Each is ErrInvalidConfig and changes
// nothing.
func TestBadGroupCalls(t *testing.T) {
	ctx := t.Context()
	b := openForTest(t)
	require.NoError(t, b.CreateTopic(ctx, "a", broker.TopicConfig{Partitions: 2}))
	require.NoError(t, b.CreateTopic(ctx, "b", broker.TopicConfig{Partitions: 2}))
	m, err := b.JoinGroup(ctx, "g", []string{"a"}, broker.JoinOptions{})
	require.NoError(t, err)
	tp := broker.TopicPartition{Topic: "a"}

	_, err = b.JoinGroup(ctx, "", []string{"a"}, broker.JoinOptions{})
	require.ErrorIs(t, err, broker.ErrInvalidConfig, "empty group")
	_, err = b.JoinGroup(ctx, "g2", nil, broker.JoinOptions{})
	require.ErrorIs(t, err, broker.ErrInvalidConfig, "no topics")
	_, err = b.JoinGroup(ctx, "g", []string{"b"}, broker.JoinOptions{})
	require.ErrorIs(t, err, broker.ErrInvalidConfig, "a member subscribing to other topics than the group's")
	require.ErrorIs(t, b.CommitOffsets(ctx, "", map[broker.TopicPartition]int64{tp: 1}), broker.ErrInvalidConfig, "empty group")
	require.ErrorIs(t, b.CommitOffsets(ctx, "g", map[broker.TopicPartition]int64{tp: -5}), broker.ErrInvalidConfig, "negative offset")
	err = b.Commit(ctx, broker.CommitRequest{Records: []broker.Record{{Topic: "a", Value: []byte("v")}},
		Offsets: map[broker.TopicPartition]int64{tp: 1}})
	require.ErrorIs(t, err, broker.ErrInvalidConfig, "offsets without a group")

	// Nothing was stored, and the group is as it was.
	offs, err := b.ListOffsets(ctx, "a", 0)
	require.NoError(t, err)
	require.Equal(t, broker.Offsets{}, offs)
	got, err := b.FetchOffsets(ctx, "g", []broker.TopicPartition{tp})
	require.NoError(t, err)
	require.Empty(t, got)
	select {
	case a := <-m.Assignments():
		require.Len(t, a.Partitions, 2, "the member keeps both partitions")
	case <-time.After(20 * time.Second):
		require.FailNow(t, "no assignment")
	}

	// Odd fetch options are not an error and never a panic.
	got2, err := b.Fetch(ctx, []broker.FetchRequest{{Topic: "a"}}, broker.FetchOptions{MaxWait: -time.Second, MaxRecords: -1, MaxBytes: -1})
	require.NoError(t, err)
	require.Empty(t, got2)
	got2, err = b.Fetch(ctx, nil, broker.FetchOptions{})
	require.NoError(t, err)
	require.Empty(t, got2)
}
