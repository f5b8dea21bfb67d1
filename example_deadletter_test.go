package duality_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
)

// Send the payments that cannot be read to the dead-letter topic
// "payments-app-dlq" and go on with the others. Each dead letter is the
// record as the app read it, with headers that say what failed and
// where the record came from; replaying it to its topic and partition
// (here after fixing its value, in a shell with `duality replay`) gets
// it processed.
func ExampleDeadLetterOnError() {
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
	ctx := context.Background()
	for _, topic := range []string{"payments", "payments-cents"} {
		if err := brk.CreateTopic(ctx, topic, broker.TopicConfig{Partitions: 1}); err != nil {
			log.Fatal(err)
		}
	}
	amount := func(n int64) []byte { b, _ := codec.Int64().Append(nil, n); return b }
	if err := brk.Produce(ctx, []broker.Record{
		{Topic: "payments", Key: []byte("ada"), Value: amount(12)},
		{Topic: "payments", Key: []byte("bob"), Value: []byte("12.50"), // not an int64
			Headers: []broker.Header{{Key: "source", Value: []byte("legacy-pos")}}},
		{Topic: "payments", Key: []byte("cy"), Value: amount(7)},
	}); err != nil {
		log.Fatal(err)
	}

	b := stream.NewBuilder()
	payments := stream.From(b, "payments", codec.String(), codec.Int64(), stream.Named("read-payment"))
	stream.MapValues(payments, func(euros int64) int64 { return euros * 100 }).To("payments-cents")
	topo, err := b.Build()
	if err != nil {
		log.Fatal(err)
	}
	app, err := duality.New("payments-app", topo, brk, duality.OnProcessingError(duality.DeadLetterOnError(nil)))
	if err != nil {
		log.Fatal(err)
	}
	if err := app.RunToEnd(ctx); err != nil {
		log.Fatal(err)
	}

	out, err := broker.ReadAll(ctx, brk, "payments-cents")
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range out {
		cents, err := codec.Int64().Decode(r.Value)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("processed %s: %d cents\n", r.Key, cents)
	}
	dead, err := broker.ReadAll(ctx, brk, "payments-app-dlq")
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range dead {
		dl, own, err := duality.ParseDeadLetter(r.Headers)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("dead letter %s=%q from %s/%d@%d, step %s: %s\n", r.Key, r.Value, dl.Topic, dl.Partition, dl.Offset, dl.Step, dl.Error)
		for _, h := range own {
			fmt.Printf("  its own header %s=%s\n", h.Key, h.Value)
		}
	}
	fmt.Println("dead-lettered:", app.Metrics().RecordsDeadLettered)
	// Output:
	// processed ada: 1200 cents
	// processed cy: 700 cents
	// dead letter bob="12.50" from payments/0@1, step read-payment: decode value: codec: invalid encoding: int64 needs 8 bytes, got 5
	//   its own header source=legacy-pos
	// dead-lettered: 1
}
