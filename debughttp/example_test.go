package debughttp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/debughttp"
	"github.com/duality-streams/duality/httpquery"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
)

// The debug handler of a word count: the page at /, and the JSON it
// polls, read here as a script would. In a program, serve it with
// debughttp.ListenAndServe(ctx, "127.0.0.1:6060", h) beside app.Run and
// open http://127.0.0.1:6060/ in a browser.
func Example() {
	dir, err := os.MkdirTemp("", "debughttp-example")
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
	if err := b.CreateTopic(ctx, "text-lines", broker.TopicConfig{Partitions: 2}); err != nil {
		log.Fatal(err)
	}
	var recs []broker.Record
	for i, line := range []string{"the cat sat", "the dog sat", "a cat"} {
		recs = append(recs, broker.Record{Topic: "text-lines", Partition: broker.PartitionByKey,
			Key: fmt.Appendf(nil, "line-%d", i), Value: []byte(line)})
	}
	if err := b.Produce(ctx, recs); err != nil {
		log.Fatal(err)
	}

	sb := stream.NewBuilder()
	lines := stream.From(sb, "text-lines", codec.String(), codec.String())
	words := stream.FlatMapValues(lines, func(line string) iter.Seq[string] { return strings.FieldsSeq(line) },
		stream.Named("split"))
	byWord := stream.GroupBy(words, func(_, w string) string { return w }, stream.Named("by-word"))
	table.Count(byWord, "word-counts", stream.Named("count"))
	topo, err := sb.Build()
	if err != nil {
		log.Fatal(err)
	}
	app, err := duality.New("wc", topo, b)
	if err != nil {
		log.Fatal(err)
	}
	h, err := debughttp.Handler(app, debughttp.Queries(httpquery.StringKeys("word-counts", codec.Int64())))
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	if err := app.RunToEnd(ctx); err != nil {
		log.Fatal(err)
	}

	get := func(path string, v any) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			log.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			log.Fatal(err)
		}
	}
	var topology struct {
		Graph stream.Graph `json:"graph"`
	}
	get("/api/topology", &topology)
	for _, n := range topology.Graph.Nodes {
		fmt.Printf("%s %s %s\n", n.ID, n.Kind, n.Name)
	}
	var metrics struct {
		Metrics duality.Metrics `json:"metrics"`
		Tasks   []struct {
			ID               string `json:"id"`
			RecordsProcessed uint64
		} `json:"tasks"`
	}
	get("/api/metrics", &metrics)
	// 3 lines, then their 8 words from the repartition topic.
	fmt.Println("records processed:", metrics.Metrics.RecordsProcessed)
	for _, t := range metrics.Tasks {
		fmt.Printf("task %s: %d\n", t.ID, t.RecordsProcessed)
	}
	// Output:
	// n0 source source-0
	// n1 processor split
	// n2 processor by-word-key
	// n3 sink by-word-sink
	// n4 source by-word-source
	// n5 processor count
	// s0 store word-counts
	// t0 topic text-lines
	// t1 internal-topic wc-by-word-repartition
	// t2 internal-topic wc-word-counts-changelog
	// records processed: 11
	// task 0_0: 2
	// task 0_1: 1
	// task 1_0: 2
	// task 1_1: 6
}
