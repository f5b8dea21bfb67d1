package queries

import (
	"context"
	"fmt"

	"github.com/duality-streams/duality/benchmarks/internal/plain"
	"github.com/duality-streams/duality/benchmarks/nexmark/internal/gen"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
)

// RunPlain is Run for q's ceiling, q.Plain: the same input produced into
// a new embedded broker, then a plain-Go loop over the fetched event
// records (plain.Run: cfg.Workers workers, default GOMAXPROCS, committing
// output and offsets atomically as the DSL run does, every 100 ms or 100k
// records), with no DSL and no runtime, and q's final output read as Run
// reads it, for Check. Wall and CPU time are those of plain.Run.
func RunPlain(ctx context.Context, q Query, cfg RunConfig) (Result, error) {
	if q.Plain == nil {
		return Result{}, fmt.Errorf("queries: %s has no plain-Go ceiling", q.Name)
	}
	return runOn(ctx, q, cfg, func(brk broker.Broker, _ *gen.Generator, cfg RunConfig) (func(context.Context) error, error) {
		return func(ctx context.Context) error {
			return plain.Run(ctx, brk, plain.Config{
				Group: "plain-" + q.Name, Topics: []string{EventsTopic}, Partitions: cfg.Partitions, Workers: cfg.Workers,
				New: func(int) plain.Worker { return plain.Worker{Process: q.Plain} },
			})
		}, nil
	})
}

// plainBids returns the Query.Plain of a stateless query over bids: it
// decodes each event record and, for a bid that f maps to an output
// (ok), appends a record of query's output topic with the output encoded
// by c, keyed, partitioned and timestamped as the DSL's To does
// (the input's key, broker.PartitionByKey, the input's timestamp).
func plainBids[T any](query string, c codec.Codec[T], f func(gen.Bid) (out T, ok bool)) func(broker.Record, []broker.Record) ([]broker.Record, error) {
	ec := gen.EventCodec()
	topic := OutputTopic(query)
	return func(r broker.Record, out []broker.Record) ([]broker.Record, error) {
		e, err := ec.Decode(r.Value)
		if err != nil || e.Kind != gen.KindBid {
			return out, err
		}
		v, ok := f(*e.Bid)
		if !ok {
			return out, nil
		}
		val, err := c.Append(nil, v)
		if err != nil {
			return out, err
		}
		return append(out, broker.Record{Topic: topic, Partition: broker.PartitionByKey, Key: r.Key, Value: val, Timestamp: r.Timestamp}), nil
	}
}
