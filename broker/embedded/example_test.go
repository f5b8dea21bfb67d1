package embedded_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

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

// A consume-transform-produce step: the output records and the input
// offset are committed together, fenced by the member's generation.
func ExampleBroker_Commit() {
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
	for _, topic := range []string{"in", "out"} {
		if err := b.CreateTopic(ctx, topic, broker.TopicConfig{Partitions: 1}); err != nil {
			log.Fatal(err)
		}
	}
	if err := b.Produce(ctx, []broker.Record{{Topic: "in", Value: []byte("hello")}}); err != nil {
		log.Fatal(err)
	}

	m, err := b.JoinGroup(ctx, "uppercaser", []string{"in"}, broker.JoinOptions{})
	if err != nil {
		log.Fatal(err)
	}
	a := <-m.Assignments()
	in, err := b.Fetch(ctx, []broker.FetchRequest{{Topic: "in", Partition: 0, Offset: 0}}, broker.FetchOptions{})
	if err != nil {
		log.Fatal(err)
	}
	req := broker.CommitRequest{
		Group: "uppercaser", Generation: a.Generation, MemberID: m.MemberID(),
		Offsets: map[broker.TopicPartition]int64{{Topic: "in", Partition: 0}: in[0].Offset + 1},
	}
	for _, r := range in {
		req.Records = append(req.Records, broker.Record{Topic: "out", Value: bytes.ToUpper(r.Value)})
	}
	if err := b.Commit(ctx, req); err != nil {
		log.Fatal(err)
	}

	out, _ := b.Fetch(ctx, []broker.FetchRequest{{Topic: "out", Partition: 0, Offset: 0}}, broker.FetchOptions{})
	offs, _ := b.FetchOffsets(ctx, "uppercaser", []broker.TopicPartition{{Topic: "in", Partition: 0}})
	fmt.Printf("out: %s, next input offset: %d\n", out[0].Value, offs[broker.TopicPartition{Topic: "in", Partition: 0}])

	// After a rebalance the old generation is fenced.
	m2, _ := b.JoinGroup(ctx, "uppercaser", []string{"in"}, broker.JoinOptions{})
	err = b.Commit(ctx, req)
	fmt.Println("stale generation fenced:", errors.Is(err, broker.ErrFenced))
	_ = m2.Leave(ctx)
	_ = m.Leave(ctx)
	// Output:
	// out: HELLO, next input offset: 1
	// stale generation fenced: true
}

// Open reports acknowledged writes that a damaged or missing write-ahead
// log lost, instead of opening without them. Here a copy of a directory is
// taken while its broker runs (as a crash would leave it, the newest writes
// only in the log) and the copy's logs are deleted.
func ExampleLostWritesError() {
	dir, err := os.MkdirTemp("", "duality-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	produce := func(b *embedded.Broker, values ...string) {
		for _, v := range values {
			if err := b.Produce(ctx, []broker.Record{{Topic: "orders", Value: []byte(v)}}); err != nil {
				log.Fatal(err)
			}
		}
	}

	live := filepath.Join(dir, "live")
	b, err := embedded.Open(live, embedded.WithAckRecordSync(true))
	if err != nil {
		log.Fatal(err)
	}
	if err := b.CreateTopic(ctx, "orders", broker.TopicConfig{Partitions: 1}); err != nil {
		log.Fatal(err)
	}
	produce(b, "a", "b")
	if err := b.Close(); err != nil { // flushes: a and b are in sstables
		log.Fatal(err)
	}
	if b, err = embedded.Open(live, embedded.WithAckRecordSync(true)); err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	produce(b, "c", "d", "e") // acknowledged, in the write-ahead log only

	crashed := filepath.Join(dir, "crashed")
	if err := os.CopyFS(crashed, os.DirFS(live)); err != nil {
		log.Fatal(err)
	}
	logs, err := filepath.Glob(filepath.Join(crashed, "*.log"))
	if err != nil {
		log.Fatal(err)
	}
	for _, name := range logs {
		if err := os.Remove(name); err != nil {
			log.Fatal(err)
		}
	}

	c, err := embedded.Open(crashed)
	if err == nil {
		c.Close()
		log.Fatal("the lost writes went unnoticed")
	}
	var lost *embedded.LostWritesError
	if !errors.As(err, &lost) {
		log.Fatal(err)
	}
	fmt.Println("corrupt:", errors.Is(err, broker.ErrCorrupt))
	for _, r := range lost.Partitions {
		fmt.Printf("lost %s/%d offsets [%d, %d)\n", r.Topic, r.Partition, r.From, r.To)
	}
	// Output:
	// corrupt: true
	// lost orders/0 offsets [2, 5)
}

// DescribeGroup shows a consumer group's committed offsets (and, while
// members are joined through this broker, its members): what `duality
// groups describe` prints with the lag.
func ExampleBroker_DescribeGroup() {
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
	if err := b.CreateTopic(ctx, "orders", broker.TopicConfig{Partitions: 1}); err != nil {
		log.Fatal(err)
	}
	orders := make([]broker.Record, 5)
	for i := range orders {
		orders[i] = broker.Record{Topic: "orders", Value: []byte(fmt.Sprint("order-", i))}
	}
	if err := b.Produce(ctx, orders); err != nil {
		log.Fatal(err)
	}
	tp := broker.TopicPartition{Topic: "orders", Partition: 0}
	if err := b.CommitOffsets(ctx, "billing", map[broker.TopicPartition]int64{tp: 3}); err != nil {
		log.Fatal(err)
	}

	groups, err := b.ListGroups(ctx)
	if err != nil {
		log.Fatal(err)
	}
	d, err := b.DescribeGroup(ctx, "billing")
	if err != nil {
		log.Fatal(err)
	}
	offs, err := b.ListOffsets(ctx, "orders", 0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("groups:", groups)
	fmt.Printf("%s: %s, %d members, committed %d, lag %d\n", d.Name, d.State, len(d.Members), d.Offsets[tp], offs.Latest-d.Offsets[tp])
	// Output:
	// groups: [billing]
	// billing: Empty, 0 members, committed 3, lag 2
}
