package duality_test

import (
	"context"
	"fmt"
	"log"
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/kafka"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
)

// Count page views per user on Kafka (here an in-process kfake cluster)
// with at-least-once processing: each commit appends the counts and the
// changelog records without a transaction, waits for their
// acknowledgements, then commits the input offsets. Without a crash the
// results are the same as under exactly-once.
func ExampleProcessingGuarantee() {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()
	ctx := context.Background()
	brk, err := kafka.New(ctx, cluster.ListenAddrs())
	if err != nil {
		log.Fatal(err)
	}
	defer brk.Close()
	for _, topic := range []string{"page-views", "views-per-user"} {
		if err := brk.CreateTopic(ctx, topic, broker.TopicConfig{Partitions: 2}); err != nil {
			log.Fatal(err)
		}
	}
	var input []broker.Record
	for _, user := range []string{"ada", "bob", "ada", "cy", "bob", "bob"} {
		input = append(input, broker.Record{Topic: "page-views", Partition: broker.PartitionByKey, Key: []byte(user), Value: []byte("/home")})
	}
	if err := brk.Produce(ctx, input); err != nil {
		log.Fatal(err)
	}

	b := stream.NewBuilder()
	views := stream.From(b, "page-views", codec.String(), codec.String())
	table.Count(stream.GroupByKey(views), "views").ToStream().To("views-per-user")
	topo, err := b.Build()
	if err != nil {
		log.Fatal(err)
	}
	app, err := duality.New("view-counter", topo, brk, duality.ProcessingGuarantee(duality.AtLeastOnce))
	if err != nil {
		log.Fatal(err)
	}
	if err := app.RunToEnd(ctx); err != nil {
		log.Fatal(err)
	}

	counts, err := broker.ReadAll(ctx, brk, "views-per-user")
	if err != nil {
		log.Fatal(err)
	}
	newest := map[string]int64{}
	for _, r := range counts {
		if newest[string(r.Key)], err = codec.Int64().Decode(r.Value); err != nil {
			log.Fatal(err)
		}
	}
	for _, user := range slices.Sorted(maps.Keys(newest)) {
		fmt.Println(user, newest[user])
	}
	fmt.Println(duality.AtLeastOnce)
	// Output:
	// ada 2
	// bob 3
	// cy 1
	// at_least_once
}
