// Command clickstream is Duality's activity-tracking example, on the
// embedded broker or on Kafka.
//
// It generates page-view events into the topic "page-views", then runs a
// stateless topology that drops bot traffic, enriches every event with the
// page's section and the visitor's device, and routes events by type to
// the topics "clicks", "purchases" and "views". The generated events are a
// bounded input: the app runs with duality.App.RunToEnd, which returns once
// every event is routed. It prints a short summary, checks that each
// routed topic holds as many events as routing the page views of
// "page-views" without the framework gives it, and exits 0; on a
// mismatch, and on any other failure (the app's included), it prints the
// error and exits 1.
//
//	go run ./examples/clickstream
//	go run ./examples/clickstream -events 1000000 -dir /tmp/clicks
//
// With -kfake it runs on an in-process kfake cluster (a Kafka test
// cluster started for the run), with -brokers host:port,... on a Kafka
// cluster, such as the one go run ./cmd/kfake serves; the topology is the
// same, only the broker's constructor differs:
//
//	go run ./examples/clickstream -kfake
//	go run ./examples/clickstream -brokers 127.0.0.1:9092
//
// With -dir the data directory is kept, and a second run appends more page
// views (later ones) and resumes where the first stopped: the app's
// committed offsets live in the same log, so it routes only the new ones.
// The topics' counts are then those of every run. (This holds for a
// topology without windows; a bounded run of a windowed one leaves its app
// id's state at the end of time, see examples/sessions.) The topics keep
// their partition count: a -partitions given that differs from it is an
// error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/examples/internal/exbroker"
	"github.com/duality-streams/duality/stream"
)

// PageView is what the website's tracker sends for every page event.
type PageView struct {
	UserID    string `msgpack:"user_id"`
	Type      string `msgpack:"type"` // "view", "click" or "purchase"
	Path      string `msgpack:"path"`
	UserAgent string `msgpack:"user_agent"`
	AmountCts int64  `msgpack:"amount_cents,omitempty"`
}

// Enriched is a page view after enrichment.
type Enriched struct {
	PageView
	Section string `msgpack:"section"`
	Device  string `msgpack:"device"`
}

const appID = "clickstream"

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "clickstream:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) (err error) {
	fs := flag.NewFlagSet("clickstream", flag.ContinueOnError)
	events := fs.Int("events", 200_000, "page views to generate")
	partitions := fs.Int("partitions", 4, "partitions of every topic (a kept data directory's topics keep theirs)")
	dir := fs.String("dir", "", "data directory (default: a temporary one, removed at exit)")
	verbose := fs.Bool("v", false, "log the runtime's steps")
	brokerFlags := exbroker.Register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *events < 0 || *partitions < 1 {
		return errors.New("-events must be >= 0 and -partitions >= 1")
	}

	if *dir == "" {
		tmp, err := os.MkdirTemp("", "duality-clickstream-")
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

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	b, err := brokerFlags.Open(ctx, *dir, logger)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, b.Close()) }()
	where := "of the data directory"
	if brokerFlags.Kafka() {
		fmt.Fprintf(stdout, "topics %s\n", b.Where)
		where = b.Where
	}

	err = exbroker.CreateTopics(ctx, b, where, *partitions, exbroker.FlagSet(fs, "partitions"), append([]string{"page-views"}, routes...)...)
	if err != nil {
		return err
	}

	have, err := count(ctx, b, "page-views")
	if err != nil {
		return err
	}
	start := time.Now()
	if err := generate(ctx, b, have, *events); err != nil {
		return err
	}
	genTime := time.Since(start)

	topo, err := topology()
	if err != nil {
		return err
	}

	app, err := duality.New(appID, topo, b, duality.Logger(logger))
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, app.Describe())
	start = time.Now()
	if err := app.RunToEnd(ctx); err != nil {
		return err
	}
	procTime := time.Since(start)

	m := app.Metrics()
	fmt.Fprintf(stdout, "generated %d page views in %v\n", *events, genTime.Round(time.Millisecond))
	fmt.Fprintf(stdout, "processed %d records in %v (%.0f records/s), %d commits\n",
		m.RecordsProcessed, procTime.Round(time.Millisecond),
		float64(m.RecordsProcessed)/procTime.Seconds(), m.Commits)
	want, err := expectedRoutes(ctx, b)
	if err != nil {
		return err
	}
	if have > 0 {
		fmt.Fprintf(stdout, "the topics hold the page views of every run on %s (%d before this one):\n", *dir, have)
	}
	var problems []error
	for _, topic := range routes {
		n, sample, err := summarize(ctx, b, topic)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%-9s %7d records, e.g. %s\n", topic, n, sample)
		if n != want[topic] {
			problems = append(problems, fmt.Errorf("%q: %d records, want %d", topic, n, want[topic]))
		}
	}
	fmt.Fprintf(stdout, "%-9s %7d page views dropped (bots and crawlers)\n", "bots", want[bots])
	if len(problems) > 0 {
		return fmt.Errorf("the routed topics differ from the page views of %q routed without the framework: %w", "page-views", errors.Join(problems...))
	}
	fmt.Fprintln(stdout, "every routed topic matches the page views routed without the framework")
	return nil
}

// routes are the topics the page views are routed to, and bots the
// pseudo-route of those dropped.
var routes = []string{"clicks", "purchases", "views"}

const bots = "bots"

// expectedRoutes routes every page view of the topic "page-views" without
// the framework and returns how many go to each route (bots included).
func expectedRoutes(ctx context.Context, b broker.Broker) (map[string]int64, error) {
	vc := codec.Msgpack[PageView]()
	n := map[string]int64{}
	err := forEach(ctx, b, "page-views", func(r broker.Record) error {
		v, err := vc.Decode(r.Value)
		if err != nil {
			return fmt.Errorf("page-views/%d@%d: %w", r.Partition, r.Offset, err)
		}
		switch {
		case isBot(v.UserAgent):
			n[bots]++
		case v.Type == "click":
			n["clicks"]++
		case v.Type == "purchase":
			n["purchases"]++
		default:
			n["views"]++
		}
		return nil
	})
	return n, err
}

// topology builds the pipeline: filter bots, enrich, route by type.
func topology() (*stream.Topology, error) {
	b := stream.NewBuilder()
	views := stream.From(b, "page-views", codec.String(), codec.Msgpack[PageView](), stream.Named("page-views"))
	humans := views.FilterNot(func(_ string, v PageView) bool { return isBot(v.UserAgent) }, stream.Named("drop-bots"))
	enriched := stream.MapValues(humans, func(v PageView) Enriched {
		return Enriched{PageView: v, Section: section(v.Path), Device: device(v.UserAgent)}
	}, stream.Named("enrich"))

	byType := enriched.Split(stream.Named("by-type"))
	byType.Branch("clicks", func(_ string, v Enriched) bool { return v.Type == "click" }).To("clicks")
	byType.Branch("purchases", func(_ string, v Enriched) bool { return v.Type == "purchase" }).To("purchases")
	byType.Default().To("views")
	return b.Build()
}

func isBot(ua string) bool {
	ua = strings.ToLower(ua)
	return strings.Contains(ua, "bot") || strings.Contains(ua, "crawler")
}

func section(path string) string {
	if path == "/" {
		return "home"
	}
	if i := strings.IndexByte(path[1:], '/'); i >= 0 {
		return path[1 : i+1]
	}
	return strings.TrimPrefix(path, "/")
}

func device(ua string) string {
	switch {
	case strings.Contains(ua, "iPhone"), strings.Contains(ua, "Android"):
		return "mobile"
	case strings.Contains(ua, "iPad"):
		return "tablet"
	}
	return "desktop"
}

var (
	paths = []string{"/", "/products/shoes", "/products/hats", "/products/socks", "/blog/how-to-run", "/cart", "/checkout"}
	uas   = []string{
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0)",
		"Mozilla/5.0 (Linux; Android 14)",
		"Mozilla/5.0 (iPad; CPU OS 17_0)",
		"Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
		"Mozilla/5.0 (Windows NT 10.0) Chrome/126.0",
		"Googlebot/2.1 (+http://www.google.com/bot.html)",
	}
)

// generate appends n page views in batches, as a tracker's producer would,
// after the from page views of earlier runs: page view i happens i ms
// after 09:00, and the views of each run are drawn from their own seed.
func generate(ctx context.Context, b broker.Broker, from int64, n int) error {
	rng := rand.New(rand.NewPCG(1, 2+uint64(from)))
	vc := codec.Msgpack[PageView]()
	base := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC).Add(time.Duration(from) * time.Millisecond)
	const batch = 1000
	recs := make([]broker.Record, 0, batch)
	for i := range n {
		v := PageView{UserID: fmt.Sprintf("user-%d", rng.IntN(5000)), Path: paths[rng.IntN(len(paths))], UserAgent: uas[rng.IntN(len(uas))]}
		switch r := rng.IntN(100); {
		case r < 5:
			v.Type, v.Path, v.AmountCts = "purchase", "/checkout", int64(500+rng.IntN(20000))
		case r < 40:
			v.Type = "click"
		default:
			v.Type = "view"
		}
		val, err := vc.Append(nil, v)
		if err != nil {
			return err
		}
		recs = append(recs, broker.Record{
			Topic: "page-views", Partition: broker.PartitionByKey,
			Key: []byte(v.UserID), Value: val, Timestamp: base.Add(time.Duration(i) * time.Millisecond),
		})
		if len(recs) == batch || i == n-1 {
			if err := b.Produce(ctx, recs); err != nil {
				return fmt.Errorf("generate: %w", err)
			}
			recs = recs[:0]
		}
	}
	return nil
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

// summarize counts a topic's records and decodes the first one.
func summarize(ctx context.Context, b broker.Broker, topic string) (int64, string, error) {
	total, err := count(ctx, b, topic)
	if err != nil {
		return 0, "", err
	}
	info, err := b.DescribeTopic(ctx, topic)
	if err != nil {
		return 0, "", err
	}
	c, err := b.NewConsumer(broker.ConsumerOptions{MaxRecords: 1})
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	for p := range info.Config.Partitions {
		o, err := b.ListOffsets(ctx, topic, p)
		if err != nil {
			return 0, "", err
		}
		if o.Earliest == o.Latest {
			continue
		}
		tp := broker.TopicPartition{Topic: topic, Partition: p}
		c.Assign(map[broker.TopicPartition]int64{tp: o.Earliest})
		for {
			polled, err := c.Poll(ctx, time.Second)
			if err != nil {
				return 0, "", err
			}
			if len(polled.Records) > 0 {
				e, err := codec.Msgpack[Enriched]().Decode(polled.Records[0].Value)
				if err != nil {
					return 0, "", err
				}
				return total, fmt.Sprintf("%s %s %s on %s (section %s)", e.UserID, e.Type, e.Path, e.Device, e.Section), nil
			}
			if _, end := polled.Ends[tp]; end {
				break // records deleted or compacted away
			}
		}
		c.Unassign(tp)
	}
	return total, "(none)", nil
}
