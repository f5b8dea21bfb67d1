// Command kfake serves an in-process Kafka cluster (franz-go's kfake) on
// 127.0.0.1 until it is interrupted, so that a Duality app on the Kafka
// backend can be tried, and killed and restarted, with nothing installed:
//
//	go run ./cmd/kfake                       # brokers on 127.0.0.1:9092,9093,9094
//	go run ./examples/wordcount -brokers 127.0.0.1:9092
//
// It prints the brokers' addresses, comma-separated, as its first line on
// standard output once they accept connections (with -ports 0 the ports are
// chosen by the system: read them there). SIGINT or SIGTERM stops it; with
// -data-dir its topics, offsets and groups survive a restart.
//
// kfake is a test cluster, not Kafka: it keeps its log in memory (unless
// -data-dir), answers as one process, and skips some of Kafka's checks
// (see broker/kafka's documentation). Use it to try things and to test, a
// Kafka cluster to run.
//
// One of kfake's gaps the command closes, because killing apps is what it
// is for: a consumer group member whose process dies while its JoinGroup
// waits for the rest of the group can stay in the group for good, holding
// its partitions (kfake starts its session timer only when a response
// reaches it). The command removes every member whose client has been
// gone for longer than its session timeout, as Kafka does.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "kfake:", err)
		os.Exit(2)
	}
}

// config is what the flags say.
type config struct {
	ports          []int
	dataDir        string
	sessionTimeout time.Duration
	logLevel       kfake.LogLevel
}

func parse(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("kfake", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ports := fs.String("ports", "9092,9093,9094", "comma-separated ports of the brokers on 127.0.0.1, one broker each; 0 lets the system choose")
	dataDir := fs.String("data-dir", "", "directory that keeps the cluster's data across restarts (default: memory only)")
	session := fs.Duration("min-session-timeout", time.Second, "smallest group session timeout a client may ask for (Kafka's group.min.session.timeout.ms; kfake's default is 6s): a member killed with -9 holds its partitions that long")
	level := fs.String("log-level", "none", "kfake's log on standard error: none, error, warn, info or debug")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q: every setting is a flag (-h lists them)", fs.Args())
	}
	var cfg config
	for s := range strings.SplitSeq(*ports, ",") {
		p, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || p < 0 || p > 65535 {
			return config{}, fmt.Errorf("-ports: %q is not a port number (0 to 65535)", s)
		}
		cfg.ports = append(cfg.ports, p)
	}
	if *session <= 0 {
		return config{}, fmt.Errorf("-min-session-timeout: %v is not positive", *session)
	}
	cfg.dataDir, cfg.sessionTimeout = *dataDir, *session
	switch strings.ToLower(*level) {
	case "none":
		cfg.logLevel = kfake.LogLevelNone
	case "error":
		cfg.logLevel = kfake.LogLevelError
	case "warn":
		cfg.logLevel = kfake.LogLevelWarn
	case "info":
		cfg.logLevel = kfake.LogLevelInfo
	case "debug":
		cfg.logLevel = kfake.LogLevelDebug
	default:
		return config{}, fmt.Errorf("-log-level: %q is not one of none, error, warn, info, debug", *level)
	}
	return cfg, nil
}

func run(args []string, stdout, stderr io.Writer) error {
	cfg, err := parse(args, stderr)
	if err != nil {
		return err
	}
	// Notify before the cluster listens: a signal that arrives once the
	// addresses are printed stops the cluster cleanly.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)

	logger := kfake.BasicLogger(stderr, cfg.logLevel)
	// Members whose client is gone are removed after their session
	// timeout also where kfake would keep them (see sessions).
	s := newSessions(func(format string, args ...any) { logger.Logf(kfake.LogLevelInfo, format, args...) })
	opts := []kfake.Opt{
		kfake.Ports(cfg.ports...),
		kfake.ListenFn(s.listen),
		kfake.GroupMinSessionTimeout(cfg.sessionTimeout),
		kfake.WithLogger(logger),
	}
	if cfg.dataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.dataDir), kfake.SyncWrites())
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return fmt.Errorf("start cluster: %w", err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		c.Close()
		return fmt.Errorf("start cluster: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	swept := make(chan struct{})
	go func() {
		defer close(swept)
		s.run(ctx, cl)
	}()
	fmt.Fprintln(stdout, strings.Join(c.ListenAddrs(), ","))
	<-sigs
	done := make(chan struct{})
	go func() {
		cancel()
		<-swept
		cl.Close()
		c.Close()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-sigs:
		return errors.New("interrupted twice: stopped before the cluster closed")
	}
}
