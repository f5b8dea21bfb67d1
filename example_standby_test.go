package duality_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
)

// Two instances of the page view counter, each with its own state
// directory and one standby replica: instance a counts, instance b keeps
// a standby copy of a's store. When a stops, b takes the task over and
// its restore reads nothing: the copy was caught up.
func ExampleNumStandbyReplicas() {
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

	counts, err := brk.NewConsumer(broker.ConsumerOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer counts.Close()
	counts.Assign(map[broker.TopicPartition]int64{{Topic: "view-counts"}: 0})
	view := func(users ...string) {
		var input []broker.Record
		for _, u := range users {
			input = append(input, broker.Record{Topic: "page-views", Key: []byte(u), Value: []byte("/home")})
		}
		if err := brk.Produce(ctx, input); err != nil {
			log.Fatal(err)
		}
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
	}
	var restored atomic.Int64 // changelog records instance b's restores read
	start := func(name string) (app *duality.App, stop func()) {
		app, err := duality.New("view-counter", topo, brk, duality.StateDir(filepath.Join(dir, name)),
			duality.NumStandbyReplicas(1), duality.OnRestore(func(p duality.RestoreProgress) {
				if name == "b" && p.Done {
					restored.Add(p.Restored)
				}
			}))
		if err != nil {
			log.Fatal(err)
		}
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- app.Run(runCtx) }()
		return app, func() {
			cancel()
			if err := <-done; err != nil {
				log.Fatal(err)
			}
		}
	}
	waitFor := func(cond func() bool) {
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				log.Fatal("timed out")
			}
		}
	}

	a, stopA := start("a")
	view("ada", "bob", "ada")
	appB, stopB := start("b")
	defer stopB()
	// b's copy has applied every changelog record a wrote: a's metrics
	// count a commit's records just after the broker has it, changelog
	// records after all of them, so once they count the 3 outputs they
	// count its changelog records too.
	waitFor(func() bool {
		m, ma := appB.Metrics(), a.Metrics()
		return ma.RecordsProduced-ma.ChangelogRecords == 3 &&
			m.StandbyTasks == 1 && m.StandbyLag == 0 && m.StandbyRecords == ma.ChangelogRecords
	})
	fmt.Println("-- a stops, b takes over --")
	stopA()
	view("bob", "ada")
	fmt.Println("changelog records b restored:", restored.Load())
	// Output:
	// ada: 1
	// bob: 1
	// ada: 2
	// -- a stops, b takes over --
	// bob: 2
	// ada: 3
	// changelog records b restored: 0
}
