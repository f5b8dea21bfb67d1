package kafka_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/kafka"
)

// Example runs on an in-process kfake cluster; give kafka.New the seed
// brokers of a real cluster instead. It commits records and input offsets
// in one transaction, then reads the records back, read_committed.
func Example() {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()
	ctx := context.Background()

	b, err := kafka.New(ctx, cluster.ListenAddrs())
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	if err := b.CreateTopic(ctx, "input", broker.TopicConfig{Partitions: 1}); err != nil {
		log.Fatal(err)
	}
	if err := b.CreateTopic(ctx, "counts", broker.TopicConfig{Partitions: 1, Cleanup: broker.CleanupCompact}); err != nil {
		log.Fatal(err)
	}

	// One worker's committer: its transactional id is stable across
	// restarts, so a restarted worker fences the old one.
	c, err := b.NewCommitter(ctx, "wordcount-instance-1-0")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	err = c.Commit(ctx, broker.CommitRequest{
		Records: []broker.Record{
			{Topic: "counts", Partition: broker.PartitionByKey, Key: []byte("hello"), Value: []byte("1")},
			{Topic: "counts", Partition: broker.PartitionByKey, Key: []byte("world"), Value: []byte("1")},
		},
		Group:   "wordcount",
		Offsets: map[broker.TopicPartition]int64{{Topic: "input", Partition: 0}: 2},
	})
	if err != nil {
		log.Fatal(err)
	}

	con, err := b.NewConsumer(broker.ConsumerOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer con.Close()
	tp := broker.TopicPartition{Topic: "counts", Partition: 0}
	con.Assign(map[broker.TopicPartition]int64{tp: 0})
	for {
		p, err := con.Poll(ctx, time.Second)
		if err != nil {
			log.Fatal(err)
		}
		for _, r := range p.Records {
			fmt.Printf("%s=%s at offset %d\n", r.Key, r.Value, r.Offset)
		}
		if end, ok := p.Ends[tp]; ok {
			fmt.Println("end:", end, "(the commit marker takes an offset)")
			break
		}
	}
	offsets, err := b.FetchOffsets(ctx, "wordcount", []broker.TopicPartition{{Topic: "input", Partition: 0}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("committed input offset:", offsets[broker.TopicPartition{Topic: "input", Partition: 0}])
	// Output:
	// hello=1 at offset 0
	// world=1 at offset 1
	// end: 3 (the commit marker takes an offset)
	// committed input offset: 2
}
