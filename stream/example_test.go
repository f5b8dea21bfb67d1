package stream_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
)

// Split lines into lower-case words, keep the long ones keyed by word, and
// run the topology with the test driver (no broker needed).
func Example() {
	b := stream.NewBuilder()
	lines := stream.From(b, "text-lines", codec.String(), codec.String())
	words := stream.FlatMapValues(lines, func(line string) iter.Seq[string] {
		return strings.FieldsSeq(strings.ToLower(line))
	})
	long := words.Filter(func(_, w string) bool { return len(w) > 3 })
	byWord := stream.Map(long, func(_, w string) (string, int64) { return w, int64(len(w)) })
	byWord.To("long-words")
	topo, err := b.Build()
	if err != nil {
		fmt.Println(err)
		return
	}

	d, err := streamtest.New(topo)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()
	ctx := context.Background()
	in := streamtest.Input(d, "text-lines", codec.String(), codec.String())
	for _, line := range []string{"The quick brown fox", "jumps over the lazy dog"} {
		if err := in.Pipe(ctx, "", line); err != nil {
			fmt.Println(err)
			return
		}
	}
	out, err := streamtest.Output(d, "long-words", codec.String(), codec.Int64()).ReadKeyValues()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, kv := range out {
		fmt.Println(kv.Key, kv.Value)
	}
	// Output:
	// quick 5
	// brown 5
	// jumps 5
	// over 4
	// lazy 4
}

func ExampleStream_Split() {
	b := stream.NewBuilder()
	events := stream.From(b, "events", codec.String(), codec.String())
	byType := events.Split(stream.Named("by-type"))
	byType.Branch("clicks", func(_, v string) bool { return strings.HasPrefix(v, "click") }).To("clicks")
	byType.Branch("views", func(_, v string) bool { return strings.HasPrefix(v, "view") }).To("views")
	byType.Default().To("unknown-events")
	topo, _ := b.Build()

	d, _ := streamtest.New(topo)
	defer d.Close()
	in := streamtest.Input(d, "events", codec.String(), codec.String())
	for _, e := range []string{"click /home", "view /cart", "scroll /home", "click /cart"} {
		_ = in.Pipe(context.Background(), "user-1", e)
	}
	for _, topic := range []string{"clicks", "views", "unknown-events"} {
		vs, _ := streamtest.Output(d, topic, codec.String(), codec.String()).ReadValues()
		fmt.Printf("%s: %q\n", topic, vs)
	}
	// Output:
	// clicks: ["click /home" "click /cart"]
	// views: ["view /cart"]
	// unknown-events: ["scroll /home"]
}

// dedup forwards a record only when its value differs from the previous
// value of its key in the same task.
type dedup struct {
	pc   stream.ProcessorContext[string, string]
	last map[string]string
}

func (p *dedup) Init(pc stream.ProcessorContext[string, string]) error {
	p.pc, p.last = pc, make(map[string]string)
	return nil
}

func (p *dedup) Process(ctx context.Context, r stream.Record[string, string]) error {
	if r.Value == "" {
		rc := p.pc.RecordContext()
		return fmt.Errorf("empty value at offset %d", rc.Offset)
	}
	if prev, ok := p.last[r.Key]; ok && prev == r.Value {
		return nil
	}
	p.last[r.Key] = r.Value
	return p.pc.Forward(ctx, r)
}

func (p *dedup) Close() error { return nil }

func ExampleProcess() {
	b := stream.NewBuilder()
	in := stream.From(b, "status", codec.String(), codec.String())
	changes := stream.Process(in, func() stream.Processor[string, string, string, string] { return &dedup{} }, stream.Named("dedup"))
	changes.To("status-changes")
	topo, _ := b.Build()

	d, _ := streamtest.New(topo)
	defer d.Close()
	ctx := context.Background()
	status := streamtest.Input(d, "status", codec.String(), codec.String())
	for _, s := range []string{"up", "up", "down", "up"} {
		_ = status.Pipe(ctx, "db", s)
	}
	err := status.Pipe(ctx, "db", "")
	var ne *stream.NodeError
	if errors.As(err, &ne) {
		fmt.Println("failed step:", ne.Node)
	}
	fmt.Println(err)
	vs, _ := streamtest.Output(d, "status-changes", codec.String(), codec.String()).ReadValues()
	fmt.Println(vs)
	// Output:
	// failed step: dedup
	// task 0_0: processing record status/0 at offset 4: step "dedup": empty value at offset 4
	// [up down up]
}

func ExampleTopology_Describe() {
	b := stream.NewBuilder()
	orders := stream.From(b, "orders", codec.String(), codec.Float64())
	big := orders.Filter(func(_ string, amount float64) bool { return amount >= 100 }, stream.Named("big-orders"))
	byAmount := stream.SelectKey(big, func(_ string, amount float64) string { return fmt.Sprintf("%.0f", amount) })
	byAmount.Repartition(stream.Named("by-amount")).
		To("big-orders-by-amount")
	topo, err := b.Build()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(topo.Describe())
	// Output:
	// Topology
	//   Sub-topology 0
	//     Source: source-0 (topics: [orders])
	//       --> big-orders
	//     Processor: big-orders (filter)
	//       --> select-key-2
	//       <-- source-0
	//     Processor: select-key-2
	//       --> by-amount-sink
	//       <-- big-orders
	//     Sink: by-amount-sink (topic: <app-id>-by-amount-repartition)
	//       <-- select-key-2
	//   Sub-topology 1
	//     Source: by-amount-source (topics: [<app-id>-by-amount-repartition])
	//       --> sink-5
	//     Sink: sink-5 (topic: big-orders-by-amount)
	//       <-- by-amount-source
	//   Internal topics
	//     <app-id>-by-amount-repartition (partitions: as many as its writer's sources, cleanup: delete, written by sub-topology 0)
}

func ExampleBuilder_Build() {
	b := stream.NewBuilder()
	s := stream.From(b, "bad topic!", codec.String(), codec.String())
	s.Filter(nil).To("out", stream.WithKeyCodec[string](nil))
	_, err := b.Build()
	fmt.Println(errors.Is(err, stream.ErrNilFunc), errors.Is(err, stream.ErrNilCodec))
	fmt.Println(err)
	// Output:
	// true true
	// filter "filter-1": stream: nil function
	// sink "sink-2": key codec: stream: nil codec
	// source "source-0": broker: invalid topic name: "bad topic!" has character ' ' at position 3; only [a-zA-Z0-9._-] are allowed
}
