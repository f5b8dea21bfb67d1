package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/broker/kafka"
)

// cli holds what every subcommand shares: the streams and the global
// flags.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer

	dir     string
	brokers string
	timeout time.Duration

	// started is set once a command's own code runs: errors before it
	// come from parsing the command line.
	started bool
}

func (c *cli) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "duality",
		Short: "Inspect and feed Duality's logs: an embedded data directory or a Kafka cluster",
		Long: `duality works on the log of a Duality app: an embedded data directory
(--dir, the directory the app gives embedded.Open) or a Kafka cluster
(--brokers). It lists, creates, describes and deletes topics, produces
records from standard input, consumes them as JSON lines, replays dead
letters, shows consumer groups with their lag and an app's topology, and
mirrors topics to another log (mirror --to-dir or --to-brokers).

An embedded data directory is open in one process at a time: stop the app
before pointing duality at its directory.`,
		SilenceUsage:      true,
		SilenceErrors:     true,
		CompletionOptions: cobra.CompletionOptions{HiddenDefaultCmd: true},
		PersistentPreRun:  func(*cobra.Command, []string) { c.started = true },
	}
	f := root.PersistentFlags()
	f.StringVar(&c.dir, "dir", "", "embedded data directory (the directory the app gives embedded.Open)")
	f.StringVar(&c.brokers, "brokers", "", "Kafka brokers, host:port,... (some of the cluster's)")
	f.DurationVar(&c.timeout, "timeout", 30*time.Second, "bound on reaching the Kafka cluster")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	root.AddCommand(c.topicsCommand(), c.produceCommand(), c.consumeCommand(), c.replayCommand(), c.mirrorCommand(), c.groupsCommand(), c.describeCommand())
	return root
}

// openMode says whether a command may create a missing data directory.
type openMode bool

const (
	existing  openMode = false
	mayCreate openMode = true
)

// withBroker opens the broker the global flags name, runs fn with it and
// closes it.
func (c *cli) withBroker(ctx context.Context, mode openMode, fn func(broker.Broker) error) (err error) {
	b, err := c.open(ctx, mode)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := b.Close(); cerr != nil && !errors.Is(cerr, broker.ErrClosed) {
			err = errors.Join(err, fmt.Errorf("close: %w", cerr))
		}
	}()
	return fn(b)
}

// open opens the embedded broker of --dir or connects to the cluster of
// --brokers.
func (c *cli) open(ctx context.Context, mode openMode) (broker.Broker, error) {
	switch {
	case c.dir != "" && c.brokers != "":
		return nil, usagef("--dir and --brokers exclude each other: give one")
	case c.dir == "" && c.brokers == "":
		return nil, usagef("no log given: use --dir DIR (an embedded data directory) or --brokers host:port,... (a Kafka cluster)")
	case c.timeout <= 0:
		return nil, usagef("--timeout %v: must be positive", c.timeout)
	case c.dir != "":
		return openDir(c.dir, mode)
	}
	seeds, err := parseBrokers(c.brokers)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	return kafka.New(cctx, seeds)
}

// identityFile marks a data directory; see package broker/embedded.
const identityFile = "duality.identity"

// openDir opens the embedded data directory dir. A directory that is
// missing, or is not a data directory, is an error rather than a new
// empty log, unless mode allows creating it.
func openDir(dir string, mode openMode) (broker.Broker, error) {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist) && mode == mayCreate:
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("data directory %s does not exist", dir)
	case err != nil:
		return nil, fmt.Errorf("data directory %s: %w", dir, err)
	case !fi.IsDir():
		return nil, fmt.Errorf("data directory %s is not a directory", dir)
	case mode == existing:
		if _, err := os.Stat(filepath.Join(dir, identityFile)); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("%s is not a Duality data directory (it has no %s): give the directory your app passes to embedded.Open", dir, identityFile)
			}
			return nil, fmt.Errorf("data directory %s: %w", dir, err)
		}
	}
	// No background retention or compaction: the tool looks and writes
	// what it is told, nothing more.
	b, err := embedded.Open(dir, embedded.WithCleanupInterval(-1))
	if err != nil {
		return nil, err
	}
	return b, nil
}

// parseBrokers splits host:port,host:port.
func parseBrokers(s string) ([]string, error) {
	var seeds []string
	for a := range strings.SplitSeq(s, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" || port == "" {
			return nil, usagef("--brokers: %q is not host:port", a)
		}
		seeds = append(seeds, a)
	}
	if len(seeds) == 0 {
		return nil, usagef("--brokers: no address in %q", s)
	}
	return seeds, nil
}
