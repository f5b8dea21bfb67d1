package table_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/codec"
)

const (
	fkCrashEnv       = "DUALITY_FKJOIN_CRASH_DIR"
	fkCrashOrders    = 300
	fkCrashRounds    = 8
	fkCrashCustomers = 40
	fkCrashKills     = 4
	fkCrashMaxTime   = 30 * time.Second
)

// fkCrashTopics are the topics whose committed offsets tell that the join
// has processed everything: its inputs and its internal topics.
var fkCrashTopics = map[string]int32{
	"orders": 3, "customers": 2,
	"shop-enriched-subscription-registration": 2, "shop-enriched-subscription-response": 3,
}

// TestJoinByForeignKeyKill9 runs the foreign-key join (Pebble state) in a
// child process that is killed with SIGKILL at random moments while it
// works through orders that change customer every round, restarts it until
// it is done, and checks the results: every result ever written pairs an
// order's value with the customer that value names, and the newest result
// of every order is its last value joined with its customer. Then every
// customer is renamed and the child runs once more: each order is
// re-emitted exactly once, so the subscription store holds exactly one
// subscription per order after the kills.
func TestJoinByForeignKeyKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	dir := t.TempDir()
	b, err := embedded.Open(dir)
	require.NoError(t, err)
	ctx := t.Context()
	for topic, n := range map[string]int32{"orders": 3, "customers": 2, "enriched-changes": 3} {
		require.NoError(t, b.CreateTopic(ctx, topic, broker.TopicConfig{Partitions: n}))
	}
	var recs []broker.Record
	for c := range fkCrashCustomers {
		recs = append(recs, broker.Record{Topic: "customers", Partition: broker.PartitionByKey, Key: fmt.Append(nil, "c", c), Value: fmt.Append(nil, "name", c)})
	}
	customerOf := func(o, round int) int { return (o*7 + round*3) % fkCrashCustomers }
	for round := range fkCrashRounds {
		for o := range fkCrashOrders {
			v, err := codec.JSON[fkOrder]().Append(nil, fkOrder{Customer: fmt.Sprint("c", customerOf(o, round)), Item: fmt.Sprint("item", round)})
			require.NoError(t, err)
			recs = append(recs, broker.Record{Topic: "orders", Partition: broker.PartitionByKey, Key: fmt.Append(nil, "o", o), Value: v})
		}
	}
	require.NoError(t, b.Produce(ctx, recs))
	require.NoError(t, b.Close())

	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	total := fkCrashOrders * fkCrashRounds
	kills := 0
	for cycle := 0; ; cycle++ {
		require.Less(t, cycle, 30, "too many cycles")
		target, delay := -1, time.Duration(0)
		if kills < fkCrashKills {
			share := total / (fkCrashKills + 1)
			target = kills*share + rng.IntN(share)
			delay = time.Duration(rng.IntN(10_000)) * time.Microsecond
		}
		if fkRunCrashChild(t, dir, target, delay) {
			break
		}
		kills++
	}
	t.Logf("killed the app %d times", kills)

	b, err = embedded.Open(dir)
	require.NoError(t, err)
	result := func(r broker.Record) (o, round, c int) {
		t.Helper()
		var err error
		o, err = strconv.Atoi(strings.TrimPrefix(string(r.Key), "o"))
		require.NoError(t, err)
		_, err = fmt.Sscanf(string(r.Value), "item%d for name%d", &round, &c)
		require.NoError(t, err, "result %q", r.Value)
		return o, round, c
	}
	first := readAll(t, b, "enriched-changes")
	latest := map[int]broker.Record{}
	for _, r := range first {
		if r.Value == nil {
			// An order that moved to a customer not read yet.
			o, err := strconv.Atoi(strings.TrimPrefix(string(r.Key), "o"))
			require.NoError(t, err)
			delete(latest, o)
			continue
		}
		o, round, c := result(r)
		require.Equal(t, customerOf(o, round), c, "order %d of round %d joined with another customer", o, round)
		latest[o] = r
	}
	require.Len(t, latest, fkCrashOrders)
	for o, r := range latest {
		_, round, _ := result(r)
		require.Equal(t, fkCrashRounds-1, round, "order %d's newest result", o)
	}
	t.Logf("%d results for %d order updates", len(first), total)

	recs = recs[:0]
	for c := range fkCrashCustomers {
		recs = append(recs, broker.Record{Topic: "customers", Partition: broker.PartitionByKey, Key: fmt.Append(nil, "c", c), Value: fmt.Append(nil, "new", c)})
	}
	require.NoError(t, b.Produce(ctx, recs))
	require.NoError(t, b.Close())
	require.True(t, fkRunCrashChild(t, dir, -1, 0))
	b, err = embedded.Open(dir)
	require.NoError(t, err)
	defer func() { require.NoError(t, b.Close()) }()
	renamed := map[string]int{}
	seen := map[[2]int64]bool{}
	for _, r := range first {
		seen[[2]int64{int64(r.Partition), r.Offset}] = true
	}
	for _, r := range readAll(t, b, "enriched-changes") {
		if seen[[2]int64{int64(r.Partition), r.Offset}] {
			continue // phase 1
		}
		o, _ := strconv.Atoi(strings.TrimPrefix(string(r.Key), "o"))
		require.Equal(t, fmt.Sprintf("item%d for new%d", fkCrashRounds-1, customerOf(o, fkCrashRounds-1)), string(r.Value))
		renamed[string(r.Key)]++
	}
	require.Len(t, renamed, fkCrashOrders)
	for k, n := range renamed {
		require.Equal(t, 1, n, "re-emissions of %s", k)
	}
}

// fkRunCrashChild runs TestJoinByForeignKeyKill9Child on dir; it kills it
// with SIGKILL delay after it reports target committed order records
// (never with target < 0), and reports whether the child finished.
func fkRunCrashChild(t *testing.T, dir string, target int, delay time.Duration) (done bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestJoinByForeignKeyKill9Child$", "-test.count=1", "-test.timeout=60s")
	cmd.Env = append(os.Environ(), fkCrashEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	lines := make(chan string, 4)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var kill <-chan time.Time
	deadline := time.NewTimer(fkCrashMaxTime)
	defer deadline.Stop()
	killed := false
	for open := true; open; {
		select {
		case line, ok := <-lines:
			switch {
			case !ok:
				open = false
			case strings.HasPrefix(line, "committed ") && target >= 0 && !killed && kill == nil:
				n, err := strconv.Atoi(strings.TrimPrefix(line, "committed "))
				require.NoError(t, err)
				if n >= target {
					kill = time.After(delay)
				}
			case line == "done":
				done, kill = true, nil
			}
		case <-kill:
			_ = cmd.Process.Signal(syscall.SIGKILL)
			killed, kill = true, nil
		case <-deadline.C:
			_ = cmd.Process.Signal(syscall.SIGKILL)
			_ = cmd.Wait()
			require.FailNow(t, "child too slow", "stderr:\n%s", stderr.String())
		}
	}
	err = cmd.Wait()
	if done {
		require.NoError(t, err, "stderr:\n%s", stderr.String())
		return true
	}
	require.True(t, killed, "child exited by itself: %v; stderr:\n%s", err, stderr.String())
	return false
}

// TestJoinByForeignKeyKill9Child is the child process of
// TestJoinByForeignKeyKill9; it skips unless started by it.
func TestJoinByForeignKeyKill9Child(t *testing.T) {
	dir := os.Getenv(fkCrashEnv)
	if dir == "" {
		t.Skip("child process of TestJoinByForeignKeyKill9; runs only when re-executed by it")
	}
	if err := fkCrashChild(dir); err != nil {
		fmt.Fprintf(os.Stderr, "crash child: %v\n", err)
		os.Exit(3)
	}
	fmt.Println("done")
}

// fkCrashChild runs the join until the group has committed every record of
// its inputs and internal topics, three polls in a row (a commit's offsets
// can be readable a moment before its records).
func fkCrashChild(dir string) (err error) {
	b, err := embedded.Open(dir, embedded.WithCleanupInterval(-1))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, b.Close()) }()
	topo, err := fkJoinBuilder().Build()
	if err != nil {
		return err
	}
	app, err := duality.New("shop", topo, b, duality.StateDir(filepath.Join(dir, "state")),
		duality.Workers(2), duality.CommitInterval(2*time.Millisecond), duality.MaxUncommittedRecords(100), duality.FetchMaxRecords(50))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), fkCrashMaxTime)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- app.Run(runCtx) }()
	var tps []broker.TopicPartition
	for topic, n := range fkCrashTopics {
		for p := range n {
			tps = append(tps, broker.TopicPartition{Topic: topic, Partition: p})
		}
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	quiet := 0
	for quiet < 3 {
		select {
		case err := <-errc:
			stop()
			return fmt.Errorf("app stopped early: %w", err)
		case <-tick.C:
		}
		committed, err := b.FetchOffsets(ctx, "shop", tps)
		if errors.Is(err, broker.ErrUnknownTopic) { // internal topics not created yet
			fmt.Println("committed 0")
			continue
		}
		if err != nil {
			stop()
			return errors.Join(err, <-errc)
		}
		caughtUp := true
		var orders int64
		for _, tp := range tps {
			offs, err := b.ListOffsets(ctx, tp.Topic, tp.Partition)
			if err != nil {
				stop()
				return errors.Join(err, <-errc)
			}
			caughtUp = caughtUp && committed[tp] == offs.Latest
			if tp.Topic == "orders" {
				orders += committed[tp]
			}
		}
		fmt.Println("committed", orders)
		if caughtUp {
			quiet++
		} else {
			quiet = 0
		}
	}
	stop()
	return <-errc
}
