package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/duality-streams/duality/benchmarks/internal/plain"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
)

// plainGroup is the group whose offsets the ceiling of workload w commits.
func plainGroup(w string) string { return "plain-" + strings.ToLower(w) }

// plainChangelog is the changelog topic of W2's ceiling.
func plainChangelog(w string) string { return plainGroup(w) + "-" + storeName + "-changelog" }

// hasCeiling says which workloads have a plain-Go ceiling: the stateless
// one (W1, where issue 12 sets the DSL a target of 0.7 of it) and the
// keyed count (W2).
func hasCeiling(w string) bool { return w == W1 || w == W2 }

// runPlain runs the ceiling of workload w over c (input written): a
// plain-Go loop over the records fetched from the same broker, with no
// DSL and no runtime (plain.Run): the same commits of output, changelog
// records and input offsets as Duality's default (atomic, every 100 ms
// or 100k records), the same codec work, but no tasks, no group join,
// no state store and no record cache. W1 decodes each value, drops the
// multiples of 3 and writes 2v+1 under the record's key; W2 counts per
// key in a Go map and writes, at each commit, one changelog record per
// key changed since the last (what Duality's record cache writes), to
// the partition of its input. It is measured from the start of
// plain.Run (W2: from the creation of its changelog topic, which
// Duality's run also makes) until every input offset is committed. The
// checksum is the output topic's (W1) or the newest value per key of the
// changelog (W2).
func runPlain(ctx context.Context, c *cluster, w string, s sizes) (measured, checksum, error) {
	vc := codec.Int64()
	var newWorker func(int) plain.Worker
	switch w {
	case W1:
		newWorker = func(int) plain.Worker {
			return plain.Worker{Process: func(r broker.Record, out []broker.Record) ([]broker.Record, error) {
				v, err := vc.Decode(r.Value)
				if err != nil || v%3 == 0 {
					return out, err
				}
				val, err := vc.Append(make([]byte, 0, 8), 2*v+1)
				return append(out, broker.Record{Topic: outputTopic, Partition: broker.PartitionByKey,
					Key: r.Key, Value: val, Timestamp: r.Timestamp}), err
			}}
		}
	case W2:
		changelog := plainChangelog(w)
		newWorker = func(int) plain.Worker { return newPlainCount(changelog).worker() }
	default:
		return measured{}, checksum{}, fmt.Errorf("workload %s has no plain-Go ceiling", w)
	}
	m := startMeasure()
	if w == W2 {
		err := c.b.CreateTopic(ctx, plainChangelog(w), broker.TopicConfig{Partitions: int32(s.Partitions), Cleanup: broker.CleanupCompact})
		if err != nil {
			return measured{}, checksum{}, err
		}
	}
	err := plain.Run(ctx, c.b, plain.Config{Group: plainGroup(w), Topics: []string{inputTopic},
		Partitions: s.Partitions, New: newWorker})
	if err != nil {
		return measured{}, checksum{}, err
	}
	run := m.stop()
	var sum checksum
	switch w {
	case W1:
		sum, err = readChecksum(ctx, c.b, outputTopic, streamChecksum)
	case W2:
		sum, err = readChecksum(ctx, c.b, plainChangelog(w), tableChecksum)
	}
	return run, sum, err
}

// plainCount is one worker's keyed count in W2's ceiling.
type plainCount struct {
	changelog string
	counts    map[string]*plainEntry
	dirty     []*plainEntry // changed since the last commit, each once
}

type plainEntry struct {
	key       string
	n         int64
	partition int32
	dirty     bool
}

func newPlainCount(changelog string) *plainCount {
	return &plainCount{changelog: changelog, counts: map[string]*plainEntry{}}
}

func (pc *plainCount) worker() plain.Worker {
	vc := codec.Int64()
	return plain.Worker{
		Process: func(r broker.Record, out []broker.Record) ([]broker.Record, error) {
			if _, err := vc.Decode(r.Value); err != nil { // the source's decoding, as Duality's
				return out, err
			}
			e := pc.counts[string(r.Key)]
			if e == nil {
				e = &plainEntry{key: string(r.Key), partition: r.Partition}
				pc.counts[e.key] = e
			}
			e.n++
			if !e.dirty {
				e.dirty = true
				pc.dirty = append(pc.dirty, e)
			}
			return out, nil
		},
		Flush: func(out []broker.Record) []broker.Record {
			for _, e := range pc.dirty {
				val, _ := vc.Append(make([]byte, 0, 8), e.n) // cannot fail
				out = append(out, broker.Record{Topic: pc.changelog, Partition: e.partition, Key: []byte(e.key), Value: val})
				e.dirty = false
			}
			clear(pc.dirty)
			pc.dirty = pc.dirty[:0]
			return out
		},
	}
}
