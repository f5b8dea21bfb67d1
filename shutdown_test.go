package duality_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
)

// hangingCommits wraps an embedded broker whose Commit calls, once armed,
// block until release is closed, ignoring their context: the worst case
// of a hung broker (fault injection).
type hangingCommits struct {
	*embedded.Broker
	armed   chan struct{} // closed: commits hang
	hung    chan struct{} // one value per hung call
	release chan struct{}
}

func (b *hangingCommits) Commit(ctx context.Context, req broker.CommitRequest) error {
	select {
	case <-b.armed:
	default:
		return b.Broker.Commit(ctx, req)
	}
	b.hung <- struct{}{}
	<-b.release
	return errors.New("released after the test")
}

// TestShutdownTimeoutAbandonsHungCommit: a commit that hangs (ignoring
// its context) does not keep Run from returning after ctx is canceled:
// ShutdownTimeout after the stop began, Run abandons it, drops the work
// processed after it, and returns an error matching ErrShutdownTimeout
// that says what was not committed.
func TestShutdownTimeoutAbandonsHungCommit(t *testing.T) {
	eb := openBroker(t)
	createTopic(t, eb, "in", 1)
	createTopic(t, eb, "out", 1)
	b := &hangingCommits{Broker: eb, armed: make(chan struct{}), hung: make(chan struct{}, 16), release: make(chan struct{})}
	t.Cleanup(func() { close(b.release) }) // before the broker closes
	fn, done := counting(14, prefixTo("out"))
	// A commit after the 11th record (more than 10 uncommitted), none
	// by time.
	app, err := duality.New("hung", mapTopology(t, []string{"in"}, "out", fn), b, duality.Workers(1),
		duality.CommitInterval(time.Hour), duality.MaxUncommittedRecords(10), duality.ShutdownTimeout(100*time.Millisecond))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- app.Run(ctx) }()

	close(b.armed)
	produceN(t, eb, "in", 0, 11)
	<-b.hung // the commit of the first 11 records hangs
	produceN(t, eb, "in", 11, 14)
	<-done // 3 more processed, not committed
	cancel()
	select {
	case err = <-errc:
	case <-time.After(20 * time.Second): // a bound, far above the 100 ms timeout
		t.Fatal("Run did not return after ctx was canceled: a hung commit blocks shutdown")
	}
	require.ErrorIs(t, err, duality.ErrShutdownTimeout)
	require.ErrorContains(t, err, "shutdown timed out after 100ms: abandoned a commit of generation 1 still running: "+
		"11 records (0 of them changelog) and the input offsets [in/0@11] of tasks [0_0]; "+
		"the broker applies such a commit entirely or not at all; "+
		"dropped the uncommitted work after it: 3 output records, 0 changelog records, and the input offsets [in/0@14] of tasks [0_0]")
	offs, err := eb.FetchOffsets(t.Context(), "hung", []broker.TopicPartition{{Topic: "in", Partition: 0}})
	require.NoError(t, err)
	require.Empty(t, offs, "nothing committed")
	require.Empty(t, readTopic(t, eb, "out"))
	require.Zero(t, app.Metrics().Commits)
}
