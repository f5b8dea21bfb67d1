package streamtest_test

import (
	"context"
	"fmt"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
)

// visitCounter counts visits per user in the store "visits".
type visitCounter struct {
	pc    stream.ProcessorContext[string, int64]
	store stream.BytesStore
}

func (c *visitCounter) Init(pc stream.ProcessorContext[string, int64]) error {
	c.pc = pc
	var err error
	c.store, err = pc.Store("visits")
	return err
}

func (c *visitCounter) Process(ctx context.Context, r stream.Record[string, string]) error {
	n := int64(0)
	raw, ok, err := c.store.Get([]byte(r.Key))
	if err != nil {
		return err
	}
	if ok {
		if n, err = codec.Int64().Decode(raw); err != nil {
			return err
		}
	}
	n++
	val, err := codec.Int64().Append(nil, n)
	if err != nil {
		return err
	}
	if err := c.store.Put([]byte(r.Key), val); err != nil {
		return err
	}
	return c.pc.Forward(ctx, stream.Record[string, int64]{Key: r.Key, Value: n})
}

func (c *visitCounter) Close() error { return nil }

// Test a stateful Process step: a per-key counter over two partitions.
// The store's state and its changelog topic are checked directly.
func ExampleStore() {
	b := stream.NewBuilder()
	visits := stream.From(b, "page-views", codec.String(), codec.String())
	stream.Process(visits, func() stream.Processor[string, string, string, int64] { return &visitCounter{} },
		stream.WithStores(stream.BytesStoreSpec("visits"))).
		To("visit-counts")
	topo, err := b.Build()
	if err != nil {
		fmt.Println(err)
		return
	}

	d, err := streamtest.New(topo, streamtest.AppID("shop"), streamtest.DefaultPartitions(2))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()
	ctx := context.Background()
	in := streamtest.Input(d, "page-views", codec.String(), codec.String())
	for _, user := range []string{"alice", "bob", "alice", "carol", "alice", "bob"} {
		if err := in.Pipe(ctx, user, "/home"); err != nil {
			fmt.Println(err)
			return
		}
	}

	// The store's keys are the input's keys, so Get finds their partition.
	counts := streamtest.Store(d, "visits", codec.String(), codec.Int64())
	n, _, err := counts.Get("alice")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("alice:", n)
	all, err := counts.All() // by partition, then key
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("state:", all)
	changelog, err := streamtest.Output(d, "shop-visits-changelog", codec.String(), codec.Int64()).ReadAll()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range changelog {
		fmt.Printf("changelog partition=%d offset=%d %s=%d\n", r.Partition, r.Offset, r.Key, r.Value)
	}
	// Output:
	// alice: 3
	// state: [{bob 2} {carol 1} {alice 3}]
	// changelog partition=1 offset=0 alice=1
	// changelog partition=0 offset=0 bob=1
	// changelog partition=1 offset=1 alice=2
	// changelog partition=0 offset=1 carol=1
	// changelog partition=1 offset=2 alice=3
	// changelog partition=0 offset=2 bob=2
}
