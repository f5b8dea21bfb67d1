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
