package duality_test

import (
	"context"
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
)

// Count five page views of one user within one commit, with the record
// cache (the default) and without it: with the cache the commit logs the
// user's final count once; without, every write is a changelog record.
func ExampleCacheMaxBytes() {
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

	for _, cache := range []int64{duality.DefaultCacheMaxBytes, 0} {
		var input []broker.Record
		for range 5 {
			input = append(input, broker.Record{Topic: "page-views", Key: []byte("ada"), Value: []byte("/home")})
		}
		if err := brk.Produce(ctx, input); err != nil {
			log.Fatal(err)
		}
		// One commit, at shutdown: the commit interval is long.
		app, err := duality.New("view-counter", topo, brk,
			duality.CacheMaxBytes(cache), duality.CommitInterval(time.Hour))
		if err != nil {
			log.Fatal(err)
		}
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- app.Run(runCtx) }()
		for app.Metrics().RecordsProcessed < 5 {
			time.Sleep(time.Millisecond) // polling a counter, for the example's brevity
		}
		stop()
		if err := <-done; err != nil {
			log.Fatal(err)
		}
		m := app.Metrics()
		fmt.Printf("CacheMaxBytes(%d): %d views, %d changelog records\n", cache, m.RecordsProcessed, m.ChangelogRecords)
	}
	// Output:
	// CacheMaxBytes(10485760): 5 views, 1 changelog records
	// CacheMaxBytes(0): 5 views, 5 changelog records
}
