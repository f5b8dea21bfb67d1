package table_test

import (
	"context"
	"fmt"
	"iter"
	"strings"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
	"github.com/duality-streams/duality/table"
)

// Word count: lines are split into words, grouped by word through a
// repartition topic, and counted into the store "word-counts".
func Example() {
	b := stream.NewBuilder()
	lines := stream.From(b, "text-lines", codec.String(), codec.String())
	words := stream.FlatMapValues(lines, func(line string) iter.Seq[string] {
		return strings.FieldsSeq(strings.ToLower(line))
	})
	byWord := stream.GroupBy(words, func(_, w string) string { return w }, codec.String(), codec.String(), stream.Named("by-word"))
	counts := table.Count(byWord, "word-counts")
	counts.ToStream().To("word-count-updates", codec.String(), codec.Int64())
	topo, err := b.Build()
	if err != nil {
		fmt.Println(err)
		return
	}

	d, err := streamtest.New(topo, streamtest.AppID("wc"), streamtest.DefaultPartitions(2))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()
	ctx := context.Background()
	in := streamtest.Input(d, "text-lines", codec.String(), codec.String())
	for i, line := range []string{"the cat sat", "The dog sat", "a cat"} {
		if err := in.Pipe(ctx, fmt.Sprint("line-", i), line); err != nil {
			fmt.Println(err)
			return
		}
	}

	store := streamtest.Store(d, "word-counts", codec.String(), codec.Int64())
	var state []string
	for _, w := range []string{"the", "cat", "sat", "dog", "a"} {
		n, _, err := store.Get(w)
		if err != nil {
			fmt.Println(err)
			return
		}
		state = append(state, fmt.Sprintf("%s=%d", w, n))
	}
	fmt.Println(strings.Join(state, " "))
	updates, err := streamtest.Output(d, "word-count-updates", codec.String(), codec.Int64()).ReadKeyValues()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("updates:", updates)
	// Output:
	// the=2 cat=2 sat=2 dog=1 a=1
	// updates: [{the 1} {cat 1} {sat 1} {the 2} {dog 1} {sat 2} {a 1} {cat 2}]
}
