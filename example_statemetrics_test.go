package duality_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
)

// Watch the Pebble database that holds an app's state: what it keeps in
// memory (memtables, block cache) and on disk. Run opens it and closes it,
// so the metrics are there while Run runs.
func ExampleApp_StateMetrics() {
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
	for _, topic := range []string{"clicks", "click-counts"} {
		if err := brk.CreateTopic(ctx, topic, broker.TopicConfig{Partitions: 1}); err != nil {
			log.Fatal(err)
		}
	}
	if err := brk.Produce(ctx, []broker.Record{
		{Topic: "clicks", Key: []byte("ada"), Value: []byte("/home")},
		{Topic: "clicks", Key: []byte("bob"), Value: []byte("/home")},
	}); err != nil {
		log.Fatal(err)
	}

	b := stream.NewBuilder()
	clicks := stream.From(b, "clicks", codec.String(), codec.String())
	table.Count(stream.GroupByKey(clicks), "counts").ToStream().To("click-counts")
	topo, err := b.Build()
	if err != nil {
		log.Fatal(err)
	}
	app, err := duality.New("click-counter", topo, brk, duality.StateDir(filepath.Join(dir, "state")))
	if err != nil {
		log.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- app.Run(runCtx) }()

	// Wait for both counts, then read the state's metrics.
	counts, err := brk.NewConsumer(broker.ConsumerOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer counts.Close()
	counts.Assign(map[broker.TopicPartition]int64{{Topic: "click-counts"}: 0})
	for seen := 0; seen < 2; {
		polled, err := counts.Poll(ctx, time.Second)
		if err != nil {
			log.Fatal(err)
		}
		seen += len(polled.Records)
	}
	m, err := app.StateMetrics()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stores:", m.Stores)
	fmt.Println("memtables:", m.MemTables, "holding data:", m.MemTableBytes > 0)
	fmt.Println("on disk:", m.DiskBytes > 0)

	stop()
	if err := <-done; err != nil {
		log.Fatal(err)
	}
	_, err = app.StateMetrics()
	fmt.Println("after Run:", errors.Is(err, duality.ErrStoreNotReady))
	// Output:
	// stores: 1
	// memtables: 1 holding data: true
	// on disk: true
	// after Run: true
}
