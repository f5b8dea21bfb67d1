package streamtest

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/topology"
)

// TestStoreDeleteRange checks topology.KV.DeleteRange through the driver,
// which runs the runtime's task stores: the range hides stored keys
// and the record's earlier writes at once, later writes of the same
// record stay, the store applies it at the commit, and no changelog
// record is written for it.
func TestStoreDeleteRange(t *testing.T) {
	var dumps []string
	topo := &topology.Topology{
		SubTopologies: []*topology.SubTopology{{
			Sources: []topology.Source{{Topic: "in"}},
			Stores:  []topology.StoreSpec{{Name: "w"}},
			NewTask: func(env topology.TaskEnv) (topology.Processor, error) {
				kv, err := env.Store("w")
				if err != nil {
					return nil, err
				}
				return &funcProc{process: func(_ context.Context, rec *broker.Record) error {
					for _, op := range strings.Fields(string(rec.Value)) {
						switch {
						case strings.HasPrefix(op, "del:"):
							start, end, _ := strings.Cut(op[4:], "-")
							if err := kv.DeleteRange([]byte(start), []byte(end)); err != nil {
								return err
							}
						case op == "dump":
							seq, errf := kv.Range(nil, nil)
							var keys []string
							for k := range seq {
								keys = append(keys, string(k))
							}
							if err := errf(); err != nil {
								return err
							}
							_, ok, err := kv.Get([]byte("b"))
							if err != nil {
								return err
							}
							dumps = append(dumps, strings.Join(keys, ",")+map[bool]string{true: " b", false: ""}[ok])
						default:
							if err := kv.Put([]byte(op), []byte("v")); err != nil {
								return err
							}
						}
					}
					return nil
				}}, nil
			},
		}},
	}
	d, err := New(wrap(t, topo))
	require.NoError(t, err)
	defer d.Close()
	pipe := func(ops string) {
		require.NoError(t, d.PipeRaw(t.Context(), broker.Record{Topic: "in", Partition: 0, Value: []byte(ops)}))
	}
	pipe("a b c d")
	pipe("e del:b-d f bb dump") // f after the range stays; bb is written after it
	pipe("dump")
	require.Equal(t, []string{"a,bb,d,e,f", "a,bb,d,e,f"}, dumps)
	var logged []string
	for _, r := range d.Records("test-w-changelog") {
		logged = append(logged, string(r.Key))
	}
	// One commit per record, each store's records of a commit in key
	// order (the runtime's record cache, indexed by the driver).
	require.Equal(t, []string{"a", "b", "c", "d", "bb", "e", "f"}, logged, "no changelog record for the range")
	var stored []string
	seq, errf := d.StoreAll("w", 0)
	for k := range seq {
		stored = append(stored, string(k))
	}
	require.NoError(t, errf())
	require.Equal(t, []string{"a", "bb", "d", "e", "f"}, stored)
}

type funcProc struct {
	process func(context.Context, *broker.Record) error
}

func (p *funcProc) Process(ctx context.Context, rec *broker.Record) error { return p.process(ctx, rec) }
func (p *funcProc) Timestamp(*broker.Record) (int64, bool)                { return 0, false }
func (p *funcProc) Begin()                                                {}
func (p *funcProc) Skip()                                                 {}
func (p *funcProc) Flush(context.Context) error                           { return nil }
func (p *funcProc) Close() error                                          { return nil }
