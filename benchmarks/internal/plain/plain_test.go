package plain

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
)

const (
	in         = "in"
	out        = "out"
	partitions = 3
	records    = 2000
)

func openBroker(t *testing.T) broker.Broker {
	t.Helper()
	b, err := embedded.Open(filepath.Join(t.TempDir(), "broker"), embedded.WithCleanupInterval(-1))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	for _, topic := range []string{in, out} {
		require.NoError(t, b.CreateTopic(t.Context(), topic, broker.TopicConfig{Partitions: partitions}))
	}
	var recs []broker.Record
	for i := range records {
		recs = append(recs, broker.Record{Topic: in, Partition: int32(i % partitions), Key: fmt.Appendf(nil, "k%d", i), Value: []byte{byte(i)}})
	}
	require.NoError(t, b.Produce(t.Context(), recs))
	return b
}

// TestRun: every input record is processed once, the output of every
// commit and the flushed records are written, and the group's offsets
// reach the end of every partition, with each guarantee's committer.
func TestRun(t *testing.T) {
	for _, alo := range []bool{false, true} {
		t.Run(fmt.Sprintf("AtLeastOnce=%v", alo), func(t *testing.T) {
			b := openBroker(t)
			flushes := make([]int, 2)
			var misread atomic.Int64 // records a worker read from another's partitions
			err := Run(t.Context(), b, Config{
				Group: "g", Topics: []string{in}, Partitions: partitions, Workers: 2, MaxUncommitted: 300, AtLeastOnce: alo,
				New: func(w int) Worker {
					return Worker{
						Process: func(r broker.Record, o []broker.Record) ([]broker.Record, error) {
							if int(r.Partition)%2 != w {
								misread.Add(1)
							}
							return append(o, broker.Record{Topic: out, Partition: r.Partition, Key: r.Key, Value: r.Value}), nil
						},
						Flush: func(o []broker.Record) []broker.Record {
							flushes[w]++
							return o
						},
					}
				},
			})
			require.NoError(t, err)
			require.Zero(t, misread.Load(), "partition p is read by worker p %% 2")
			got, err := broker.ReadAll(t.Context(), b, out)
			require.NoError(t, err)
			require.Len(t, got, records)
			var tps []broker.TopicPartition
			for p := range int32(partitions) {
				tps = append(tps, broker.TopicPartition{Topic: in, Partition: p})
			}
			offs, err := b.FetchOffsets(t.Context(), "g", tps)
			require.NoError(t, err)
			for _, tp := range tps {
				o, err := b.ListOffsets(t.Context(), in, tp.Partition)
				require.NoError(t, err)
				require.Equal(t, o.Latest, offs[tp], "committed offset of %v", tp)
			}
			require.Greater(t, flushes[0], 1, "worker 0 (two partitions) commits more than once with MaxUncommitted 300")
			require.Positive(t, flushes[1])
		})
	}
}

// TestRunError: an error of Process stops Run and names the record.
func TestRunError(t *testing.T) {
	b := openBroker(t)
	bad := errors.New("bad record")
	err := Run(t.Context(), b, Config{
		Group: "g", Topics: []string{in}, Partitions: partitions,
		New: func(int) Worker {
			return Worker{Process: func(r broker.Record, o []broker.Record) ([]broker.Record, error) {
				if r.Partition == 1 && r.Offset == 5 {
					return o, bad
				}
				return o, nil
			}}
		},
	})
	require.ErrorIs(t, err, bad)
	require.ErrorContains(t, err, "in/1 at 5")

	err = Run(context.Background(), b, Config{Topics: []string{in}, Partitions: 1, New: func(int) Worker { return Worker{} }})
	require.ErrorContains(t, err, "invalid config")
}
