package duality_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/internal/crashtest"
	"github.com/duality-streams/duality/store"
)

const (
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
	x := crashtest.New(t, crashtest.Embedded)
	b := x.Open()
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

	check := func(t *testing.T, _ broker.Broker) int { return checkGlobalPrefix(t, x.StateDir(), topic) }
	kills := crashtest.Kills(globalCrashKills)
	x.Run(crashtest.Plan{
		// A kill due shortly before the end may come after the child has
		// finished; the run is still meaningful with most kills done.
		Kills: kills, MinKills: kills - 1,
		Schedule: func(rng *rand.Rand, _ int) (int64, time.Duration) {
			return int64(rng.IntN(globalCrashRecords / (2 * kills))), crashtest.RandDelay(rng, 3*time.Millisecond)
		},
		Check: check,
	})
	require.Equal(t, globalCrashRecords, check(t, nil), "the bootstrap read the whole topic")
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

// TestGlobalKill9Child is the child process of TestGlobalKill9: it runs
// the app until its global store is bootstrapped (its queries answer),
// reporting the records the bootstrap has read as its progress.
func TestGlobalKill9Child(t *testing.T) {
	var read atomic.Int64
	var ready func(ctx context.Context) error
	crashtest.RunChild(t, crashtest.Child{
		App: func(env *crashtest.Env) (crashtest.App, error) {
			topo, err := buildGlobal()
			if err != nil {
				return nil, err
			}
			var total int64
			app, err := duality.New("gapp", topo, env.Broker,
				duality.StateDir(env.StateDir), duality.FetchMaxRecords(200),
				duality.OnRestore(func(p duality.RestoreProgress) {
					if p.Done {
						total += p.Restored
						read.Store(total)
					} else {
						read.Store(total + p.Restored)
					}
				}))
			if err != nil {
				return nil, err
			}
			q, err := duality.Query(app, globalStore, codec.String(), codec.String())
			ready = func(ctx context.Context) error {
				_, _, err := q.Get(ctx, "c1")
				return err
			}
			return app, err
		},
		Poll: func(ctx context.Context, _ *crashtest.Env) (crashtest.Progress, error) {
			err := ready(ctx)
			if errors.Is(err, duality.ErrStoreNotReady) {
				return crashtest.Progress{N: read.Load()}, nil
			}
			return crashtest.Progress{N: read.Load(), Done: err == nil}, err
		},
		PollEvery: 2 * time.Millisecond,
	})
}
