package stream_test

import (
	"context"
	"fmt"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
)

// visits is a typed state store, declared once with its codecs.
var visits = stream.NewKeyValueStoreSpec("visits", codec.String(), codec.Int64())

// visitCounter counts the visits of each user in the store visits and
// forwards each user's running count.
type visitCounter struct {
	pc    stream.ProcessorContext[string, int64]
	store *stream.KeyValueStore[string, int64]
}

func (c *visitCounter) Init(pc stream.ProcessorContext[string, int64]) error {
	c.pc = pc
	var err error
	c.store, err = visits.Open(pc)
	return err
}

func (c *visitCounter) Process(ctx context.Context, r stream.Record[string, string]) error {
	n, _, err := c.store.Get(r.Key)
	if err != nil {
		return err
	}
	n++
	if err := c.store.Put(r.Key, n); err != nil {
		return err
	}
	return c.pc.Forward(ctx, stream.Record[string, int64]{Key: r.Key, Value: n})
}

func (c *visitCounter) Close() error { return nil }

// A Process step with a typed store: the store is declared with its
// codecs, given to the step with WithStores and opened in Init.
func ExampleNewKeyValueStoreSpec() {
	b := stream.NewBuilder()
	views := stream.From(b, "page-views", codec.String(), codec.String())
	counts := stream.Process(views, func() stream.Processor[string, string, string, int64] { return &visitCounter{} },
		stream.WithStores(visits))
	counts.To("visit-counts") // the counts' codec, Int64, is codec.For[int64]
	topo, err := b.Build()
	if err != nil {
		fmt.Println(err)
		return
	}

	d, err := streamtest.New(topo)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()
	ctx := context.Background()
	in := streamtest.Input(d, "page-views", codec.String(), codec.String())
	for _, user := range []string{"alice", "bob", "alice", "alice"} {
		if err := in.Pipe(ctx, user, "/home"); err != nil {
			fmt.Println(err)
			return
		}
	}
	out, err := streamtest.Output(d, "visit-counts", codec.String(), codec.Int64()).ReadKeyValues()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(out)
	// Output:
	// [{alice 1} {bob 1} {alice 2} {alice 3}]
}
