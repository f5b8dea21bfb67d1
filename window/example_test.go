package window_test

import (
	"context"
	"fmt"
	"time"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
	"github.com/duality-streams/duality/table"
	"github.com/duality-streams/duality/window"
)

// Clicks per user and minute, final results only: each window is emitted
// once, when stream time passes its end plus 10 s of grace. The click at
// 12:00:58 arrives late but within grace and is counted; the one at
// 12:00:30, after the window closed, is dropped and counted as late.
func ExampleCount() {
	b := stream.NewBuilder()
	clicks := stream.From(b, "clicks", codec.String(), codec.String())
	byUser := stream.GroupByKey(clicks)
	stats := new(window.Stats)
	perMinute := window.Count(byUser, window.Tumbling(time.Minute, 10*time.Second), "clicks-1m",
		window.EmitOnWindowClose(), window.WithStats(stats))
	perMinute.ToStream().To("clicks-per-minute")
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
	in := streamtest.Input(d, "clicks", codec.String(), codec.String())
	at := func(hms string) time.Time {
		t, _ := time.Parse(time.TimeOnly, hms)
		return t.AddDate(2026, 0, 0)
	}
	for _, c := range []struct{ user, page, at string }{
		{"alice", "/home", "12:00:05"},
		{"bob", "/home", "12:00:40"},
		{"alice", "/cart", "12:01:03"},
		{"alice", "/home", "12:00:58"}, // out of order, within grace
		{"bob", "/cart", "12:01:30"},   // closes 12:00 (end 12:01 + 10 s)
		{"bob", "/home", "12:00:30"},   // late: dropped
		{"alice", "/pay", "12:02:20"},  // closes 12:01
	} {
		if err := in.PipeAt(ctx, c.user, c.page, at(c.at)); err != nil {
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
	for _, r := range recs {
		fmt.Printf("%s [%s, %s): %d\n", r.Key.Key, r.Key.Start.UTC().Format(time.TimeOnly), r.Key.End.UTC().Format(time.TimeOnly), r.Value)
	}
	fmt.Println("late:", stats.LateRecords())
	// Output:
	// alice [12:00:00, 12:01:00): 2
	// bob [12:00:00, 12:01:00): 1
	// alice [12:01:00, 12:02:00): 1
	// bob [12:01:00, 12:02:00): 1
	// late: 1
}

// The result of a windowed aggregation is a table keyed by windows: here
// the final clicks per user and minute are filtered for busy users
// (two clicks or more) and labelled, with the steps of package table. A
// final result the filter rejects is a tombstone for its window, as for
// every table update a filter rejects.
func Example_tableSteps() {
	b := stream.NewBuilder()
	byUser := stream.GroupByKey(stream.From(b, "clicks", codec.String(), codec.String()))
	perMinute := window.Count(byUser, window.Tumbling(time.Minute, window.NoGrace), "clicks-1m",
		window.EmitOnWindowClose())
	busy := perMinute.Filter(func(_ window.Windowed[string], n int64) bool { return n >= 2 })
	table.MapValues(busy, func(n int64) string { return fmt.Sprintf("busy: %d clicks", n) }).
		ToStream().To("busy-users")
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
	in := streamtest.Input(d, "clicks", codec.String(), codec.String())
	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		user string
		sec  int
	}{{"alice", 5}, {"bob", 20}, {"alice", 40}, {"alice", 70}, {"bob", 125}} {
		if err := in.PipeAt(ctx, c.user, "/page", start.Add(time.Duration(c.sec)*time.Second)); err != nil {
			fmt.Println(err)
			return
		}
	}
	recs, err := streamtest.Output(d, "busy-users", window.WindowedCodec(codec.String()), codec.String()).ReadAll()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range recs {
		w := fmt.Sprintf("%s [%s, %s)", r.Key.Key, r.Key.Start.UTC().Format("15:04"), r.Key.End.UTC().Format("15:04"))
		if r.Tombstone {
			fmt.Println(w, "not busy")
			continue
		}
		fmt.Println(w, r.Value)
	}
	// Output:
	// alice [12:00, 12:01) busy: 2 clicks
	// bob [12:00, 12:01) not busy
	// alice [12:01, 12:02) not busy
}

// User sessions with a 30-minute inactivity gap and 20 minutes of grace
// for late page views: a late view that falls between two sessions merges
// them, and the merged sessions' keys are retracted with tombstones before
// the merged session is emitted.
func ExampleAggregateSessions() {
	b := stream.NewBuilder()
	views := stream.From(b, "page-views", codec.String(), codec.String())
	byUser := stream.GroupByKey(views)
	pages := window.AggregateSessions(byUser, window.Session(30*time.Minute, 20*time.Minute),
		func() int64 { return 0 },
		func(_, _ string, n int64) int64 { return n + 1 },
		func(_ string, a, b int64) int64 { return a + b },
		"sessions")
	pages.ToStream().To("session-pages")
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
	in := streamtest.Input(d, "page-views", codec.String(), codec.String())
	start := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	for _, minute := range []int{0, 10, 50, 30} {
		if err := in.PipeAt(ctx, "alice", "/page", start.Add(time.Duration(minute)*time.Minute)); err != nil {
			fmt.Println(err)
			return
		}
	}
	recs, err := streamtest.Output(d, "session-pages", window.WindowedCodec(codec.String()), codec.Int64()).ReadAll()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range recs {
		span := fmt.Sprintf("%s [%s, %s]", r.Key.Key, r.Key.Start.Format("15:04"), r.Key.End.Add(-time.Millisecond).Format("15:04"))
		if r.Tombstone {
			fmt.Println(span, "retracted")
			continue
		}
		fmt.Println(span, "pages:", r.Value)
	}
	// Output:
	// alice [09:00, 09:00] pages: 1
	// alice [09:00, 09:00] retracted
	// alice [09:00, 09:10] pages: 2
	// alice [09:50, 09:50] pages: 1
	// alice [09:00, 09:10] retracted
	// alice [09:50, 09:50] retracted
	// alice [09:00, 09:50] pages: 4
}

// Ad impressions joined with the clicks on them within 10 minutes after
// the impression: a click joins its impression at once; an impression
// without a click is emitted as such only once no click can still join
// it (10 minutes + 1 minute of grace after it, by stream time).
func ExampleLeftJoin() {
	b := stream.NewBuilder()
	str := codec.String()
	impressions := stream.GroupByKey(stream.From(b, "impressions", str, str))
	clicks := stream.GroupByKey(stream.From(b, "clicks", str, str))
	w := window.JoinTimeDifference(0, time.Minute).After(10 * time.Minute)
	window.LeftJoin(impressions, clicks, w, func(ad, campaign, click string, clicked bool) string {
		if !clicked {
			return campaign + ": no click"
		}
		return campaign + ": clicked by " + click
	}, "impressions-clicks").To("ad-outcomes")
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
	at := func(hm string) time.Time {
		t, _ := time.Parse("15:04", hm)
		return t.AddDate(2026, 0, 0)
	}
	imp := streamtest.Input(d, "impressions", str, str)
	clk := streamtest.Input(d, "clicks", str, str)
	steps := []struct {
		in        *streamtest.InputTopic[string, string]
		ad, v, at string
	}{
		{imp, "ad-1", "spring-sale", "12:00"},
		{imp, "ad-2", "spring-sale", "12:01"},
		{clk, "ad-1", "alice", "12:04"},
		{imp, "ad-3", "new-shoes", "12:30"}, // stream time passes 12:01 + 11 min
	}
	for _, s := range steps {
		if err := s.in.PipeAt(ctx, s.ad, s.v, at(s.at)); err != nil {
			fmt.Println(err)
			return
		}
	}
	kvs, err := streamtest.Output(d, "ad-outcomes", str, str).ReadKeyValues()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, kv := range kvs {
		fmt.Println(kv.Key, kv.Value)
	}
	// Output:
	// ad-1 spring-sale: clicked by alice
	// ad-2 spring-sale: no click
}
