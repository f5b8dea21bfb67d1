package duality_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
)

// Run a small pipeline on the embedded broker: keep the checkout page
// views, tag them, and write them to another topic.
func Example() {
	dir, err := os.MkdirTemp("", "duality-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	brk, err := embedded.Open(dir)
	if err != nil {
		log.Fatal(err)
	}
	defer brk.Close()

	// External topics are created by the operator, not by the app.
	ctx := context.Background()
	for _, topic := range []string{"page-views", "checkout-views"} {
		if err := brk.CreateTopic(ctx, topic, broker.TopicConfig{Partitions: 2}); err != nil {
			log.Fatal(err)
		}
	}
	var input []broker.Record
	for _, v := range [][2]string{
		{"ada", "/home"}, {"ada", "/checkout"}, {"bob", "/cart"},
		{"bob", "/checkout"}, {"cy", "/checkout/pay"}, {"cy", "/help"},
	} {
		input = append(input, broker.Record{Topic: "page-views", Partition: broker.PartitionByKey, Key: []byte(v[0]), Value: []byte(v[1])})
	}
	if err := brk.Produce(ctx, input); err != nil {
		log.Fatal(err)
	}

	b := stream.NewBuilder()
	views := stream.From(b, "page-views", codec.String(), codec.String())
	checkouts := views.Filter(func(_, page string) bool { return strings.HasPrefix(page, "/checkout") })
	stream.MapValues(checkouts, func(page string) string { return "checkout " + page }).
		To("checkout-views")
	topo, err := b.Build()
	if err != nil {
		log.Fatal(err)
	}

	app, err := duality.New("checkout-tracker", topo, brk)
	if err != nil {
		log.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- app.Run(runCtx) }()

	// Read the output until the three checkout views arrived, then stop
	// the app: Run commits and returns nil.
	out, err := brk.NewConsumer(broker.ConsumerOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer out.Close()
	out.Assign(map[broker.TopicPartition]int64{{Topic: "checkout-views", Partition: 0}: 0, {Topic: "checkout-views", Partition: 1}: 0})
	var lines []string
	for len(lines) < 3 {
		polled, err := out.Poll(ctx, time.Second)
		if err != nil {
			log.Fatal(err)
		}
		for _, r := range polled.Records {
			lines = append(lines, fmt.Sprintf("%s: %s", r.Key, r.Value))
		}
	}
	stop()
	if err := <-done; err != nil {
		log.Fatal(err)
	}
	slices.Sort(lines) // partitions are read concurrently
	for _, l := range lines {
		fmt.Println(l)
	}
	m := app.Metrics()
	fmt.Println("processed", m.RecordsProcessed, "produced", m.RecordsProduced)
	// Output:
	// ada: checkout /checkout
	// bob: checkout /checkout
	// cy: checkout /checkout/pay
	// processed 6 produced 3
}
