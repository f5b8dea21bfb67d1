// Package exbroker gives every example the same choice of broker: its
// embedded broker by default, a Kafka cluster with -brokers, or an
// in-process kfake cluster, started for the run, with -kfake. The topology
// and everything else an example does stay the same: only the constructor
// of the broker.Broker changes.
package exbroker

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/broker/kafka"
)

// ConnectTimeout bounds how long Open waits for a Kafka cluster to answer.
const ConnectTimeout = 15 * time.Second

// Flags are the flags that choose an example's broker.
type Flags struct {
	brokers string
	kfake   bool
}

// Register defines -brokers and -kfake on fs and returns where their
// values go.
func Register(fs *flag.FlagSet) *Flags {
	f := &Flags{}
	fs.StringVar(&f.brokers, "brokers", "", "run on the Kafka cluster reached at these comma-separated host:port addresses, instead of the embedded broker")
	fs.BoolVar(&f.kfake, "kfake", false, "run on an in-process kfake cluster (franz-go's Kafka test cluster) started for the run on 127.0.0.1, instead of the embedded broker")
	return f
}

// Kafka reports whether the flags choose a Kafka cluster (-brokers or
// -kfake).
func (f *Flags) Kafka() bool { return f.brokers != "" || f.kfake }

// Broker is the broker Open returned, with what to say about it.
type Broker struct {
	broker.Broker
	// Where names where the topics live, for messages: "in <dir>", "on
	// the Kafka cluster at <addresses>", "on the in-process kfake
	// cluster at <addresses>".
	Where string
	close func() error
}

// Close closes the broker, then stops the kfake cluster Open started, if
// any.
func (b *Broker) Close() error { return b.close() }

// Open returns the broker the flags choose: the embedded broker with its
// log in logDir (created if missing), a kafka.Broker on the cluster of
// -brokers, or one on a kfake cluster of three brokers it starts on
// 127.0.0.1 for -kfake. It fails when both -brokers and -kfake are given,
// when an address of -brokers is not host:port, and when the cluster
// does not answer within ConnectTimeout. logger receives the broker's
// log.
func (f *Flags) Open(ctx context.Context, logDir string, logger *slog.Logger) (*Broker, error) {
	switch {
	case f.brokers != "" && f.kfake:
		return nil, errors.New("-brokers and -kfake exclude each other: give one")
	case f.kfake:
		c, err := kfake.NewCluster(kfake.NumBrokers(3), // on 127.0.0.1, ports the system chooses
			// Members of the example's group rebalance within a heartbeat
			// (kfake's default minimum session timeout is 6 s).
			kfake.GroupMinSessionTimeout(100*time.Millisecond))
		if err != nil {
			return nil, fmt.Errorf("start kfake: %w", err)
		}
		b, err := openKafka(ctx, c.ListenAddrs(), logger, quickGroups)
		if err != nil {
			c.Close()
			return nil, err
		}
		return &Broker{Broker: b, Where: "on the in-process kfake cluster at " + strings.Join(c.ListenAddrs(), ","),
			close: func() error {
				err := b.Close()
				c.Close()
				return err
			}}, nil
	case f.brokers != "":
		seeds, err := parseAddrs(f.brokers)
		if err != nil {
			return nil, err
		}
		b, err := openKafka(ctx, seeds, logger)
		if err != nil {
			return nil, err
		}
		return &Broker{Broker: b, Where: "on the Kafka cluster at " + strings.Join(seeds, ","), close: b.Close}, nil
	default:
		b, err := embedded.Open(logDir, embedded.WithLogger(logger))
		if err != nil {
			return nil, err
		}
		return &Broker{Broker: b, Where: "in " + logDir, close: b.Close}, nil
	}
}

// quickGroups makes a group on the in-process cluster notice a member
// leaving or joining within a heartbeat; the defaults are for real
// clusters.
var quickGroups = kafka.WithClientOptions(
	kgo.SessionTimeout(10*time.Second),
	kgo.HeartbeatInterval(50*time.Millisecond),
	kgo.RebalanceTimeout(10*time.Second),
)

func openKafka(ctx context.Context, seeds []string, logger *slog.Logger, opts ...kafka.Option) (*kafka.Broker, error) {
	ctx, cancel := context.WithTimeout(ctx, ConnectTimeout)
	defer cancel()
	b, err := kafka.New(ctx, seeds, append([]kafka.Option{kafka.WithLogger(logger)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("-brokers: %w", err)
	}
	return b, nil
}

// parseAddrs splits the value of -brokers into host:port addresses.
func parseAddrs(s string) ([]string, error) {
	var addrs []string
	for a := range strings.SplitSeq(s, ",") {
		a = strings.TrimSpace(a)
		if host, port, err := net.SplitHostPort(a); err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("-brokers: %q is not a host:port address", a)
		}
		addrs = append(addrs, a)
	}
	return addrs, nil
}

// CreateTopics creates the topics with the given number of partitions. A
// topic a kept data directory already holds keeps its number, which must
// be partitions if explicit (-partitions was given); where says where
// the topics live, for the error.
func CreateTopics(ctx context.Context, b broker.Broker, where string, partitions int, explicit bool, topics ...string) error {
	for _, topic := range topics {
		err := b.CreateTopic(ctx, topic, broker.TopicConfig{Partitions: int32(partitions)})
		if errors.Is(err, broker.ErrTopicExists) && !explicit {
			continue
		}
		if errors.Is(err, broker.ErrTopicExists) {
			info, err := b.DescribeTopic(ctx, topic)
			if err != nil {
				return err
			}
			if info.Config.Partitions != int32(partitions) {
				return fmt.Errorf("topic %q %s has %d partitions, not %d (-partitions): a topic keeps its partition count",
					topic, where, info.Config.Partitions, partitions)
			}
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// FlagSet reports whether the flag name was given on the command line.
func FlagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
