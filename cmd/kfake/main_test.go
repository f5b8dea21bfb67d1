package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// build builds the command once per test into a temporary directory.
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kfake")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// start runs the built command with args and returns its brokers'
// addresses (its first line of output) and the running process.
func start(t *testing.T, bin string, args ...string) ([]string, *exec.Cmd) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr // kfake's own errors, if any, show in the test's output
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err, "kfake printed no addresses")
	return strings.Split(strings.TrimSpace(line), ","), cmd
}

// stop sends SIGTERM and requires a clean exit.
func stop(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait(), "kfake must exit 0 on SIGTERM")
}

func admin(t *testing.T, addrs []string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

func TestServesAndStops(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	addrs, cmd := start(t, bin, "-ports", "0,0", "-data-dir", dir)
	require.Len(t, addrs, 2)
	for _, a := range addrs {
		require.True(t, strings.HasPrefix(a, "127.0.0.1:"), "binds 127.0.0.1 only: %s", a)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	adm := admin(t, addrs)
	_, err := adm.CreateTopic(ctx, 3, 1, nil, "kept")
	require.NoError(t, err)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	require.NoError(t, err)
	defer cl.Close()
	require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Topic: "kept", Partition: 0, Value: []byte("v")}).FirstErr())
	stop(t, cmd)

	// With -data-dir the topic and its record survive a restart.
	addrs, cmd = start(t, bin, "-ports", "0", "-data-dir", dir)
	adm = admin(t, addrs)
	ends, err := adm.ListEndOffsets(ctx, "kept")
	require.NoError(t, err)
	var total int64
	ends.Each(func(o kadm.ListedOffset) {
		require.NoError(t, o.Err)
		total += o.Offset
	})
	require.EqualValues(t, 1, total)
	stop(t, cmd)
}

func TestBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-ports", "9092,x"}, `-ports: "x" is not a port number`},
		{[]string{"-ports", "70000"}, `-ports: "70000" is not a port number`},
		{[]string{"-log-level", "loud"}, `-log-level: "loud" is not one of`},
		{[]string{"-min-session-timeout", "0s"}, "-min-session-timeout: 0s is not positive"},
		{[]string{"serve"}, `unexpected arguments ["serve"]`},
		{[]string{"-nope"}, "flag provided but not defined: -nope"},
	} {
		var stderr bytes.Buffer
		err := run(tc.args, os.Stdout, &stderr)
		require.Error(t, err, "%v", tc.args)
		require.Contains(t, err.Error()+stderr.String(), tc.want)
	}
}
