package kafka

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/duality-streams/duality/broker"
)

// Kafka's topic configuration keys the broker maps to broker.TopicConfig.
const (
	cfgCleanupPolicy   = "cleanup.policy"
	cfgRetentionMs     = "retention.ms"
	cfgRetentionBytes  = "retention.bytes"
	cfgDeleteRetention = "delete.retention.ms"
)

// topicConfigs returns the Kafka configs for cfg. Every field is set
// explicitly, defaults included, so that a topic behaves as
// broker.TopicConfig documents whatever the cluster's defaults are, and
// DescribeTopic reads back what was asked. A compact-only topic without
// a RetentionTime gets retention.ms=-1: no time retention, as on Kafka
// and on the embedded broker, also on clusters (kfake) that would apply
// one.
func topicConfigs(cfg broker.TopicConfig) (map[string]*string, error) {
	if !cfg.Cleanup.Valid() {
		return nil, fmt.Errorf("%w: cleanup policy %d", broker.ErrInvalidConfig, cfg.Cleanup)
	}
	if cfg.DeleteRetention < 0 {
		return nil, fmt.Errorf("%w: negative delete retention %v", broker.ErrInvalidConfig, cfg.DeleteRetention)
	}
	retention := cfg.RetentionTime
	switch {
	case retention == 0 && cfg.Cleanup == broker.CleanupCompact:
		// Kafka applies no time retention to a compact-only topic
		// (nor does the embedded broker), but kfake does: forever
		// keeps a changelog's old records there too.
		retention = -time.Millisecond
	case retention == 0:
		retention = broker.DefaultRetentionTime
	case retention < 0:
		retention = -time.Millisecond
	case retention < time.Millisecond:
		return nil, fmt.Errorf("%w: retention time %v is below Kafka's precision of 1ms", broker.ErrInvalidConfig, retention)
	}
	deleteRetention := cfg.DeleteRetention
	if deleteRetention == 0 {
		deleteRetention = broker.DefaultDeleteRetention
	}
	bytes := cfg.RetentionBytes
	if bytes <= 0 {
		bytes = -1
	}
	s := func(v string) *string { return &v }
	return map[string]*string{
		cfgCleanupPolicy:   s(cfg.Cleanup.String()),
		cfgRetentionMs:     s(strconv.FormatInt(retention.Milliseconds(), 10)),
		cfgRetentionBytes:  s(strconv.FormatInt(bytes, 10)),
		cfgDeleteRetention: s(strconv.FormatInt(deleteRetention.Milliseconds(), 10)),
	}, nil
}

// parseCleanup reads Kafka's cleanup.policy list.
func parseCleanup(v string) (broker.CleanupPolicy, error) {
	var compact, del bool
	for p := range strings.SplitSeq(v, ",") {
		switch strings.TrimSpace(p) {
		case "compact":
			compact = true
		case "delete":
			del = true
		case "":
		default:
			return 0, fmt.Errorf("unknown cleanup policy %q", p)
		}
	}
	switch {
	case compact && del:
		return broker.CleanupCompactDelete, nil
	case compact:
		return broker.CleanupCompact, nil
	}
	return broker.CleanupDelete, nil
}

// CreateTopic creates a topic with cfg's partitions, the broker's
// replication factor (WithReplicationFactor) and cfg's cleanup policy and
// retentions as Kafka topic configs (cleanup.policy, retention.ms,
// retention.bytes, delete.retention.ms), defaults set explicitly. Errors:
// an invalid name matches broker.ErrInvalidTopicName and a partition count
// below 1 broker.ErrInvalidPartitions, both before any request;
// broker.ErrTopicExists; configs the cluster refuses broker.ErrInvalidConfig.
func (b *Broker) CreateTopic(ctx context.Context, name string, cfg broker.TopicConfig) error {
	if err := b.enter(); err != nil {
		return err
	}
	if err := checkTopic(name); err != nil {
		return err
	}
	if cfg.Partitions < 1 {
		return &broker.TopicError{Topic: name, Partition: -1,
			Err: fmt.Errorf("%w: %d partitions, at least 1 needed", broker.ErrInvalidPartitions, cfg.Partitions)}
	}
	configs, err := topicConfigs(cfg)
	if err != nil {
		return &broker.TopicError{Topic: name, Partition: -1, Err: err}
	}
	b.forget(name)
	resp, err := b.adm.CreateTopic(ctx, cfg.Partitions, b.cfg.replicationFactor, configs, name)
	if err == nil {
		err = resp.Err
		if err != nil && resp.ErrMessage != "" {
			err = fmt.Errorf("%w (%s)", err, resp.ErrMessage)
		}
	}
	return b.mapErr(err, name, -1)
}

// DeleteTopic deletes a topic. Kafka deletes its data and, as groups
// notice, the groups' offsets of it. broker.ErrUnknownTopic if it does not
// exist.
func (b *Broker) DeleteTopic(ctx context.Context, name string) error {
	if err := b.enter(); err != nil {
		return err
	}
	if err := checkTopic(name); err != nil {
		return err
	}
	b.forget(name)
	resp, err := b.adm.DeleteTopic(ctx, name)
	if err == nil {
		err = resp.Err
	}
	return b.mapErr(err, name, -1)
}

// ListTopics lists the cluster's topics, internal ones (such as
// __consumer_offsets) excepted, sorted by name, with their configuration.
func (b *Broker) ListTopics(ctx context.Context) ([]broker.TopicInfo, error) {
	if err := b.enter(); err != nil {
		return nil, err
	}
	md, err := b.metadata(ctx, nil)
	if err != nil {
		return nil, err
	}
	partitions := make(map[string]int32, len(md))
	for name, t := range md {
		if t.internal || t.err != nil {
			continue
		}
		partitions[name] = t.partitions
	}
	return b.describe(ctx, partitions)
}

// DescribeTopic returns a topic's partition count and its configuration
// as Kafka reports it (whatever set it). broker.ErrUnknownTopic if it does
// not exist.
func (b *Broker) DescribeTopic(ctx context.Context, name string) (broker.TopicInfo, error) {
	if err := b.enter(); err != nil {
		return broker.TopicInfo{}, err
	}
	if err := checkTopic(name); err != nil {
		return broker.TopicInfo{}, err
	}
	md, err := b.metadata(ctx, []string{name})
	if err != nil {
		return broker.TopicInfo{}, err
	}
	t, ok := md[name]
	if !ok {
		t.err = errUnknownTopic
	}
	if t.err != nil {
		return broker.TopicInfo{}, b.mapErr(t.err, name, -1)
	}
	infos, err := b.describe(ctx, map[string]int32{name: t.partitions})
	if err != nil {
		return broker.TopicInfo{}, err
	}
	return infos[0], nil
}

// describe reads the configs of topics (by name, with their partition
// counts), sorted by name.
func (b *Broker) describe(ctx context.Context, topics map[string]int32) ([]broker.TopicInfo, error) {
	names := slices.Sorted(maps.Keys(topics))
	if len(names) == 0 {
		return []broker.TopicInfo{}, nil
	}
	configs, err := b.adm.DescribeTopicConfigs(ctx, names...)
	if err != nil {
		return nil, b.mapErr(err, "", -1)
	}
	byName := make(map[string]kadm.ResourceConfig, len(configs))
	for _, rc := range configs {
		byName[rc.Name] = rc
	}
	infos := make([]broker.TopicInfo, 0, len(names))
	for _, name := range names {
		rc, ok := byName[name]
		if !ok {
			return nil, b.mapErr(errUnknownTopic, name, -1)
		}
		if rc.Err != nil {
			return nil, b.mapErr(rc.Err, name, -1)
		}
		cfg, err := parseTopicConfig(rc.Configs)
		if err != nil {
			return nil, fmt.Errorf("kafka: topic %q: %w", name, err)
		}
		cfg.Partitions = topics[name]
		infos = append(infos, broker.TopicInfo{Name: name, Config: cfg})
	}
	slices.SortFunc(infos, func(x, y broker.TopicInfo) int { return strings.Compare(x.Name, y.Name) })
	return infos, nil
}

// parseTopicConfig maps Kafka's topic configs back to a TopicConfig
// (without Partitions).
func parseTopicConfig(configs []kadm.Config) (broker.TopicConfig, error) {
	cfg := broker.TopicConfig{
		RetentionTime:   broker.DefaultRetentionTime,
		RetentionBytes:  -1,
		DeleteRetention: broker.DefaultDeleteRetention,
	}
	for _, c := range configs {
		if c.Value == nil {
			continue
		}
		v := *c.Value
		switch c.Key {
		case cfgCleanupPolicy:
			p, err := parseCleanup(v)
			if err != nil {
				return cfg, err
			}
			cfg.Cleanup = p
		case cfgRetentionMs, cfgDeleteRetention, cfgRetentionBytes:
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return cfg, fmt.Errorf("config %s=%q: %w", c.Key, v, err)
			}
			switch c.Key {
			case cfgRetentionMs:
				if n < 0 {
					cfg.RetentionTime = -time.Millisecond
				} else {
					cfg.RetentionTime = time.Duration(n) * time.Millisecond
				}
			case cfgDeleteRetention:
				cfg.DeleteRetention = time.Duration(n) * time.Millisecond
			case cfgRetentionBytes:
				cfg.RetentionBytes = n
			}
		}
	}
	return cfg, nil
}

// forget drops what the broker and its producer know of topic, which is
// being created or deleted: a topic recreated under the same name is
// another topic (another id), which a producer with the old one's state
// could not write to.
func (b *Broker) forget(topic string) {
	b.meta.forget(topic)
	b.produceMu.Lock()
	defer b.produceMu.Unlock()
	b.cl.PurgeTopicsFromClient(topic)
}
