package duality_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
)

// viewCounter counts page views per user in the store "views" and
// forwards each user's running count.
type viewCounter struct {
	pc    stream.ProcessorContext[string, string]
	views stream.BytesStore
}

func (c *viewCounter) Init(pc stream.ProcessorContext[string, string]) (err error) {
	c.pc = pc
	c.views, err = pc.Store("views")
	return err
}

func (c *viewCounter) Process(ctx context.Context, rec stream.Record[string, string]) error {
	n := 0
	if v, ok, err := c.views.Get([]byte(rec.Key)); err != nil {
		return err
	} else if ok {
		n, _ = strconv.Atoi(string(v))
	}
	n++
	if err := c.views.Put([]byte(rec.Key), strconv.AppendInt(nil, int64(n), 10)); err != nil {
		return err
	}
	return c.pc.Forward(ctx, stream.Record[string, string]{Key: rec.Key, Value: strconv.Itoa(n)})
}

func (c *viewCounter) Close() error { return nil }

// Count page views per user with a state store kept in Pebble. The second
// run continues the counts: its store resumes from the state directory
// and catches up from the changelog topic "view-counter-views-changelog".
func Example_stateStore() {
	dir, err := os.MkdirTemp("", "duality-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	brk, err := embedded.Open(filepath.Join(dir, "broker"))
	if err != nil {
		log.Fatal(err)
	}
	defer brk.Close()
	ctx := context.Background()
	for _, topic := range []string{"page-views", "view-counts"} {
		if err := brk.CreateTopic(ctx, topic, broker.TopicConfig{Partitions: 1}); err != nil {
			log.Fatal(err)
		}
	}

	b := stream.NewBuilder()
	views := stream.From(b, "page-views", codec.String(), codec.String())
	stream.Process(views, func() stream.Processor[string, string, string, string] { return &viewCounter{} },
		stream.WithStores(stream.BytesStoreSpec("views"))).
		To("view-counts")
	topo, err := b.Build()
	if err != nil {
		log.Fatal(err)
	}

	// A consumer of view-counts prints what each run adds.
	counts, err := brk.NewConsumer(broker.ConsumerOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer counts.Close()
	counts.Assign(map[broker.TopicPartition]int64{{Topic: "view-counts"}: 0})
	run := func(users ...string) {
		var input []broker.Record
		for _, u := range users {
			input = append(input, broker.Record{Topic: "page-views", Key: []byte(u), Value: []byte("/home")})
		}
		if err := brk.Produce(ctx, input); err != nil {
			log.Fatal(err)
		}
		app, err := duality.New("view-counter", topo, brk, duality.StateDir(filepath.Join(dir, "state")))
		if err != nil {
			log.Fatal(err)
		}
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- app.Run(runCtx) }()
		for printed := 0; printed < len(users); {
			polled, err := counts.Poll(ctx, time.Second)
			if err != nil {
				log.Fatal(err)
			}
			for _, r := range polled.Records {
				fmt.Printf("%s: %s\n", r.Key, r.Value)
				printed++
			}
		}
		stop()
		if err := <-done; err != nil {
			log.Fatal(err)
		}
	}
	run("ada", "bob", "ada")
	fmt.Println("-- restart --")
	run("bob", "ada")
	// Output:
	// ada: 1
	// bob: 1
	// ada: 2
	// -- restart --
	// bob: 2
	// ada: 3
}
