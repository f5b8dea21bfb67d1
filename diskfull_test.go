package duality_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/internal/smallfs"
	"github.com/duality-streams/duality/store"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
)

const (
	diskFullEnv  = "DUALITY_APP_DISKFULL_CHILD"
	diskFullKeys = 20000
)

// diskFullKey is input key i: long, so that the state grows fast.
func diskFullKey(i int) string { return fmt.Sprintf("user-%0120d", i) }

// TestDiskFullState runs an app whose state store (a count per key, every
// key new) outgrows its 4 MiB tmpfs, in a child process: the app stops
// with an error matching store.ErrDiskFull, no crash, no hang. With the
// file system grown, the next run finishes and every key is counted
// exactly once.
func TestDiskFullState(t *testing.T) {
	if testing.Short() {
		t.Skip("runs child processes; skipped under -short")
	}
	dir := filepath.Join(t.TempDir(), "app")
	mount := func(dir string, size int64) *smallfs.FS {
		require.NoError(t, os.MkdirAll(dir, 0o755))
		fs := smallfs.New(dir, size)
		t.Cleanup(func() { require.NoError(t, fs.Close()) })
		return fs
	}
	logFS := mount(dir, 200<<20)
	state := mount(filepath.Join(dir, "state"), 4<<20)
	t.Logf("file systems: %s, state %s", logFS.Spec(), state.Spec())

	b, err := embedded.Open(filepath.Join(dir, "log"), embedded.WithFS(logFS.VFS()))
	require.NoError(t, err)
	for _, topic := range []string{"in", "counts"} {
		require.NoError(t, b.CreateTopic(t.Context(), topic, broker.TopicConfig{Partitions: 2}))
	}
	recs := make([]broker.Record, 0, 1000)
	for i := range diskFullKeys {
		recs = append(recs, broker.Record{Topic: "in", Key: []byte(diskFullKey(i)), Value: []byte("x")})
		if len(recs) == cap(recs) {
			require.NoError(t, b.Produce(t.Context(), recs))
			recs = recs[:0]
		}
	}
	require.NoError(t, b.Close())

	out := diskFullApp(t, dir, logFS, state)
	require.True(t, strings.HasPrefix(out, "err true "), "the app stops with store.ErrDiskFull: %s", out)
	t.Logf("state store full: %s", out)

	require.NoError(t, state.Resize(100<<20))
	require.Equal(t, "ok", diskFullApp(t, dir, logFS, state))

	b, err = embedded.Open(filepath.Join(dir, "log"), embedded.WithFS(logFS.VFS()))
	require.NoError(t, err)
	defer func() { require.NoError(t, b.Close()) }()
	counts := map[string]int64{}
	for p := range int32(2) {
		offs, err := b.ListOffsets(t.Context(), "counts", p)
		require.NoError(t, err)
		for off := offs.Earliest; off < offs.Latest; {
			got, err := b.Fetch(t.Context(), []broker.FetchRequest{{Topic: "counts", Partition: p, Offset: off}}, broker.FetchOptions{MaxRecords: 10000})
			require.NoError(t, err)
			for _, r := range got {
				n, err := codec.Int64().Decode(r.Value)
				require.NoError(t, err)
				counts[string(r.Key)] = n
			}
			off = got[len(got)-1].Offset + 1
		}
	}
	require.Len(t, counts, diskFullKeys, "every key counted")
	for k, n := range counts {
		require.Equal(t, int64(1), n, "key %s counted once", k)
	}
}

// diskFullApp runs the app in a child process and returns its one line.
func diskFullApp(t *testing.T, dir string, logFS, stateFS *smallfs.FS) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestDiskFullStateChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), diskFullEnv+"="+strings.Join([]string{dir, logFS.Spec(), stateFS.Spec()}, " "))
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGQUIT) } // stacks, then kill
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	require.NoError(t, ctx.Err(), "the app hung; stderr:\n%.20000s", stderr.String())
	require.NoError(t, err, "the app's process did not exit cleanly; stderr:\n%.20000s", stderr.String())
	return strings.TrimSpace(stdout.String())
}

// TestDiskFullStateChild is the child process of TestDiskFullState.
func TestDiskFullStateChild(t *testing.T) {
	spec := os.Getenv(diskFullEnv)
	if spec == "" {
		t.Skip("child process of TestDiskFullState; runs only when re-executed by it")
	}
	f := strings.Fields(spec)
	dir := f[0]
	if err := diskFullRunApp(dir, smallfs.FromSpec(dir, f[1]), smallfs.FromSpec(filepath.Join(dir, "state"), f[2])); err != nil {
		fmt.Printf("err %t %t %v\n", errors.Is(err, store.ErrDiskFull), errors.Is(err, broker.ErrDiskFull), err)
	} else {
		fmt.Println("ok")
	}
	os.Exit(0)
}

func diskFullRunApp(dir string, logFS, stateFS vfs.FS) (err error) {
	b, err := embedded.Open(filepath.Join(dir, "log"), embedded.WithFS(logFS))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, b.Close()) }()
	sb := stream.NewBuilder()
	in := stream.From(sb, "in", codec.String(), codec.String())
	table.Count(stream.GroupByKey(in), "counts").ToStream().To("counts")
	topo, err := sb.Build()
	if err != nil {
		return err
	}
	app, err := duality.New("diskfull", topo, b, duality.StateDir(filepath.Join(dir, "state"), store.WithFS(stateFS)))
	if err != nil {
		return err
	}
	return app.RunToEnd(context.Background())
}
