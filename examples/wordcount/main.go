// Command wordcount is Duality's word-count example, on the embedded
// broker or on Kafka: a stream turned into a table.
//
// It appends lines of text to the topic "text-lines", then runs a topology
// that splits lines into lowercase words, groups them by word (through an
// automatic repartition topic) and counts them into the table
// "word-counts", whose state lives in Pebble and is logged to a changelog
// topic. Every update of a count goes to the topic "word-counts"; reading
// that topic as upserts (newest value per word) gives the table, from
// which the command prints the top words. It checks the table against the
// words of every line of "text-lines", counted without the framework, and
// exits 0; on a mismatch, and on any other failure (the app's included),
// it prints the error and exits 1.
//
// The lines appended are a bounded input: the app runs with
// duality.App.RunToEnd, which returns once every line is counted.
//
//	go run ./examples/wordcount
//	go run ./examples/wordcount -lines 100000 -top 5 -dir /tmp/wc
//
// With -kfake the same runs on an in-process kfake cluster (a Kafka test
// cluster started for the run), with -brokers on a Kafka cluster, and
// prints the same counts: only the broker's constructor differs.
//
//	go run ./examples/wordcount -kfake
//	go run ./cmd/kfake &   # or any Kafka cluster
//	go run ./examples/wordcount -brokers 127.0.0.1:9092
//
// With -dir the data directory is kept, and a second run appends more
// lines and continues the counts from the stored state: a bounded run
// resumes from the offsets the previous one committed. (This holds for a
// topology without windows; a bounded run of a windowed one leaves its
// app id's state at the end of time, see examples/sessions.) The topics
// keep their partition count: a -partitions given that differs from it is
// an error.
//
// With -serve the same topology runs on the hot path instead
// (duality.App.Run): the app keeps running after the summary and answers
// interactive queries of the "word-counts" store over HTTP until
// interrupted:
//
//	go run ./examples/wordcount -serve 127.0.0.1:8080
//	curl http://127.0.0.1:8080/stores/word-counts/keys/the
//	curl 'http://127.0.0.1:8080/stores/word-counts?from=a&to=c'
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/examples/internal/exbroker"
	"github.com/duality-streams/duality/httpquery"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
)

const (
	appID      = "wordcount"
	linesTopic = "text-lines"
	countTopic = "word-counts"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "wordcount:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) (err error) {
	fs := flag.NewFlagSet("wordcount", flag.ContinueOnError)
	n := fs.Int("lines", 20_000, "lines of text to append")
	top := fs.Int("top", 10, "number of top words to print")
	partitions := fs.Int("partitions", 4, "partitions of every topic (a kept data directory's topics keep theirs)")
	dir := fs.String("dir", "", "data directory (default: a temporary one, removed at exit)")
	verbose := fs.Bool("v", false, "log the runtime's steps")
	serve := fs.String("serve", "", "after the summary, keep running and serve queries of the word-counts store over HTTP at this address (e.g. 127.0.0.1:8080) until interrupted")
	brokerFlags := exbroker.Register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 0 || *top < 0 || *partitions < 1 {
		return errors.New("-lines and -top must be >= 0 and -partitions >= 1")
	}
	if *dir == "" {
		tmp, err := os.MkdirTemp("", "duality-wordcount-")
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, os.RemoveAll(tmp)) }()
		*dir = tmp
	}
	logger := slog.New(slog.DiscardHandler)
	if *verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}

	b, err := brokerFlags.Open(ctx, filepath.Join(*dir, "log"), logger)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, b.Close()) }()
	where := "of the data directory"
	if brokerFlags.Kafka() {
		fmt.Fprintf(stdout, "topics %s\n", b.Where)
		where = b.Where
	}
	if err := exbroker.CreateTopics(ctx, b, where, *partitions, exbroker.FlagSet(fs, "partitions"), linesTopic, countTopic); err != nil {
		return err
	}

	have, err := count(ctx, b, linesTopic)
	if err != nil {
		return err
	}
	words, err := produce(ctx, b, int(have), int(have)+*n)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "appended %d lines (%d words) to %q\n", *n, words, linesTopic)

	topo, err := topology()
	if err != nil {
		return err
	}
	// One instance of this command runs at a time: a stable instance id
	// lets a rerun on Kafka take the previous run's place in the group at
	// once (static membership), where a new id per run (the default with
	// a temporary state directory) waits for the old member's session to
	// expire (45 s by default).
	app, err := duality.New(appID, topo, b, duality.Logger(logger), duality.StateDir(filepath.Join(*dir, "state")),
		duality.InstanceID(appID))
	if err != nil {
		return err
	}
	start := time.Now()
	var stopped <-chan struct{}
	if *serve == "" {
		if err := app.RunToEnd(ctx); err != nil {
			return err
		}
	} else {
		// The hot path: the app keeps running to answer queries; it
		// stops on return, and Run's error is reported then.
		var stopApp func() error
		stopped, stopApp = runApp(ctx, app)
		defer func() { err = errors.Join(err, stopApp()) }()
		if err := waitCaughtUp(ctx, b, stopped); err != nil {
			return err
		}
	}
	elapsed := time.Since(start)
	m := app.Metrics()
	fmt.Fprintf(stdout, "processed %d records in %v\n", m.RecordsProcessed, elapsed.Round(time.Millisecond))

	counts, err := readTable(ctx, b)
	if err != nil {
		return err
	}
	var total int64
	for _, c := range counts {
		total += c
	}
	fmt.Fprintf(stdout, "table %q: %d distinct words, %d words counted\n", countTopic, len(counts), total)
	fmt.Fprintf(stdout, "top %d words:\n", min(*top, len(counts)))
	for _, wc := range topWords(counts, *top) {
		fmt.Fprintf(stdout, "  %-10s %d\n", wc.word, wc.n)
	}
	if err := check(ctx, b, counts); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "every count matches the words of %q counted without the framework\n", linesTopic)
	if *serve != "" {
		return serveQueries(ctx, stdout, app, *serve, stopped)
	}
	return nil
}

// check compares the counts with the words of every line of the lines
// topic, counted without the framework: each line is counted once, in
// this run or an earlier one on the same data directory.
func check(ctx context.Context, b broker.Broker, counts map[string]int64) error {
	want := map[string]int64{}
	err := forEach(ctx, b, linesTopic, func(r broker.Record) error {
		for w := range tokens(string(r.Value)) {
			want[w]++
		}
		return nil
	})
	if err != nil {
		return err
	}
	var differ []string
	for w, n := range want {
		if counts[w] != n {
			differ = append(differ, fmt.Sprintf("%q: %d, want %d", w, counts[w], n))
		}
	}
	for w, n := range counts {
		if _, ok := want[w]; !ok {
			differ = append(differ, fmt.Sprintf("%q: %d, want 0", w, n))
		}
	}
	slices.Sort(differ)
	if len(differ) > 0 {
		return fmt.Errorf("table %q: %d words' counts differ from the words of %q counted without the framework: %s",
			countTopic, len(differ), linesTopic, strings.Join(differ[:min(5, len(differ))], ", "))
	}
	return nil
}

// runApp runs app in a goroutine until ctx ends or stopApp is called.
// stopped is closed when Run has returned. stopApp stops the app, waits for
// Run to return and returns Run's error the first time it is called, nil
// after: call it on every path, and Run's error is reported once.
func runApp(ctx context.Context, app *duality.App) (stopped <-chan struct{}, stopApp func() error) {
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	var runErr error
	go func() {
		defer close(done)
		runErr = app.Run(runCtx)
	}()
	reported := false
	return done, func() error {
		stop()
		<-done
		if reported {
			return nil
		}
		reported = true
		return runErr
	}
}

// errStopped is the error of waiting for an app that stopped; Run's error,
// which run adds, says why.
var errStopped = errors.New("the app stopped before processing all input")

// serveQueries answers queries of the word-counts store over HTTP at addr
// while the app runs, until ctx ends, the process is interrupted or the app
// stops (stopped is closed; the caller reports Run's error).
func serveQueries(ctx context.Context, stdout io.Writer, app *duality.App, addr string, stopped <-chan struct{}) error {
	h, err := httpquery.Handler(app, httpquery.StringKeys(countTopic, codec.Int64()))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	ctx, cancel := signal.NotifyContext(ctx, os.Interrupt)
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "serving queries at http://%s/stores/%s/keys/{word} (Ctrl-C stops)\n", ln.Addr(), countTopic)
	select {
	case <-ctx.Done():
	case err = <-served:
	case <-stopped:
		err = errors.New("app stopped while serving queries")
	}
	shutdownCtx, cancelShutdown := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancelShutdown()
	err = errors.Join(err, srv.Shutdown(shutdownCtx))
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// topology splits lines into words and counts them per word.
func topology() (*stream.Topology, error) {
	b := stream.NewBuilder()
	lines := stream.From(b, linesTopic, codec.String(), codec.String())
	words := stream.FlatMapValues(lines, func(line string) iter.Seq[string] { return tokens(line) })
	byWord := stream.GroupBy(words, func(_, w string) string { return w }, stream.Named("by-word"))
	table.Count(byWord, "word-counts").ToStream().To(countTopic)
	return b.Build()
}

// tokens returns the lowercase words of line, without punctuation.
func tokens(line string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for f := range strings.FieldsSeq(strings.ToLower(line)) {
			if w := strings.Trim(f, ".,;:!?\"'()"); w != "" && !yield(w) {
				return
			}
		}
	}
}

var corpus = []string{
	"It was the best of times, it was the worst of times.",
	"It was the age of wisdom, it was the age of foolishness.",
	"The log is the table, and the table is the log.",
	"A stream is a log read as inserts; a table is the same log read as upserts.",
	"Call me Ishmael.",
	"All happy families are alike; each unhappy family is unhappy in its own way.",
	"In the beginning the universe was created.",
	"The quick brown fox jumps over the lazy dog.",
	"To be, or not to be, that is the question.",
	"Whatever the log says, the state will say after the restore.",
	"Not all those who wander are lost.",
}

// line returns line i of the input: the same index always gives the same
// line, so runs that append more lines continue one deterministic text.
func line(i int) string {
	return corpus[(i*7+i/len(corpus))%len(corpus)]
}

// produce appends lines [from, to) to the lines topic and returns the
// number of words they hold.
func produce(ctx context.Context, b broker.Broker, from, to int) (int64, error) {
	const batch = 1000
	var words int64
	recs := make([]broker.Record, 0, batch)
	for i := from; i < to; i++ {
		l := line(i)
		for range tokens(l) {
			words++
		}
		recs = append(recs, broker.Record{Topic: linesTopic, Partition: broker.PartitionByKey,
			Key: fmt.Appendf(nil, "line-%d", i), Value: []byte(l)})
		if len(recs) == batch || i == to-1 {
			if err := b.Produce(ctx, recs); err != nil {
				return 0, fmt.Errorf("produce lines: %w", err)
			}
			recs = recs[:0]
		}
	}
	return words, nil
}

// waitCaughtUp returns once the app, running on the hot path (-serve),
// has consumed every line and every record of its repartition topic; it
// returns errStopped if the app stops first (stopped is closed). The app
// commits its outputs with its offsets, so once the lines are consumed
// every record of the repartition topic is written; once those are
// consumed too, every count is in place.
func waitCaughtUp(ctx context.Context, b broker.Broker, stopped <-chan struct{}) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		lag, err := broker.GroupLag(ctx, b, appID, linesTopic)
		if err != nil {
			return err
		}
		if lag == 0 {
			lag, err = broker.GroupLag(ctx, b, appID, appID+"-by-word-repartition")
			if err != nil {
				return err
			}
			if lag == 0 {
				return nil
			}
		}
		select {
		case <-stopped:
			return errStopped
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// readTable reads the topic of count updates as a table: the newest count
// of each word wins.
func readTable(ctx context.Context, b broker.Broker) (map[string]int64, error) {
	counts := map[string]int64{}
	err := forEach(ctx, b, countTopic, func(r broker.Record) error {
		n, err := codec.Int64().Decode(r.Value)
		if err != nil {
			return fmt.Errorf("%s/%d@%d: %w", countTopic, r.Partition, r.Offset, err)
		}
		counts[string(r.Key)] = n
		return nil
	})
	return counts, err
}

// forEach calls fn with every record of topic, partition by partition.
func forEach(ctx context.Context, b broker.Broker, topic string, fn func(broker.Record) error) error {
	recs, err := broker.ReadAll(ctx, b, topic)
	if err != nil {
		return err
	}
	for _, r := range recs {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

type wordCount struct {
	word string
	n    int64
}

// topWords returns the k most frequent words, ties broken alphabetically.
func topWords(counts map[string]int64, k int) []wordCount {
	all := make([]wordCount, 0, len(counts))
	for w, n := range counts {
		all = append(all, wordCount{w, n})
	}
	slices.SortFunc(all, func(a, b wordCount) int {
		return cmp.Or(cmp.Compare(b.n, a.n), cmp.Compare(a.word, b.word))
	})
	return all[:min(k, len(all))]
}

// count returns the number of records a topic holds, read: not its
// offset range, where a Kafka transaction's commit marker takes an offset
// too.
func count(ctx context.Context, b broker.Broker, topic string) (int64, error) {
	recs, err := broker.ReadAll(ctx, b, topic)
	if err != nil {
		return 0, err
	}
	return int64(len(recs)), nil
}
