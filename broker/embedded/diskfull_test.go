package embedded_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
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

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/internal/smallfs"
)

// The disk-full tests fill a small tmpfs through the broker, in child
// processes (a Pebble panic on a full disk would kill the test binary),
// each bounded by a timeout so that a hang fails the test.

const (
	diskFullEnv     = "DUALITY_DISKFULL_CHILD"
	diskFullSpecEnv = "DUALITY_DISKFULL_FS"
	diskFullTopic   = "full"
	diskFullFS      = 20 << 20 // the tmpfs of the issue
	// diskFullChild bounds a child: it detects a hang (the open of the
	// issue spun forever), not slowness. Verify children took 11-14 s
	// under -race beside the other packages' disk-full tests on two
	// cores at load 30, and a 15 s bound failed some.
	diskFullChild = 2 * time.Minute
	// Records of 1 KiB of incompressible bytes, 16 to a batch: the
	// sstables of a flush are as large as the write-ahead log.
	diskFullRecords = 16
	diskFullValue   = 1 << 10
)

// diskFullBatch returns the records of batch id for partition p.
func diskFullBatch(id string, p int32) []broker.Record {
	h := fnv.New64a()
	h.Write([]byte(id))
	rng := rand.New(rand.NewPCG(h.Sum64(), 1))
	recs := make([]broker.Record, diskFullRecords)
	for j := range recs {
		v := make([]byte, diskFullValue)
		for i := 0; i < len(v); i += 8 {
			binary.LittleEndian.PutUint64(v[i:], rng.Uint64())
		}
		recs[j] = broker.Record{Topic: diskFullTopic, Partition: p, Key: fmt.Appendf(nil, "%s/%d", id, j), Value: v}
	}
	return recs
}

// diskFullRun runs a child mode on dir with extra arguments and returns its
// output lines; the child must exit with status 0 within diskFullChild.
func diskFullRun(t *testing.T, fs *smallfs.FS, mode, dir string, args ...string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), diskFullChild)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestDiskFullChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), diskFullEnv+"="+strings.Join(append([]string{mode, dir, fs.Dir, fs.Spec()}, args...), " "), diskFullSpecEnv+"="+fs.Spec())
	// On a hang, ask for the goroutines' stacks (SIGQUIT), then kill.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGQUIT) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	require.NoError(t, ctx.Err(), "child %s hung (killed after %v); stderr:\n%s", mode, diskFullChild, tail(stderr.String(), 30000))
	require.NoError(t, err, "child %s did not exit cleanly; stderr:\n%s", mode, tail(stderr.String(), 3000))
	t.Logf("child %s: %v", mode, time.Since(start).Round(time.Millisecond))
	var lines []string
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

// diskFullAcks collects the "ack <partition> <offset> <id>" lines of a
// child into acked (id -> "partition offset") and returns the other lines.
func diskFullAcks(t *testing.T, lines []string, acked map[string]string) (other []string) {
	t.Helper()
	for _, l := range lines {
		if rest, ok := strings.CutPrefix(l, "ack "); ok {
			f := strings.Fields(rest)
			require.Len(t, f, 3, "ack line %q", l)
			acked[f[2]] = f[0] + " " + f[1]
			continue
		}
		other = append(other, l)
	}
	return other
}

// diskFullVerify checks that a child's "found" lines hold every acked batch
// at its offsets.
func diskFullVerify(t *testing.T, lines []string, acked map[string]string) {
	t.Helper()
	found := map[string]string{}
	for _, l := range lines {
		if rest, ok := strings.CutPrefix(l, "found "); ok {
			f := strings.Fields(rest)
			require.Len(t, f, 3, "found line %q", l)
			found[f[2]] = f[0] + " " + f[1]
		}
	}
	for id, at := range acked {
		require.Equal(t, at, found[id], "acknowledged batch %s", id)
	}
	t.Logf("%d acknowledged batches all present (%d batches stored)", len(acked), len(found))
}

func lineWith(t *testing.T, lines []string, prefix string) string {
	t.Helper()
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	require.FailNow(t, "missing output line", "no line %q in %q", prefix, lines)
	return ""
}

// TestDiskFullProduce fills a 20 MiB tmpfs through Produce:
//   - the broker refuses the write that would fill it with a retryable error
//     matching broker.ErrDiskFull, and stays usable (small commits, reads);
//   - a process that dies there (no Close) leaves a write-ahead log that
//     cannot be flushed once another writer fills the disk: Open says
//     ErrDiskFull at once instead of retrying its flush forever;
//   - with space freed, it opens with every acknowledged batch; a Produce
//     refused for lack of space succeeds when retried after space returns
//     in the same process; a file system grown by remounting takes more.
func TestDiskFullProduce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs child processes; skipped under -short")
	}
	mnt := filepath.Join(t.TempDir(), "fs")
	require.NoError(t, os.Mkdir(mnt, 0o755))
	fs := smallfs.New(mnt, diskFullFS)
	t.Cleanup(func() { require.NoError(t, fs.Close()) })
	t.Logf("file system: %s", fs.Spec())
	dir := filepath.Join(mnt, "data")
	acked := map[string]string{}

	// 1. Fill through Produce, die without Close.
	out := diskFullAcks(t, diskFullRun(t, fs, "fill", dir, "a", "die"), acked)
	full := lineWith(t, out, "full ")
	require.Contains(t, full, "full true true ", "the refusal matches ErrDiskFull and is retryable")
	require.Contains(t, lineWith(t, out, "again "), "again true", "refused again while the disk is full")
	require.Equal(t, "commit <nil>", lineWith(t, out, "commit "), "a commit of offsets (small) is still accepted")
	require.Greater(t, len(acked), 100, "the broker refused writes too early")
	free, _, err := fs.Usage()
	require.NoError(t, err)
	t.Logf("%d batches acknowledged, then %s; %d bytes left free", len(acked), full, free)

	// 2. Another writer fills the disk: Open fails at once with ErrDiskFull.
	_, err = fs.Fill("filler", 0)
	require.NoError(t, err)
	out = diskFullRun(t, fs, "open", dir)
	openErr := lineWith(t, out, "openerr ")
	require.Contains(t, openErr, "openerr true true ", "a full disk at open matches ErrDiskFull and is retryable")
	t.Logf("open on a full disk: %s", openErr)

	// 3. Free some space: it opens with everything acknowledged, fills up
	// again, and a refused Produce succeeds once the filler is gone.
	require.NoError(t, fs.Free("filler", 10<<20))
	out = diskFullRun(t, fs, "verify", dir)
	require.Contains(t, out, "opened")
	diskFullVerify(t, out, acked)
	before := len(acked)
	out = diskFullAcks(t, diskFullRun(t, fs, "fill", dir, "b", "free:"+filepath.Join(mnt, "filler")), acked)
	require.Contains(t, lineWith(t, out, "full "), "full true true ")
	require.Equal(t, "retried <nil>", lineWith(t, out, "retried "), "the refused Produce succeeds once space is freed")
	// The retried batch used the space freed: Close's flush may then fail
	// to finish Pebble's new write-ahead log. That is a disk-full error,
	// never a hang or a crash, and step 4 finds every acknowledged batch.
	if closed := lineWith(t, out, "closed "); closed != "closed <nil>" {
		require.Contains(t, closed, "broker: disk full", "Close on a full disk fails only with ErrDiskFull")
	}
	require.Greater(t, len(acked), before+1)

	// 4. Grow the file system: everything is there, and it takes more.
	require.NoError(t, fs.Resize(2*diskFullFS))
	out = diskFullRun(t, fs, "verify", dir)
	diskFullVerify(t, out, acked)
	before = len(acked)
	out = diskFullAcks(t, diskFullRun(t, fs, "fill", dir, "c", "close"), acked)
	require.Contains(t, lineWith(t, out, "full "), "full true true ")
	require.Greater(t, len(acked), before+100, "a grown file system takes more records")
	out = diskFullRun(t, fs, "verify", dir)
	diskFullVerify(t, out, acked)
}

// TestDiskFullOutsider: another process fills the disk while the broker
// takes writes, between two measures of the free space, in sync and
// interval mode. Every later write fails with an error matching
// broker.ErrDiskFull (retryable if refused by the guard, not if a Pebble
// write failed and the broker must be reopened), the process neither
// crashes nor hangs, and once space is freed the broker reopens with
// every batch acknowledged (in sync mode; in interval mode a prefix).
func TestDiskFullOutsider(t *testing.T) {
	if testing.Short() {
		t.Skip("runs child processes; skipped under -short")
	}
	for _, mode := range []string{"sync", "interval"} {
		t.Run(mode, func(t *testing.T) {
			mnt := filepath.Join(t.TempDir(), "fs")
			require.NoError(t, os.Mkdir(mnt, 0o755))
			fs := smallfs.New(mnt, diskFullFS)
			t.Cleanup(func() { require.NoError(t, fs.Close()) })
			dir := filepath.Join(mnt, "data")
			acked := map[string]string{}
			out := diskFullAcks(t, diskFullRun(t, fs, "outsider", dir, mode, filepath.Join(mnt, "filler")), acked)
			refused := lineWith(t, out, "refused ")
			require.Contains(t, refused, "refused true ", "later writes fail with ErrDiskFull")
			t.Logf("%d batches acknowledged; %s", len(acked), refused)
			require.NoError(t, fs.Free("filler", -1))
			found := diskFullRun(t, fs, "verify", dir)
			if mode == "sync" {
				diskFullVerify(t, found, acked)
			}
		})
	}
}

// diskFullOutsider produces ten batches, fills the disk as another process
// would (args[1] is the filler's path), then tries 200 more.
func diskFullOutsider(ctx context.Context, b *embedded.Broker, args []string) error {
	if err := b.CreateTopic(ctx, diskFullTopic, broker.TopicConfig{Partitions: 2, RetentionTime: -1}); err != nil {
		return err
	}
	produce := func(n int) error {
		id := "o" + strconv.Itoa(n)
		recs := diskFullBatch(id, int32(n%2))
		if err := b.Produce(ctx, recs); err != nil {
			return err
		}
		fmt.Printf("ack %d %d %s\n", recs[0].Partition, recs[0].Offset, id)
		return nil
	}
	for n := range 10 {
		if err := produce(n); err != nil {
			return err
		}
	}
	small := &smallfs.FS{Dir: filepath.Dir(args[1])}
	if _, err := smallfs.Attach(small.Dir, os.Getenv(diskFullSpecEnv)).Fill(filepath.Base(args[1]), 0); err != nil {
		return err
	}
	var errs []error
	for n := 10; n < 210; n++ {
		if err := produce(n); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		return errors.New("no Produce failed on a full disk")
	}
	last := errs[len(errs)-1]
	fmt.Printf("refused %t %t %d %v\n", errors.Is(last, broker.ErrDiskFull), broker.IsRetryable(last), len(errs), last)
	fmt.Printf("closed %v\n", b.Close())
	return nil
}

// TestDiskFullChild is the child process of the disk-full tests.
func TestDiskFullChild(t *testing.T) {
	spec := os.Getenv(diskFullEnv)
	if spec == "" {
		t.Skip("child process of the disk-full tests; runs only when re-executed by them")
	}
	f := strings.Fields(spec)
	if err := diskFullChildRun(f[0], f[1], smallfs.Attach(f[2], f[3]), f[4:]); err != nil {
		fmt.Fprintf(os.Stderr, "disk-full child: %v\n", err)
		os.Exit(3)
	}
	os.Exit(0)
}

func diskFullChildRun(mode, dir string, small *smallfs.FS, args []string) error {
	ctx := context.Background()
	start := time.Now()
	opts := []embedded.Option{embedded.WithFS(small.VFS()), embedded.WithCleanupInterval(-1)}
	if mode == "outsider" && args[0] == "interval" {
		opts = append(opts, embedded.WithSyncInterval(100*time.Millisecond))
	}
	b, err := embedded.Open(dir, opts...)
	if err != nil {
		if mode == "open" {
			fmt.Printf("openerr %t %t %v %v\n", errors.Is(err, broker.ErrDiskFull), broker.IsRetryable(err), time.Since(start).Round(time.Millisecond), err)
			return nil
		}
		return err
	}
	fmt.Println("opened")
	switch mode {
	case "open":
		return b.Close()
	case "verify":
		if err := diskFullFound(ctx, b); err != nil {
			return err
		}
		return b.Close()
	case "fill":
		return diskFullFill(ctx, b, args)
	case "outsider":
		return diskFullOutsider(ctx, b, args)
	}
	return fmt.Errorf("unknown mode %q", mode)
}

// diskFullFill produces batches "<prefix><n>" until refused. args[0] is the
// prefix; args[1] says what then: "die" exits without Close, "close"
// closes, "free:<path>" deletes that file, retries the refused batch and
// closes.
func diskFullFill(ctx context.Context, b *embedded.Broker, args []string) error {
	prefix, then := args[0], args[1]
	err := b.CreateTopic(ctx, diskFullTopic, broker.TopicConfig{Partitions: 2, RetentionTime: -1})
	if err != nil && !errors.Is(err, broker.ErrTopicExists) {
		return err
	}
	var refused []broker.Record
	for n := 0; ; n++ {
		id := prefix + strconv.Itoa(n)
		recs := diskFullBatch(id, int32(n%2))
		if err := b.Produce(ctx, recs); err != nil {
			fmt.Printf("full %t %t %v\n", errors.Is(err, broker.ErrDiskFull), broker.IsRetryable(err), err)
			if !errors.Is(err, broker.ErrDiskFull) {
				return err
			}
			refused = recs
			break
		}
		fmt.Printf("ack %d %d %s\n", recs[0].Partition, recs[0].Offset, id)
	}
	err = b.Produce(ctx, diskFullBatch(prefix+"x", 0))
	fmt.Printf("again %t\n", errors.Is(err, broker.ErrDiskFull))
	err = b.CommitOffsets(ctx, "g", map[broker.TopicPartition]int64{{Topic: diskFullTopic}: 1})
	fmt.Printf("commit %v\n", err)
	switch {
	case then == "die":
		os.Exit(0) // as a crash would: the write-ahead log stays unflushed
	case strings.HasPrefix(then, "free:"):
		if err := os.Remove(strings.TrimPrefix(then, "free:")); err != nil {
			return err
		}
		var err error
		for range 50 { // the free space is measured at most every 100 ms
			if err = b.Produce(ctx, refused); !errors.Is(err, broker.ErrDiskFull) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		fmt.Printf("retried %v\n", err)
		if err == nil {
			fmt.Printf("ack %d %d %s\n", refused[0].Partition, refused[0].Offset, string(refused[0].Key[:bytes.IndexByte(refused[0].Key, '/')]))
		}
	}
	err = b.Close()
	fmt.Printf("closed %v\n", err)
	return nil
}

// diskFullFound prints "found <partition> <offset> <id>" for every whole
// batch stored, and fails on a partial or damaged one.
func diskFullFound(ctx context.Context, b *embedded.Broker) error {
	for p := range int32(2) {
		offs, err := b.ListOffsets(ctx, diskFullTopic, p)
		if err != nil {
			return err
		}
		for off := offs.Earliest; off < offs.Latest; {
			recs, err := b.Fetch(ctx, []broker.FetchRequest{{Topic: diskFullTopic, Partition: p, Offset: off}}, broker.FetchOptions{MaxRecords: 4096, MaxBytes: 16 << 20})
			if err != nil {
				return err
			}
			if len(recs) == 0 {
				return fmt.Errorf("partition %d: nothing at offset %d below %d", p, off, offs.Latest)
			}
			for i := 0; i+diskFullRecords <= len(recs); i += diskFullRecords {
				id, _, _ := strings.Cut(string(recs[i].Key), "/")
				want := diskFullBatch(id, p)
				for j := range want {
					r := recs[i+j]
					if !bytes.Equal(r.Key, want[j].Key) || !bytes.Equal(r.Value, want[j].Value) {
						return fmt.Errorf("partition %d offset %d: record %d of batch %s differs", p, r.Offset, j, id)
					}
				}
				fmt.Printf("found %d %d %s\n", p, recs[i].Offset, id)
			}
			if len(recs)%diskFullRecords != 0 {
				return fmt.Errorf("partition %d: %d records from offset %d, not whole batches", p, len(recs), off)
			}
			off = recs[len(recs)-1].Offset + 1
		}
	}
	return nil
}
