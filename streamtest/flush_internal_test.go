package streamtest

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/topology"
)

// cachingProc buffers the keys it processes and writes them to its store
// and to "out" only when flushed, as a caching node would. Flush fails
// for the key "bad".
type cachingProc struct {
	env   topology.TaskEnv
	kv    topology.KV
	cache [][]byte
}

func (p *cachingProc) Process(_ context.Context, rec *broker.Record) error {
	p.cache = append(p.cache, rec.Key)
	return nil
}

func (p *cachingProc) Flush(ctx context.Context) error {
	defer func() { p.cache = p.cache[:0] }()
	for _, k := range p.cache {
		if err := p.kv.Put(k, []byte("flushed")); err != nil {
			return err
		}
		if string(k) == "bad" {
			return errors.New("flush failed")
		}
		if err := p.env.Send(ctx, broker.Record{Topic: "out", Partition: broker.PartitionByKey, Key: k, Value: []byte("flushed")}); err != nil {
			return err
		}
	}
	return nil
}

func (p *cachingProc) Timestamp(*broker.Record) (int64, bool) { return 0, false }
func (p *cachingProc) Begin()                                 {}
func (p *cachingProc) Skip()                                  {}
func (p *cachingProc) Close() error                           { return nil }

// TestFlushBeforeEveryCommit checks that the driver flushes a task after
// each record, before logging its state writes, as the runtime flushes
// before every commit.
func TestFlushBeforeEveryCommit(t *testing.T) {
	topo := &topology.Topology{
		SubTopologies: []*topology.SubTopology{{
			Sources: []topology.Source{{Topic: "in"}},
			Sinks:   []topology.Sink{{Topic: "out"}},
			Stores:  []topology.StoreSpec{{Name: "cache"}},
			NewTask: func(env topology.TaskEnv) (topology.Processor, error) {
				kv, err := env.Store("cache")
				if err != nil {
					return nil, err
				}
				return &cachingProc{env: env, kv: kv}, nil
			},
		}},
	}
	d, err := New(wrap(t, topo))
	require.NoError(t, err)
	defer d.Close()
	require.NoError(t, d.PipeRaw(t.Context(), broker.Record{Topic: "in", Partition: broker.PartitionByKey, Key: []byte("a")}))
	require.Len(t, d.Records("out"), 1)
	changelog := d.Records("test-cache-changelog")
	require.Len(t, changelog, 1)
	require.Equal(t, "a", string(changelog[0].Key))
	require.Equal(t, "flushed", string(changelog[0].Value))

	err = d.PipeRaw(t.Context(), broker.Record{Topic: "in", Partition: broker.PartitionByKey, Key: []byte("bad")})
	require.ErrorContains(t, err, "flush failed")
	_, ok, err := d.StoreGet("cache", 0, []byte("bad"))
	require.NoError(t, err)
	require.False(t, ok, "a failed flush undoes the record's state writes")
	require.Len(t, d.Records("test-cache-changelog"), 1)
}
