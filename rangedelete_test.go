package duality_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/topology"
)

// TestWindowedStoreRangeDelete runs a store declared windowed
// (StoreSpec.Retention) whose processor deletes a key range: the changelog
// is compact,delete with the retention plus a day, the range deletion
// writes no changelog record, reads hide the range at once, and the local
// store has applied it at the commit (a restart on the same state dir
// sees it gone). A restore from the changelog alone brings the keys back:
// removing them again is the processor's job.
func TestWindowedStoreRangeDelete(t *testing.T) {
	b := openBroker(t)
	createTopic(t, b, "in", 1)
	createTopic(t, b, "out", 1)
	newApp := func(dir string) *duality.App {
		st := &topology.SubTopology{
			Sources: []topology.Source{{Topic: "in"}},
			Sinks:   []topology.Sink{{Topic: "out"}},
			Stores:  []topology.StoreSpec{{Name: "w", Retention: time.Hour}},
		}
		st.NewTask = func(env topology.TaskEnv) (topology.Processor, error) {
			kv, err := env.Store("w")
			if err != nil {
				return nil, err
			}
			return &procFunc{env: env, process: func(ctx context.Context, env topology.TaskEnv, rec *broker.Record) error {
				switch k, v := string(rec.Key), string(rec.Value); k {
				case "del": // value "start-end"
					start, end, _ := strings.Cut(v, "-")
					return kv.DeleteRange([]byte(start), []byte(end))
				case "dump":
					seq, errf := kv.Range(nil, nil)
					var keys []string
					for k := range seq {
						keys = append(keys, string(k))
					}
					if err := errf(); err != nil {
						return err
					}
					return env.Send(ctx, broker.Record{Topic: env.TopicName("out", false), Partition: 0, Value: []byte(strings.Join(keys, ","))})
				default:
					return kv.Put(rec.Key, rec.Value)
				}
			}}, nil
		}
		topo := wrap(t, &topology.Topology{SubTopologies: []*topology.SubTopology{st}})
		app, err := duality.New("rd", topo, b, duality.StateDir(dir), duality.CommitInterval(time.Millisecond))
		require.NoError(t, err)
		return app
	}
	produce := func(kvs ...string) {
		var recs []broker.Record
		for i := 0; i < len(kvs); i += 2 {
			recs = append(recs, broker.Record{Topic: "in", Key: []byte(kvs[i]), Value: []byte(kvs[i+1])})
		}
		require.NoError(t, b.Produce(t.Context(), recs))
	}
	dumps := func(n int) []string {
		var out []string
		eventually(t, "dump output", func() bool {
			out = values(readTopic(t, b, "out"))
			return len(out) >= n
		})
		return out
	}

	dir := t.TempDir()
	committed := func(n int64) {
		eventually(t, "committed", func() bool {
			off, err := b.FetchOffsets(t.Context(), "rd", []broker.TopicPartition{{Topic: "in", Partition: 0}})
			return err == nil && off[broker.TopicPartition{Topic: "in", Partition: 0}] == n
		})
	}
	produce("k1", "1", "k2", "2", "k3", "3", "k4", "4", "k5", "5")
	stop, _ := runApp(t, newApp(dir))
	committed(5) // the keys are stored
	produce("del", "k2-k4", "dump", "")
	require.Equal(t, []string{"k1,k4,k5"}, dumps(1), "reads hide the range at once")
	committed(7)
	require.NoError(t, stop())

	info, err := b.DescribeTopic(t.Context(), "rd-w-changelog")
	require.NoError(t, err)
	require.Equal(t, broker.CleanupCompactDelete, info.Config.Cleanup)
	require.Equal(t, time.Hour+topology.WindowChangelogExtraRetention, info.Config.RetentionTime)
	logged := readTopic(t, b, "rd-w-changelog")
	require.Len(t, logged, 5, "the range deletion wrote no changelog record")
	for _, r := range logged {
		require.NotNil(t, r.Value, "no tombstones")
	}

	// Same state dir: the local store applied the range deletion.
	produce("dump", "")
	stop, _ = runApp(t, newApp(dir))
	require.Equal(t, "k1,k4,k5", dumps(2)[1])
	require.NoError(t, stop())

	// A fresh state dir restores from the changelog: the keys are back.
	produce("dump", "")
	stop, _ = runApp(t, newApp(t.TempDir()))
	require.Equal(t, "k1,k2,k3,k4,k5", dumps(3)[2])
	require.NoError(t, stop())
}
