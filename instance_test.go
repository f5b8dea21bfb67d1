package duality_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/topology"
)

// TestInstanceIDFencesZombie runs an instance that stalls in the middle
// of its input (a zombie: alive, but not making progress), then starts
// its replacement with the same InstanceID: the replacement takes the
// group membership and the committers of that id, processes the input,
// and when the zombie wakes up its work is refused: the output holds
// every record exactly once.
func TestInstanceIDFencesZombie(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "in", 2)
	createTopic(t, b, "out", 2)
	const n = 200
	produceN(t, b, "in", 0, n)

	blocked, release := make(chan struct{}), make(chan struct{})
	wake := sync.OnceFunc(func() { close(release) })
	t.Cleanup(wake) // also when the test fails before it wakes the zombie
	var once sync.Once
	var mu sync.Mutex
	count := 0
	stalling := func(ctx context.Context, env topology.TaskEnv, rec *broker.Record) error {
		mu.Lock()
		count++
		c := count
		mu.Unlock()
		if c == 50 {
			once.Do(func() { close(blocked) })
			<-release
		}
		return prefixTo("out")(ctx, env, rec)
	}
	opts := []duality.Option{duality.InstanceID("shop-1"), duality.Workers(1),
		duality.MaxUncommittedRecords(1), duality.CommitInterval(time.Hour)}
	zombie, err := duality.New("zombie", mapTopology(t, []string{"in"}, "out", stalling), b, opts...)
	require.NoError(t, err)
	zctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	zombieDone := make(chan error, 1)
	go func() { zombieDone <- zombie.Run(zctx) }()
	<-blocked

	var logs syncBuffer
	fresh, err := duality.New("zombie", mapTopology(t, []string{"in"}, "out", prefixTo("out")), b,
		append(opts, duality.Logger(slog.New(slog.NewTextHandler(&logs, nil))))...)
	require.NoError(t, err)
	stop, _ := runApp(t, fresh)
	awaitRecords(t, b, "out", n)
	wake() // the zombie wakes up and tries to commit
	select {
	case err := <-zombieDone:
		require.ErrorContains(t, err, "group membership ended", "the replaced instance stops")
	case <-time.After(20 * time.Second):
		t.Fatal("the replaced instance did not stop")
	}
	require.NoError(t, stop())
	requireExactlyOnce(t, b, "out", n)
	require.Contains(t, logs.String(), "instance=shop-1")
}

// TestInstanceIDDefault: with a state directory the instance id is kept
// there and survives restarts; without one each run has its own; a bad
// id is refused by New.
func TestInstanceIDDefault(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "in", 1)
	createTopic(t, b, "out", 1)
	produceN(t, b, "in", 0, 3)
	idOf := regexp.MustCompile(`msg="joined group" app=ids member=\S+ instance=(\S+)`)
	run := func(opts ...duality.Option) string {
		t.Helper()
		var logs syncBuffer
		app, err := duality.New("ids", mapTopology(t, []string{"in"}, "out", prefixTo("out")), b,
			append(opts, duality.Logger(slog.New(slog.NewTextHandler(&logs, nil))))...)
		require.NoError(t, err)
		runToEnd(t, app)
		m := idOf.FindStringSubmatch(logs.String())
		require.NotNil(t, m, "the join is logged with the instance id: %s", logs.String())
		return m[1]
	}
	dir := filepath.Join(t.TempDir(), "state")
	first := run(duality.StateDir(dir))
	require.Equal(t, first, run(duality.StateDir(dir)), "the state directory keeps the instance id")
	kept, err := os.ReadFile(filepath.Join(dir, "DUALITY-INSTANCE-ID"))
	require.NoError(t, err)
	require.Equal(t, first+"\n", string(kept))
	require.NotEqual(t, first, run(duality.StateDir(filepath.Join(t.TempDir(), "other"))))
	require.NotEqual(t, run(), run(), "without a state directory each run has its own id")
	require.Equal(t, "given", run(duality.StateDir(dir), duality.InstanceID("given")), "InstanceID overrides the kept id")

	for _, bad := range []string{"", "has space", "slash/", string(make([]byte, 201))} {
		_, err := duality.New("ids", mapTopology(t, []string{"in"}, "out", prefixTo("out")), b, duality.InstanceID(bad))
		require.ErrorIs(t, err, duality.ErrInvalidConfig, "%q", bad)
	}
}
