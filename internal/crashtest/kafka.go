package crashtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/kafka"
)

// Kafka is a kfake cluster (franz-go's Kafka test cluster) of three
// brokers served by cmd/kfake in a process of its own, which outlives the
// children killed; its address is the brokers' addresses, comma-separated.
// Its clients are kafka.Brokers with group timing for quick recovery: a
// killed member's session expires after 2 s (cmd/kfake is started with a
// minimum session timeout of 100 ms; cmd/kfake also removes a member
// killed during a rebalance, which kfake alone can keep), a rebalance
// waits at most 3 s for members to rejoin, and a transaction it left
// open is aborted after 5 s unless its restarted committer fences it
// first. Each client's Kafka client id is "crashtest-<pid>", so that a
// group's description tells the processes of its members apart.
var Kafka Backend = kafkaBackend{}

type kafkaBackend struct{}

func (kafkaBackend) Name() string { return "kafka" }

// startTimeout bounds building cmd/kfake and waiting for its addresses.
const startTimeout = 2 * time.Minute

// Start builds cmd/kfake into a temporary directory, starts it on
// 127.0.0.1 with ports the system chooses and returns the addresses it
// prints first. The cluster is stopped (SIGTERM, then SIGKILL) at the end
// of t.
func (kafkaBackend) Start(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), startTimeout)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "kfake")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/duality-streams/duality/cmd/kfake")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("crashtest: build cmd/kfake: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-ports", "0,0,0", "-min-session-timeout", "100ms", "-log-level", "error")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("crashtest: cmd/kfake: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("crashtest: start cmd/kfake: %v", err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	addrs := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			addrs <- sc.Text()
		}
		close(addrs)
		_, _ = io.Copy(io.Discard, stdout) // the command prints nothing more
		exited <- cmd.Wait()
	}()
	select {
	case addr, ok := <-addrs:
		if !ok || addr == "" {
			t.Fatal("crashtest: cmd/kfake exited without printing its addresses")
		}
		t.Logf("cmd/kfake (pid %d) at %s", cmd.Process.Pid, addr)
		return addr
	case <-ctx.Done():
		t.Fatal("crashtest: cmd/kfake printed no addresses in time")
		return ""
	}
}

// Open returns a kafka.Broker on the cluster at addr.
func (kafkaBackend) Open(addr string) (broker.Broker, error) {
	if addr == "" {
		return nil, errors.New("crashtest: no kafka address")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	copts := []kgo.Opt{
		// The client id names the process, in group descriptions.
		kgo.ClientID(fmt.Sprintf("crashtest-%d", os.Getpid())),
		kgo.SessionTimeout(2 * time.Second),
		kgo.HeartbeatInterval(100 * time.Millisecond),
		kgo.RebalanceTimeout(3 * time.Second),
	}
	if debugLevel() > 0 {
		prefix := fmt.Sprintf("kgo pid %d ", os.Getpid())
		copts = append(copts, kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelInfo, func() string { return prefix })))
	}
	b, err := kafka.New(ctx, strings.Split(addr, ","),
		kafka.WithTransactionTimeout(5*time.Second),
		kafka.WithClientOptions(copts...))
	if err != nil {
		return nil, fmt.Errorf("crashtest: %w", err)
	}
	return b, nil
}
