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

// hangingCommits wraps an embedded broker whose commits, once armed,
// block until release is closed, ignoring their context: the worst case
// of a hung broker (fault injection).
type hangingCommits struct {
	*embedded.Broker
	armed   chan struct{} // closed: commits hang
	hung    chan struct{} // one value per hung call
	release chan struct{}
}

func (b *hangingCommits) NewCommitter(ctx context.Context, id string) (broker.Committer, error) {
	return newHookedCommitter(ctx, b.Broker, id, func(ctx context.Context, _ broker.CommitRequest, commit func() error) error {
		select {
		case <-b.armed:
		default:
			return commit()
		}
		b.hung <- struct{}{}
		<-b.release
		return errors.New("released after the test")
	})
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

// faultyBroker wraps an embedded broker with faults injected once a
// channel is closed (fault injection): failOffsets makes FetchOffsets
// fail (an error that is not retryable); hangCommits makes commits, and
// hangLeave the Leave of the memberships it hands out, block until
// release is closed, ignoring their context (a hung broker).
type faultyBroker struct {
	*embedded.Broker
	failOffsets, hangCommits, hangLeave chan struct{}
	release                             chan struct{}
}

// newFaultyBroker returns a faultyBroker over a new embedded broker, with
// no fault armed. Its hung calls are released before the broker closes.
func newFaultyBroker(t *testing.T) *faultyBroker {
	b := &faultyBroker{Broker: openBroker(t), failOffsets: make(chan struct{}), hangCommits: make(chan struct{}),
		hangLeave: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(func() { close(b.release) })
	return b
}

func armed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func (b *faultyBroker) FetchOffsets(ctx context.Context, group string, tps []broker.TopicPartition) (map[broker.TopicPartition]int64, error) {
	if armed(b.failOffsets) {
		return nil, errors.New("injected offset fetch failure")
	}
	return b.Broker.FetchOffsets(ctx, group, tps)
}

func (b *faultyBroker) NewCommitter(ctx context.Context, id string) (broker.Committer, error) {
	return newHookedCommitter(ctx, b.Broker, id, func(ctx context.Context, _ broker.CommitRequest, commit func() error) error {
		if armed(b.hangCommits) {
			<-b.release
			return errors.New("released after the test")
		}
		return commit()
	})
}

func (b *faultyBroker) JoinGroup(ctx context.Context, group string, topics []string, opts broker.JoinOptions) (broker.Membership, error) {
	m, err := b.Broker.JoinGroup(ctx, group, topics, opts)
	if err != nil {
		return nil, err
	}
	return &faultyMember{Membership: m, b: b}, nil
}

type faultyMember struct {
	broker.Membership
	b *faultyBroker
}

func (m *faultyMember) Leave(ctx context.Context) error {
	if armed(m.b.hangLeave) {
		<-m.b.release
		return errors.Join(errors.New("released after the test"), m.Membership.Leave(context.WithoutCancel(ctx)))
	}
	return m.Membership.Leave(ctx)
}

// awaitStop waits for the error of a Run or RunToEnd that must return on
// its own, and fails the test after a bound far above the shutdown
// timeouts of the tests (100 ms).
func awaitStop(t *testing.T, errc <-chan error) error {
	t.Helper()
	select {
	case err := <-errc:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return: a hung broker call blocks its stop")
		return nil
	}
}

// TestShutdownTimeoutBoundsFatalStops: on the fatal paths that stop an
// app without its ctx ending, the shutdown's deadline starts, so a broker
// call that hangs while the app stops (ignoring its context) is abandoned
// ShutdownTimeout later, and Run or RunToEnd returns an error matching
// ErrShutdownTimeout beside the error that stopped it.
func TestShutdownTimeoutBoundsFatalStops(t *testing.T) {
	newApp := func(t *testing.T, b *faultyBroker, opts ...duality.Option) *duality.App {
		createTopic(t, b, "in", 1)
		createTopic(t, b, "out", 1)
		opts = append([]duality.Option{duality.Workers(1), duality.ShutdownTimeout(100 * time.Millisecond)}, opts...)
		app, err := duality.New("faulty", mapTopology(t, []string{"in"}, "out", prefixTo("out")), b, opts...)
		require.NoError(t, err)
		return app
	}

	t.Run("generation start fails", func(t *testing.T) {
		b := newFaultyBroker(t)
		app := newApp(t, b)
		close(b.failOffsets) // the generation cannot resume its tasks
		close(b.hangLeave)
		errc := make(chan error, 1)
		go func() { errc <- app.Run(t.Context()) }()
		err := awaitStop(t, errc)
		require.ErrorContains(t, err, "fetch committed offsets: injected offset fetch failure")
		require.ErrorIs(t, err, duality.ErrShutdownTimeout)
		require.ErrorContains(t, err, "leave group: duality: shutdown timed out after 100ms")
	})

	t.Run("bounded run reaches its end", func(t *testing.T) {
		b := newFaultyBroker(t)
		app := newApp(t, b)
		produceN(t, b, "in", 0, 5)
		close(b.hangLeave)
		errc := make(chan error, 1)
		go func() { errc <- app.RunToEnd(t.Context()) }()
		err := awaitStop(t, errc)
		require.ErrorIs(t, err, duality.ErrShutdownTimeout)
		require.ErrorContains(t, err, "leave group: duality: shutdown timed out after 100ms")
		requireExactlyOnce(t, b, "out", 5) // the run's work is committed
	})

	t.Run("bounded run's completion check fails", func(t *testing.T) {
		b := newFaultyBroker(t)
		// Nothing is committed before the stop: the final commit has
		// the work to do, and hangs.
		fn, done := counting(3, prefixTo("out"))
		createTopic(t, b, "in", 1)
		createTopic(t, b, "out", 1)
		app, err := duality.New("faulty", mapTopology(t, []string{"in"}, "out", fn), b, duality.Workers(1),
			duality.ShutdownTimeout(100*time.Millisecond), duality.CommitInterval(time.Hour))
		require.NoError(t, err)
		produceN(t, b, "in", 0, 3)
		errc := make(chan error, 1)
		go func() { errc <- app.RunToEnd(t.Context()) }()
		<-done
		close(b.hangCommits)
		close(b.failOffsets) // the next completion check fails
		err = awaitStop(t, errc)
		require.ErrorContains(t, err, "bounded run: fetch committed offsets: injected offset fetch failure")
		require.ErrorIs(t, err, duality.ErrShutdownTimeout)
		require.ErrorContains(t, err, "shutdown timed out after 100ms: abandoned a commit of generation 1 still running: "+
			"3 records (0 of them changelog) and the input offsets [in/0@3] of tasks [0_0]")
		require.Empty(t, readTopic(t, b, "out"))
	})
}
