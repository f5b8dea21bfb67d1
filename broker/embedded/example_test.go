package embedded_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
)

func Example() {
	dir, err := os.MkdirTemp("", "duality-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	b, err := embedded.Open(dir)
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()

	ctx := context.Background()
	if err := b.CreateTopic(ctx, "page-views", broker.TopicConfig{Partitions: 3}); err != nil {
		log.Fatal(err)
	}
	records := []broker.Record{
		{Topic: "page-views", Partition: broker.PartitionByKey, Key: []byte("alice"), Value: []byte("/home")},
		{Topic: "page-views", Partition: broker.PartitionByKey, Key: []byte("alice"), Value: []byte("/cart")},
	}
	if err := b.Produce(ctx, records); err != nil {
		log.Fatal(err)
	}
	p := records[0].Partition // chosen by the key, like Kafka's partitioner

	got, err := b.Fetch(ctx, []broker.FetchRequest{{Topic: "page-views", Partition: p, Offset: 0}}, broker.FetchOptions{})
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range got {
		fmt.Printf("offset %d: %s %s\n", r.Offset, r.Key, r.Value)
	}
	// Output:
	// offset 0: alice /home
	// offset 1: alice /cart
}
