package broker

import "context"

// GroupLag returns how many records of topics group has not consumed yet:
// the sum over their partitions of the latest offset minus the group's
// committed offset (minus the earliest offset where the group has none).
// A group whose work is committed atomically with its offsets (a Duality
// app) has produced every output of what it consumed once its lag is 0.
func GroupLag(ctx context.Context, b Broker, group string, topics ...string) (int64, error) {
	var tps []TopicPartition
	for _, topic := range topics {
		info, err := b.DescribeTopic(ctx, topic)
		if err != nil {
			return 0, err
		}
		for p := range info.Config.Partitions {
			tps = append(tps, TopicPartition{Topic: topic, Partition: p})
		}
	}
	committed, err := b.FetchOffsets(ctx, group, tps)
	if err != nil {
		return 0, err
	}
	var lag int64
	for _, tp := range tps {
		o, err := b.ListOffsets(ctx, tp.Topic, tp.Partition)
		if err != nil {
			return 0, err
		}
		pos, ok := committed[tp]
		if !ok || pos < o.Earliest {
			pos = o.Earliest
		}
		lag += max(o.Latest-pos, 0)
	}
	return lag, nil
}
