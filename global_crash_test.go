package duality_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/store"
)

const (
	globalCrashEnv     = "DUALITY_GLOBAL_CRASH_DIR"
	globalCrashRecords = 30_000
	globalCrashKeys    = 700
	globalCrashParts   = 3
	globalCrashKills   = 4
)

// TestGlobalKill9 bootstraps a global store with Pebble state in a child
// process, kills it with SIGKILL at random moments of the bootstrap and
// restarts it until the bootstrap completes. After every kill the state
// directory must hold exactly a prefix of each partition of the topic:
// the data equals the records below the positions stored with it. At the
// end it holds the whole topic.
func TestGlobalKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	root := t.TempDir()
	brokerDir := filepath.Join(root, "broker")
	b, err := embedded.Open(brokerDir)
	require.NoError(t, err)
	createTopic(t, b, "customers", globalCrashParts)
	createTopic(t, b, "orders", 1)
	createTopic(t, b, "out", 1)
	for i := 0; i < globalCrashRecords; i += 1000 {
		var kvs []string
		for j := i; j < i+1000; j++ {
			v := fmt.Sprintf("v%d", j)
			if j%7 == 0 {
				v = "" // tombstone
			}
			kvs = append(kvs, fmt.Sprintf("c%d", j%globalCrashKeys), v)
		}
		produceKV(t, b, "customers", kvs...)
	}
	topic := readTopic(t, b, "customers")
	require.Len(t, topic, globalCrashRecords)
	require.NoError(t, b.Close())

	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	kills := 0
	for cycle := 0; ; cycle++ {
		require.Less(t, cycle, 20, "too many cycles")
		target, delay := -1, time.Duration(0)
		if kills < globalCrashKills {
			target = rng.IntN(globalCrashRecords / (2 * globalCrashKills))
			delay = time.Duration(rng.IntN(3_000)) * time.Microsecond
		}
		done := runChild(t, "^TestGlobalKill9Child$", globalCrashEnv, root, target, delay)
		applied := checkGlobalPrefix(t, filepath.Join(root, "state"), topic)
		if done {
			require.Equal(t, globalCrashRecords, applied, "the bootstrap read the whole topic")
			break
		}
		kills++
		t.Logf("cycle %d: killed %v after %d records read; the state holds %d", cycle, delay, target, applied)
	}
	// A kill due shortly before the end may come after the child has
	// finished; the run is still meaningful with most kills done.
	require.GreaterOrEqual(t, kills, globalCrashKills-1, "the child finished before most kills; make the topic larger")
}

// checkGlobalPrefix opens the state directory and checks that the global
// store holds exactly the records of topic below the positions it
// recorded (its layout: 0x00 + partition -> next offset, 0x01 + key ->
// value). It returns the number of records below the positions.
func checkGlobalPrefix(t *testing.T, dir string, topic []broker.Record) int {
	t.Helper()
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return 0 // killed before the state was created
	}
	db, err := store.OpenPebble(dir)
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	st, err := db.Store(globalStore, 0)
	require.NoError(t, err)
	defer func() { require.NoError(t, st.Close()) }()
	pos := map[int32]int64{}
	got := map[string]string{}
	c := st.Range(nil, nil)
	for k, v := range c.All() {
		switch k[0] {
		case 0x00:
			require.Len(t, k, 5)
			require.Len(t, v, 8)
			pos[int32(binary.BigEndian.Uint32(k[1:]))] = int64(binary.BigEndian.Uint64(v))
		case 0x01:
			got[string(k[1:])] = string(v)
		default:
			require.Failf(t, "unexpected key", "%q", k)
		}
	}
	require.NoError(t, c.Close())
	want := map[string]string{}
	n := 0
	for _, r := range topic { // partition by partition, in offset order
		if r.Offset >= pos[r.Partition] {
			continue
		}
		n++
		if r.Value == nil {
			delete(want, string(r.Key))
		} else {
			want[string(r.Key)] = string(r.Value)
		}
	}
	require.Equal(t, want, got, "the global store is not the prefix its positions %v say", pos)
	return n
}

// TestGlobalKill9Child is the child process of TestGlobalKill9; it skips
// unless started by it.
func TestGlobalKill9Child(t *testing.T) {
	dir := os.Getenv(globalCrashEnv)
	if dir == "" {
		t.Skip("child process of TestGlobalKill9; runs only when re-executed by it")
	}
	if err := globalCrashChild(dir); err != nil {
		fmt.Fprintf(os.Stderr, "crash child: %v\n", err)
		os.Exit(3)
	}
	fmt.Println("done")
}

// globalCrashChild runs the app until its global store is bootstrapped
// (its queries answer), printing "committed <n>" as the bootstrap reads n
// records.
func globalCrashChild(root string) (err error) {
	b, err := embedded.Open(filepath.Join(root, "broker"), embedded.WithCleanupInterval(-1))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, b.Close()) }()
	topo, err := buildGlobal()
	if err != nil {
		return err
	}
	var total int64
	app, err := duality.New("gapp", topo, b,
		duality.StateDir(filepath.Join(root, "state")), duality.FetchMaxRecords(200),
		duality.OnRestore(func(p duality.RestoreProgress) {
			if p.Done {
				total += p.Restored
				fmt.Println("committed", total)
			} else {
				fmt.Println("committed", total+p.Restored)
			}
		}))
	if err != nil {
		return err
	}
	q, err := duality.Query(app, globalStore, codec.String(), codec.String())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), crashMaxTime)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- app.Run(runCtx) }()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-errc:
			stop()
			return fmt.Errorf("app stopped early: %w", err)
		case <-tick.C:
		}
		if _, _, err := q.Get(ctx, "c1"); err == nil {
			stop()
			return <-errc
		} else if !errors.Is(err, duality.ErrStoreNotReady) {
			stop()
			return errors.Join(err, <-errc)
		}
	}
}
