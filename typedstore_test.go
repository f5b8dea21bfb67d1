package duality_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
)

// typedCounts is the typed store of typedCounter.
var typedCounts = stream.NewKeyValueStoreSpec("counts", codec.String(), codec.Int64())

// typedCounter counts records per key in typedCounts and forwards the
// running count; every 50th record of a task it also scans the store and
// checks that the scan sees the count it just wrote.
type typedCounter struct {
	pc    stream.ProcessorContext[string, string]
	store *stream.KeyValueStore[string, int64]
	seen  int
}

func (c *typedCounter) Init(pc stream.ProcessorContext[string, string]) error {
	c.pc = pc
	var err error
	c.store, err = typedCounts.Open(pc)
	return err
}

func (c *typedCounter) Process(ctx context.Context, rec stream.Record[string, string]) error {
	n, _, err := c.store.Get(rec.Key)
	if err != nil {
		return err
	}
	n++
	if err := c.store.Put(rec.Key, n); err != nil {
		return err
	}
	if c.seen++; c.seen%50 == 0 {
		from, to := rec.Key, rec.Key+"\x00"
		seq, errf := c.store.Range(&from, &to)
		var got []int64
		for _, v := range seq {
			got = append(got, v)
		}
		if err := errf(); err != nil {
			return err
		}
		if len(got) != 1 || got[0] != n {
			return fmt.Errorf("range of %q saw %v, want [%d]", rec.Key, got, n)
		}
	}
	return c.pc.Forward(ctx, stream.Record[string, string]{Key: rec.Key, Value: strconv.FormatInt(n, 10)})
}

func (c *typedCounter) Close() error { return nil }

// TestTypedStoreRuntime runs a Process step with a typed store in the
// runtime on the embedded broker, restarting it twice with its state
// directory deleted: the counts go on from the state restored from the
// changelog, whose values are the store's Int64 encodings.
func TestTypedStoreRuntime(t *testing.T) {
	const keys, step = 11, 400
	b := openBroker(t)
	createTopic(t, b, "in", 3)
	createTopic(t, b, "out", 3)
	sb := stream.NewBuilder()
	stream.Process(stream.From(sb, "in", codec.String(), codec.String()),
		func() stream.Processor[string, string, string, string] { return &typedCounter{} },
		stream.WithStores(typedCounts)).To("out")
	topo, err := sb.Build()
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), "state")
	for run := range 3 {
		produceKeyed(t, b, run*step, (run+1)*step, keys)
		app, err := duality.New("typed-counter", topo, b, duality.StateDir(filepath.Join(dir, strconv.Itoa(run))),
			duality.CommitInterval(5*time.Millisecond), duality.Workers(2))
		require.NoError(t, err)
		runUntil(t, b, app, (run+1)*step)
		requireCounts(t, b, (run+1)*step, keys)
	}
	last := map[string]int64{}
	for _, r := range readTopic(t, b, "typed-counter-counts-changelog") {
		n, err := codec.Int64().Decode(r.Value)
		require.NoError(t, err)
		last[string(r.Key)] = n
	}
	require.Len(t, last, keys)
	for k, n := range last {
		require.Equal(t, int64(3*step/keys)+map[bool]int64{true: 1}[keyIndex(k) < 3*step%keys], n, "key %s", k)
	}
}

// keyIndex returns i of the key "k<i>".
func keyIndex(k string) int {
	i, _ := strconv.Atoi(k[1:])
	return i
}
