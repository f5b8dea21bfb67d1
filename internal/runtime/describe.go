package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/topology"
)

// checkTopologyTopic returns an error when the app, which publishes its
// topology's descriptions, also reads or writes its topology topic.
func (a *App) checkTopologyTopic() error {
	if len(a.cfg.Descriptions) == 0 {
		return nil
	}
	if name := topology.TopologyTopic(a.appID); slices.Contains(a.plan.external, name) {
		return fmt.Errorf("%w: topic %q is where the app publishes its topology: give the topic another name", ErrInvalidTopology, name)
	}
	return nil
}

// publishTopology writes the topology's descriptions (Config.Descriptions)
// to the app's topology topic (topology.TopologyTopic), which it creates
// when missing (one partition, compacted): one record per format, keyed
// by the format's name, so that tools that do not link the app (the
// duality command's describe) show the topology of the app as it last
// started. A failure is logged at Warn and the app goes on without it.
func (a *App) publishTopology(ctx context.Context) {
	if len(a.cfg.Descriptions) == 0 {
		return
	}
	topic := topology.TopologyTopic(a.appID)
	err := a.b.CreateTopic(ctx, topic, broker.TopicConfig{Partitions: 1, Cleanup: broker.CleanupCompact})
	if err == nil || errors.Is(err, broker.ErrTopicExists) {
		var recs []broker.Record
		for _, format := range []string{topology.DescriptionText, topology.DescriptionMermaid} {
			if d, ok := a.cfg.Descriptions[format]; ok {
				recs = append(recs, broker.Record{Topic: topic, Partition: 0, Key: []byte(format), Value: []byte(d)})
			}
		}
		err = a.b.Produce(ctx, recs)
	}
	if err != nil && ctx.Err() == nil {
		a.log.Warn("publishing the topology failed: duality describe will not show it", slog.String("topic", topic), slog.Any("error", err))
	}
}
