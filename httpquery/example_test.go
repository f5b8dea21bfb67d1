package httpquery_test

import (
	"context"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/httpquery"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
)

// A word count queried over HTTP while it runs, like
// curl http://127.0.0.1:8080/stores/word-counts/keys/cat.
func Example() {
	dir, err := os.MkdirTemp("", "httpquery-example")
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
	h, err := httpquery.Handler(app, httpquery.StringKeys("word-counts", codec.Int64()))
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	defer func() { cancel(); <-done }()

	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(body))
	}
	// Wait until every line is counted and committed (503 until the
	// partitions are restored, then partial counts).
	const all = `{"items":[{"key":"a","value":1},{"key":"cat","value":2},{"key":"dog","value":1},` +
		`{"key":"sat","value":2},{"key":"the","value":2}],"more":false}`
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if _, body := get("/stores/word-counts"); body == all {
			break
		}
	}
	fmt.Println(get("/stores/word-counts/keys/cat"))
	fmt.Println(get("/stores/word-counts?from=a&to=s"))
	fmt.Println(get("/stores/word-counts/keys/cow"))
	// Output:
	// 200 {"key":"cat","value":2}
	// 200 {"items":[{"key":"a","value":1},{"key":"cat","value":2},{"key":"dog","value":1}],"more":false}
	// 404 {"error":"key \"cow\" not found"}
}

// Any instance answers any key: two instances of a word count in one
// group, each serving its handler and advertising it with
// duality.Endpoint. The first instance answers every word, forwarding
// the request to the second for the words the second owns.
func Example_acrossInstances() {
	dir, err := os.MkdirTemp("", "httpquery-across-example")
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

	// Two instances, as two processes would run them, each with its
	// server (here on 127.0.0.1 with a port of its own).
	var urls []string
	var runs []chan error
	defer func() {
		cancel()
		for _, done := range runs {
			<-done
		}
	}()
	for range 2 {
		srv := httptest.NewUnstartedServer(nil)
		endpoint := "http://" + srv.Listener.Addr().String()
		app, err := duality.New("wc", topo, b, duality.Endpoint(endpoint), duality.CommitInterval(5*time.Millisecond))
		if err != nil {
			fmt.Println(err)
			return
		}
		h, err := httpquery.Handler(app, httpquery.StringKeys("word-counts", codec.Int64()))
		if err != nil {
			fmt.Println(err)
			return
		}
		srv.Config.Handler = h
		srv.Start()
		defer srv.Close()
		urls = append(urls, srv.URL)
		done := make(chan error, 1)
		go func() { done <- app.Run(ctx) }()
		runs = append(runs, done)
	}

	get := func(word string) string {
		resp, err := http.Get(urls[0] + "/stores/word-counts/keys/" + word)
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return fmt.Sprint(resp.StatusCode, " ", strings.TrimSpace(string(body)))
	}
	want := map[string]string{
		"a": `200 {"key":"a","value":1}`, "cat": `200 {"key":"cat","value":2}`, "dog": `200 {"key":"dog","value":1}`,
		"sat": `200 {"key":"sat","value":2}`, "the": `200 {"key":"the","value":2}`,
	}
	// Retry while the group forms and the counts are committed (503, or
	// partial counts, until then).
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		right := 0
		for w, answer := range want {
			if get(w) == answer {
				right++
			}
		}
		if right == len(want) {
			break
		}
	}
	for _, w := range []string{"a", "cat", "dog", "sat", "the"} {
		fmt.Println(get(w))
	}
	// Output:
	// 200 {"key":"a","value":1}
	// 200 {"key":"cat","value":2}
	// 200 {"key":"dog","value":1}
	// 200 {"key":"sat","value":2}
	// 200 {"key":"the","value":2}
}
