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

// The page view counter scales out from one instance to two, each with
// its own state directory. Instance a counts the views of both input
// partitions; when b joins, balance wants one task on b, which has no
// copy of its store: b first warms up a copy from the changelog while a
// keeps the task, then, caught up, asks for a probing rebalance that
// moves the task. Its restore then reads nothing.
func ExampleMaxWarmupReplicas() {
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
	if err := brk.CreateTopic(ctx, "page-views", broker.TopicConfig{Partitions: 2}); err != nil {
		log.Fatal(err)
	}
	if err := brk.CreateTopic(ctx, "view-counts", broker.TopicConfig{Partitions: 1}); err != nil {
		log.Fatal(err)
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
	view := func(user string) {
		in := []broker.Record{{Topic: "page-views", Partition: broker.PartitionByKey, Key: []byte(user), Value: []byte("/home")}}
		if err := brk.Produce(ctx, in); err != nil {
			log.Fatal(err)
		}
		for printed := false; !printed; {
			polled, err := counts.Poll(ctx, time.Second)
			if err != nil {
				log.Fatal(err)
			}
			for _, r := range polled.Records {
				fmt.Printf("%s: %s\n", r.Key, r.Value)
				printed = true
			}
		}
	}
	var restored atomic.Int64 // changelog records instance b's restores read
	start := func(name string) (app *duality.App, stop func()) {
		// The store is tiny: with the default AcceptableRecoveryLag
		// (10000) b would count as caught up and take the task at
		// once, restoring it; 0 makes it warm up first.
		app, err := duality.New("view-counter", topo, brk, duality.StateDir(filepath.Join(dir, name)),
			duality.MaxWarmupReplicas(2), duality.AcceptableRecoveryLag(0), duality.OnRestore(func(p duality.RestoreProgress) {
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
		for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				log.Fatal("timed out")
			}
		}
	}

	a, stopA := start("a")
	defer stopA()
	for _, u := range []string{"ada", "bob", "cy", "ada"} {
		view(u)
	}
	fmt.Println("-- b joins --")
	appB, stopB := start("b")
	defer stopB()
	waitFor(func() bool { return a.Metrics().Tasks == 1 && appB.Metrics().Tasks == 1 })
	m := appB.Metrics()
	fmt.Println("b warmed up, then asked for the move:", m.ProbingRebalances > 0 && m.StandbyRecords > 0)
	for _, u := range []string{"bob", "cy", "ada"} {
		view(u)
	}
	fmt.Println("changelog records b restored:", restored.Load())
	// Output:
	// ada: 1
	// bob: 1
	// cy: 1
	// ada: 2
	// -- b joins --
	// b warmed up, then asked for the move: true
	// bob: 2
	// cy: 2
	// ada: 3
	// changelog records b restored: 0
}
