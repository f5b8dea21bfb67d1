package streamtest_test

import (
	"context"
	"fmt"
	"time"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
	"github.com/duality-streams/duality/window"
)

// Test the final results of a windowed count without a flush record:
// AdvanceToEnd closes every window, as a bounded run does at the end of
// its input.
func ExampleDriver_AdvanceToEnd() {
	b := stream.NewBuilder()
	clicks := stream.GroupByKey(stream.From(b, "clicks", codec.String(), codec.String()))
	window.Count(clicks, window.Tumbling(time.Minute, 30*time.Second), "clicks-per-minute", window.EmitOnWindowClose()).
		ToStream().To("clicks-per-minute")
	topo, err := b.Build()
	if err != nil {
		fmt.Println(err)
		return
	}

	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	d, err := streamtest.New(topo)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()
	ctx := context.Background()
	in := streamtest.Input(d, "clicks", codec.String(), codec.String())
	for _, c := range []struct {
		user string
		at   time.Duration
	}{{"alice", 5 * time.Second}, {"bob", 20 * time.Second}, {"alice", 50 * time.Second}, {"alice", 70 * time.Second}} {
		if err := in.PipeAt(ctx, c.user, "/home", start.Add(c.at)); err != nil {
			fmt.Println(err)
			return
		}
	}
	out := streamtest.Output(d, "clicks-per-minute", window.WindowedCodec(codec.String()), codec.Int64())
	recs, err := out.ReadAll()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(recs), "final results before the end: every window is open")

	if err := d.AdvanceToEnd(ctx); err != nil {
		fmt.Println(err)
		return
	}
	recs, err = out.ReadAll()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range recs {
		fmt.Printf("%s [%s, %s) %d\n", r.Key.Key, r.Key.Start.Format(time.TimeOnly), r.Key.End.Format(time.TimeOnly), r.Value)
	}
	// Output:
	// 0 final results before the end: every window is open
	// alice [12:00:00, 12:01:00) 2
	// bob [12:00:00, 12:01:00) 1
	// alice [12:01:00, 12:02:00) 1
}
