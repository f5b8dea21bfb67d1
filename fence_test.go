package duality_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/internal/topology"
)

// syncBuffer is a bytes.Buffer safe for concurrent writes by a slog handler.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestFencedCommitDropsWork makes a worker commit in a stale generation: its
// processor blocks on a record while another member joins the group, then
// outputs two records so that the commit right after it (MaxUncommitted 1)
// carries the old generation. The broker refuses it with ErrFenced; the
// worker drops the work and the output still ends up exactly once.
func TestFencedCommitDropsWork(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "in", 2)
	createTopic(t, b, "out", 2)
	createTopic(t, b, "out2", 2)
	const n = 400
	produceN(t, b, "in", 0, n)

	blocked, release := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	count := 0
	process := func(ctx context.Context, env topology.TaskEnv, rec *broker.Record) error {
		mu.Lock()
		count++
		c := count
		mu.Unlock()
		if c == 50 {
			close(blocked)
			<-release
		}
		if err := prefixTo("out")(ctx, env, rec); err != nil {
			return err
		}
		return prefixTo("out2")(ctx, env, rec)
	}
	var logs syncBuffer
	app, err := duality.New("fence", mapTopology(t, []string{"in"}, "out", process), b,
		duality.Workers(1), duality.MaxUncommittedRecords(1), duality.CommitInterval(time.Hour),
		duality.Logger(slog.New(slog.NewTextHandler(&logs, nil))))
	require.NoError(t, err)
	stop, _ := runApp(t, app)

	<-blocked
	other, err := b.JoinGroup(t.Context(), "fence", []string{"in"}, broker.JoinOptions{})
	require.NoError(t, err)
	asg := <-other.Assignments()
	require.Len(t, asg.Partitions, 1, "the other member owns one partition")
	close(release)

	// The app processes its own partition; the other member never
	// processes anything. When it leaves, the app takes over.
	eventually(t, "the app sees the fence and the new assignment", func() bool {
		return app.Metrics().Assignments >= 2 && app.Metrics().Tasks == 1
	})
	require.NoError(t, other.Leave(t.Context()))
	awaitRecords(t, b, "out", n)
	awaitRecords(t, b, "out2", n)
	require.NoError(t, stop())
	require.Contains(t, logs.String(), "commit fenced by a newer generation")
	requireExactlyOnce(t, b, "out", n)
	counts := map[string]int{}
	for _, r := range readTopic(t, b, "out2") {
		counts[string(r.Value)]++
	}
	require.Len(t, counts, n)
	for v, c := range counts {
		require.Equal(t, 1, c, v)
	}
}

// TestOffsetOutOfRangeResetsToEarliest commits a group offset, lets
// retention delete the data it points to, and checks that the app resets to
// the earliest remaining offset with a warning.
func TestOffsetOutOfRangeResetsToEarliest(t *testing.T) {
	b := openBroker(t)
	require.NoError(t, b.CreateTopic(t.Context(), "in", broker.TopicConfig{Partitions: 1, RetentionTime: time.Hour}))
	createTopic(t, b, "out", 1)
	old := time.Now().Add(-2 * time.Hour)
	var recs []broker.Record
	for i := range 10 {
		recs = append(recs, broker.Record{Topic: "in", Key: fmt.Appendf(nil, "old%d", i), Value: []byte("old"), Timestamp: old})
	}
	require.NoError(t, b.Produce(t.Context(), recs)) // offsets 0..9, expired
	produceN(t, b, "in", 0, 20)                      // offsets 10..29
	tp := broker.TopicPartition{Topic: "in", Partition: 0}
	require.NoError(t, b.CommitOffsets(t.Context(), "reset", map[broker.TopicPartition]int64{tp: 3}))
	require.NoError(t, b.Cleanup(t.Context()))
	offs, err := b.ListOffsets(t.Context(), "in", 0)
	require.NoError(t, err)
	require.EqualValues(t, 10, offs.Earliest, "retention removed the old batch")

	var logs syncBuffer
	fn, done := counting(20, prefixTo("out"))
	app, err := duality.New("reset", mapTopology(t, []string{"in"}, "out", fn), b,
		duality.Logger(slog.New(slog.NewTextHandler(&logs, nil))))
	require.NoError(t, err)
	stop, _ := runApp(t, app)
	<-done
	require.NoError(t, stop())
	requireExactlyOnce(t, b, "out", 20)
	require.Contains(t, logs.String(), `level=WARN msg="offset out of range, resetting to the earliest offset" app=reset task=0_0 topic=in partition=0 offset=3 earliest=10`)
	committed, err := b.FetchOffsets(t.Context(), "reset", []broker.TopicPartition{tp})
	require.NoError(t, err)
	require.EqualValues(t, 30, committed[tp])
}

// TestTaskEnv checks what processors get from the runtime: app id, task
// id, topic names, the injected clock and a logger with the task attribute.
func TestTaskEnv(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "in", 2)
	createTopic(t, b, "out", 1)
	produceN(t, b, "in", 0, 10)
	fixed := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var logs syncBuffer
	fn, done := counting(10, func(ctx context.Context, env topology.TaskEnv, rec *broker.Record) error {
		env.Logger().Info("processing", slog.Int64("offset", rec.Offset))
		return env.Send(ctx, broker.Record{
			Topic: env.TopicName("out", false), Partition: 0, Timestamp: env.Now(),
			Key:   []byte(env.TopicName("x", true)),
			Value: fmt.Appendf(nil, "%s %v", env.AppID(), env.TaskID()),
		})
	})
	app, err := duality.New("envs", mapTopology(t, []string{"in"}, "out", fn), b,
		duality.Clock(func() time.Time { return fixed }),
		duality.Logger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	require.NoError(t, err)
	stop, _ := runApp(t, app)
	<-done
	require.NoError(t, stop())
	values := map[string]int{}
	for _, r := range readTopic(t, b, "out") {
		require.Equal(t, "envs-x", string(r.Key))
		require.True(t, fixed.Equal(r.Timestamp), "timestamp %v", r.Timestamp)
		values[string(r.Value)]++
	}
	require.Len(t, values, 2)
	require.Equal(t, 10, values["envs 0_0"]+values["envs 0_1"])
	require.Contains(t, logs.String(), `msg=processing app=envs task=0_1 offset=`)
}

// TestSendChecksTopics: a record sent to a missing topic or partition is an
// error of the record being processed (so the error policy applies), not a
// failure of the whole commit.
func TestSendChecksTopics(t *testing.T) {
	process := func(ctx context.Context, env topology.TaskEnv, rec *broker.Record) error {
		var i int
		_, _ = fmt.Sscanf(string(rec.Value), "v%d", &i)
		out := broker.Record{Topic: "out", Partition: broker.PartitionByKey, Key: rec.Key, Value: append([]byte("out-"), rec.Value...)}
		switch i % 5 {
		case 0:
			out.Topic = "nowhere"
		case 1:
			out.Partition = 7
		case 2:
			out.Value = bytes.Repeat([]byte("x"), 200) // over the broker's limit
		}
		return env.Send(ctx, out)
	}
	t.Run("skip", func(t *testing.T) {
		b := openBroker(t, embedded.WithMaxRecordBytes(128))
		createTopic(t, b, "in", 2)
		createTopic(t, b, "out", 2)
		const n = 100
		produceN(t, b, "in", 0, n)
		var mu sync.Mutex
		var errs []error
		attempts := make(chan struct{}, n)
		app, err := duality.New("send", mapTopology(t, []string{"in"}, "out", func(ctx context.Context, env topology.TaskEnv, rec *broker.Record) error {
			defer func() { attempts <- struct{}{} }()
			return process(ctx, env, rec)
		}), b, duality.OnProcessingError(duality.SkipOnError(func(pe *duality.ProcessingError) {
			mu.Lock()
			errs = append(errs, pe)
			mu.Unlock()
		})))
		require.NoError(t, err)
		stop, _ := runApp(t, app)
		for range n {
			<-attempts
		}
		require.NoError(t, stop())
		require.EqualValues(t, 3*n/5, app.Metrics().RecordsSkipped)
		require.EqualValues(t, 2*n/5, app.Metrics().RecordsProduced)
		mu.Lock()
		defer mu.Unlock()
		var unknownTopic, unknownPartition, tooLarge int
		for _, err := range errs {
			switch {
			case errors.Is(err, broker.ErrRecordTooLarge):
				tooLarge++
			case errors.Is(err, broker.ErrUnknownTopic):
				unknownTopic++
			case errors.Is(err, broker.ErrUnknownPartition):
				require.ErrorContains(t, err, `topic "out" partition 7`)
				unknownPartition++
			}
		}
		require.Equal(t, n/5, unknownTopic)
		require.Equal(t, n/5, unknownPartition)
		require.Equal(t, n/5, tooLarge, "an oversized output is an error of its record, not of the commit")
	})
	t.Run("fail", func(t *testing.T) {
		b := openBroker(t)
		createTopic(t, b, "in", 1)
		createTopic(t, b, "out", 1)
		produceN(t, b, "in", 0, 10)
		app, err := duality.New("send", mapTopology(t, []string{"in"}, "out", process), b)
		require.NoError(t, err)
		err = app.Run(t.Context())
		require.ErrorIs(t, err, broker.ErrUnknownTopic)
		var pe *duality.ProcessingError
		require.ErrorAs(t, err, &pe)
		require.EqualValues(t, 0, pe.Offset)
		require.Empty(t, readTopic(t, b, "out"))
	})
}
