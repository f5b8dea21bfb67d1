package duality_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"os"
	"strings"
	"time"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
	"github.com/duality-streams/duality/window"
)

// Interactive queries of a word count while it runs: Get a key, range over
// the partitions this instance owns.
func ExampleQuery() {
	dir, err := os.MkdirTemp("", "query-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	b, err := embedded.Open(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := b.CreateTopic(ctx, "text-lines", broker.TopicConfig{Partitions: 2}); err != nil {
		fmt.Println(err)
		return
	}
	var recs []broker.Record
	for i, line := range []string{"the cat sat", "the dog sat", "a cat"} {
		recs = append(recs, broker.Record{Topic: "text-lines", Partition: broker.PartitionByKey,
			Key: fmt.Appendf(nil, "line-%d", i), Value: []byte(line)})
	}
	if err := b.Produce(ctx, recs); err != nil {
		fmt.Println(err)
		return
	}
	sb := stream.NewBuilder()
	lines := stream.From(sb, "text-lines", codec.String(), codec.String())
	words := stream.FlatMapValues(lines, func(line string) iter.Seq[string] { return strings.FieldsSeq(line) })
	byWord := stream.GroupBy(words, func(_, w string) string { return w })
	table.Count(byWord, "word-counts")
	topo, err := sb.Build()
	if err != nil {
		fmt.Println(err)
		return
	}
	app, err := duality.New("wc", topo, b, duality.CommitInterval(5*time.Millisecond))
	if err != nil {
		fmt.Println(err)
		return
	}
	counts, err := duality.Query(app, "word-counts", codec.String(), codec.Int64())
	if err != nil {
		fmt.Println(err)
		return
	}
	_, _, err = counts.Get(ctx, "cat")
	fmt.Println("before Run:", errors.Is(err, duality.ErrStoreNotReady))

	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	defer func() { cancel(); <-done }()
	// Wait until the five words are counted and committed (the total of
	// the counts is 8).
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		var total int64
		seq, errf := counts.All(ctx)
		for _, n := range seq {
			total += n
		}
		if errf() == nil && total == 8 {
			break
		}
	}
	n, ok, err := counts.Get(ctx, "cat")
	fmt.Println("cat:", n, ok, err)
	seq, errf := counts.Range(ctx, "a", "s")
	for w, n := range seq {
		fmt.Println(w, n)
	}
	fmt.Println("range error:", errf())
	// Output:
	// before Run: true
	// cat: 2 true <nil>
	// a 1
	// cat 2
	// dog 1
	// range error: <nil>
}

// Interactive queries of a windowed aggregation while it runs: the
// clicks of one user per minute over a time range (Fetch), and of every
// user (FetchAll).
func ExampleQueryWindows() {
	dir, err := os.MkdirTemp("", "query-windows-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	b, err := embedded.Open(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := b.CreateTopic(ctx, "clicks", broker.TopicConfig{Partitions: 2}); err != nil {
		fmt.Println(err)
		return
	}
	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	var recs []broker.Record
	for _, c := range []struct {
		user string
		sec  int
	}{{"alice", 5}, {"bob", 20}, {"alice", 40}, {"alice", 70}, {"bob", 125}} {
		recs = append(recs, broker.Record{Topic: "clicks", Partition: broker.PartitionByKey,
			Key: []byte(c.user), Value: []byte("/page"), Timestamp: start.Add(time.Duration(c.sec) * time.Second)})
	}
	if err := b.Produce(ctx, recs); err != nil {
		fmt.Println(err)
		return
	}
	sb := stream.NewBuilder()
	byUser := stream.GroupByKey(stream.From(sb, "clicks", codec.String(), codec.String()))
	// Windows are kept for a day, so that queries can read closed ones.
	perMinute := window.Count(byUser, window.Tumbling(time.Minute, window.NoGrace).WithRetention(24*time.Hour), "clicks-1m")
	topo, err := sb.Build()
	if err != nil {
		fmt.Println(err)
		return
	}
	app, err := duality.New("clicks", topo, b, duality.CommitInterval(5*time.Millisecond))
	if err != nil {
		fmt.Println(err)
		return
	}
	clicks, err := duality.QueryWindows(app, perMinute)
	if err != nil {
		fmt.Println(err)
		return
	}
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	defer func() { cancel(); <-done }()
	from, to := start, start.Add(time.Hour)
	// Wait until the five clicks are counted and committed.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		var total int64
		seq, errf := clicks.FetchAll(ctx, from, to)
		for _, n := range seq {
			total += n
		}
		if errf() == nil && total == 5 {
			break
		}
	}
	seq, errf := clicks.Fetch(ctx, "alice", from, to)
	for w, n := range seq {
		fmt.Printf("%s [%s, %s): %d\n", w.Key, w.Start.UTC().Format("15:04"), w.End.UTC().Format("15:04"), n)
	}
	fmt.Println("fetch error:", errf())
	_, err = duality.Query(app, "clicks-1m", codec.String(), codec.Int64())
	fmt.Println(errors.Is(err, duality.ErrWrongStoreKind))
	// Output:
	// alice [12:00, 12:01): 2
	// alice [12:01, 12:02): 1
	// fetch error: <nil>
	// true
}

// Which instance owns a key: two instances of a word count in one group,
// each advertising an endpoint, and a lookup that sends each Get to the
// instance owning the key, as a query service of your own between
// instances would (package httpquery does this over HTTP).
func ExampleReadOnlyStore_Owner() {
	dir, err := os.MkdirTemp("", "owner-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	b, err := embedded.Open(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := b.CreateTopic(ctx, "text-lines", broker.TopicConfig{Partitions: 4}); err != nil {
		fmt.Println(err)
		return
	}
	var recs []broker.Record
	for i, line := range []string{"the cat sat", "the dog sat", "a cat"} {
		recs = append(recs, broker.Record{Topic: "text-lines", Partition: broker.PartitionByKey,
			Key: fmt.Appendf(nil, "line-%d", i), Value: []byte(line)})
	}
	if err := b.Produce(ctx, recs); err != nil {
		fmt.Println(err)
		return
	}
	sb := stream.NewBuilder()
	lines := stream.From(sb, "text-lines", codec.String(), codec.String())
	words := stream.FlatMapValues(lines, func(line string) iter.Seq[string] { return strings.FieldsSeq(line) })
	byWord := stream.GroupBy(words, func(_, w string) string { return w })
	table.Count(byWord, "word-counts")
	topo, err := sb.Build()
	if err != nil {
		fmt.Println(err)
		return
	}

	// Two instances of the app, as two processes would run them; each
	// store view is reached by its instance's endpoint.
	views := map[string]*duality.ReadOnlyStore[string, int64]{}
	var runs []chan error
	defer func() {
		cancel()
		for _, done := range runs {
			<-done
		}
	}()
	for _, endpoint := range []string{"http://instance-a:8080", "http://instance-b:8080"} {
		app, err := duality.New("wc", topo, b, duality.Endpoint(endpoint), duality.CommitInterval(5*time.Millisecond))
		if err != nil {
			fmt.Println(err)
			return
		}
		if views[endpoint], err = duality.Query(app, "word-counts", codec.String(), codec.Int64()); err != nil {
			fmt.Println(err)
			return
		}
		done := make(chan error, 1)
		go func() { done <- app.Run(ctx) }()
		runs = append(runs, done)
	}

	// get asks instance a which instance owns word, and that instance
	// for its count.
	get := func(word string) (int64, error) {
		o, err := views["http://instance-a:8080"].Owner(word)
		if err != nil {
			return 0, err
		}
		owner, ok := views[o.Endpoint]
		if !ok {
			return 0, fmt.Errorf("%s: owner %q unknown", word, o.Endpoint)
		}
		n, _, err := owner.Get(ctx, word)
		return n, err
	}
	want := map[string]int64{"a": 1, "cat": 2, "dog": 1, "sat": 2, "the": 2}
	// Retry while the group forms and the counts are committed.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		right := 0
		for w, n := range want {
			if got, err := get(w); err == nil && got == n {
				right++
			}
		}
		if right == len(want) {
			break
		}
	}
	for _, w := range []string{"a", "cat", "dog", "sat", "the"} {
		n, err := get(w)
		fmt.Println(w, n, err)
	}
	// Output:
	// a 1 <nil>
	// cat 2 <nil>
	// dog 1 <nil>
	// sat 2 <nil>
	// the 2 <nil>
}
