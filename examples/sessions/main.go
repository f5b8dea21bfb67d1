// Command sessions is Duality's clickstream sessionization example, on
// the embedded broker or on Kafka.
//
// It simulates a day of page views by a few thousand users into the topic
// "page-views". Each view carries the time the user saw the page (event
// time, the "at" field); views reach the broker up to two minutes late and
// out of order, as trackers on phones deliver them. The app takes event
// time from the value (stream.WithTimestamp), groups views into sessions
// per user with a 30-minute inactivity gap and 5 minutes of grace, and
// writes one final record per session (window.EmitOnWindowClose) to the
// topic "sessions": the user, start, end, page count and length. It then
// checks the sessions against sessions computed from the simulated views
// without the framework, prints a summary and exits 0. It exits 1, after
// printing the error, on a mismatch, on any view dropped as late (views
// arrive within the grace, so none may be), and on any other failure (the
// app's included).
//
//	go run ./examples/sessions
//	go run ./examples/sessions -users 20000 -dir /tmp/sessions
//
// With -kfake it runs on an in-process kfake cluster (a Kafka test
// cluster started for the run), with -brokers host:port,... on a Kafka
// cluster, such as the one go run ./cmd/kfake serves; the topology is the
// same, only the broker's constructor differs:
//
//	go run ./examples/sessions -kfake
//	go run ./examples/sessions -brokers 127.0.0.1:9092
//
// With -dir the data directory (the log: the topics, the app's committed
// offsets and its store's changelog) is kept for inspection, and a second
// run needs a fresh one: the command refuses a directory that holds its
// topics. A bounded run leaves the app's state at the end of time (every
// window closed), so a second run of the app id would drop every view as
// late; a bounded run of a windowed topology gets its own app id, or, as
// here, its own data.
//
// A session is final once the stream time of its partition (the latest
// event time seen there) passes its last view + 30 minutes + grace. The
// day is a bounded input, so the app runs with duality.App.RunToEnd: it
// processes the day's views, then advances stream time to the end, which
// closes the last sessions of the day too (with duality.App.Run they would
// wait for the next day's views), and returns. Every view is then in a
// final session.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/examples/internal/exbroker"
	"github.com/duality-streams/duality/examples/internal/excheck"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/window"
)

// PageView is what the website's tracker sends for every page view.
type PageView struct {
	User string    `json:"user"`
	Path string    `json:"path"`
	At   time.Time `json:"at"` // when the user saw the page
}

// Session is the final result of one session.
type Session struct {
	User  string    `json:"user"`
	Start time.Time `json:"start"` // first view
	End   time.Time `json:"end"`   // last view
	Pages int64     `json:"pages"`
	// LengthMs is the time between the first and the last view, in
	// milliseconds.
	LengthMs int64 `json:"length_ms"`
}

// Length is the time between the first and the last view.
func (s Session) Length() time.Duration { return s.End.Sub(s.Start) }

const (
	appID = "sessions"
	gap   = 30 * time.Minute
	grace = 5 * time.Minute
	// maxDelay bounds how late a view reaches the broker; it is within
	// grace, so no view is dropped as late.
	maxDelay = 2 * time.Minute
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "sessions:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) (err error) {
	fs := flag.NewFlagSet("sessions", flag.ContinueOnError)
	users := fs.Int("users", 2000, "users to simulate")
	partitions := fs.Int("partitions", 4, "partitions of every topic")
	dir := fs.String("dir", "", "data directory (default: a temporary one, removed at exit)")
	seed := fs.Uint64("seed", 1, "seed of the simulation")
	verbose := fs.Bool("v", false, "log the runtime's steps")
	brokerFlags := exbroker.Register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *users < 1 || *partitions < 1 {
		return errors.New("-users and -partitions must be >= 1")
	}
	if *dir == "" {
		tmp, err := os.MkdirTemp("", "duality-sessions-")
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

	b, err := brokerFlags.Open(ctx, *dir, logger)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, b.Close()) }()
	if brokerFlags.Kafka() {
		fmt.Fprintf(stdout, "topics %s\n", b.Where)
	}
	for _, topic := range []string{"page-views", "sessions"} {
		err := b.CreateTopic(ctx, topic, broker.TopicConfig{Partitions: int32(*partitions)})
		if errors.Is(err, broker.ErrTopicExists) {
			return fmt.Errorf("topic %q exists %s: sessions needs a fresh data directory, or on Kafka a cluster without its topics "+
				"(the previous run left the app's windows closed at the end of time: every view would be dropped as late)", topic, b.Where)
		}
		if err != nil {
			return err
		}
	}
	views := Simulate(*users, *seed)
	if err := produce(ctx, b, views); err != nil {
		return err
	}

	stats := new(window.Stats)
	topo, err := Topology(stats)
	if err != nil {
		return err
	}
	app, err := duality.New(appID, topo, b, duality.Logger(logger))
	if err != nil {
		return err
	}
	start := time.Now()
	if err := app.RunToEnd(ctx); err != nil {
		return err
	}
	elapsed := time.Since(start)

	sessions, err := ReadSessions(ctx, b)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d page views by %d users processed in %v\n", len(views), *users, elapsed.Round(time.Millisecond))
	fmt.Fprintf(stdout, "%d sessions final, %d late views dropped\n", len(sessions), stats.LateRecords())
	if len(sessions) > 0 {
		var pages int64
		var length time.Duration
		for _, s := range sessions {
			pages += s.Pages
			length += s.Length()
		}
		fmt.Fprintf(stdout, "average session: %.1f pages, %v\n", float64(pages)/float64(len(sessions)), (length / time.Duration(len(sessions))).Round(time.Second))
		longest := slices.MaxFunc(sessions, func(a, b Session) int { return cmp.Compare(a.Length(), b.Length()) })
		fmt.Fprintf(stdout, "longest: %s from %s to %s, %d pages\n", longest.User,
			longest.Start.Format(time.TimeOnly), longest.End.Format(time.TimeOnly), longest.Pages)
	}
	var inSessions int64
	for _, s := range sessions {
		inSessions += s.Pages
	}
	fmt.Fprintf(stdout, "%d page views are in final sessions\n", inSessions)
	if err := check(views, sessions, stats.LateRecords()); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "every session matches the model computed without the framework")
	return nil
}

// check compares the final sessions with ExpectedSessions of the views,
// and fails if any view was dropped as late: views reach the broker at
// most maxDelay after they happened, within the grace, so none may be.
func check(views []PageView, got []Session, late int64) error {
	var problems []error
	if late > 0 {
		problems = append(problems, fmt.Errorf("%d views dropped as late, want none: views arrive at most %v late, within the %v grace",
			late, maxDelay, grace))
	}
	type sessionID struct {
		user  string
		start int64
	}
	if err := excheck.Compare("sessions", got, ExpectedSessions(views),
		func(s Session) sessionID { return sessionID{s.User, s.Start.UnixMilli()} },
		func(a, b Session) bool { return a.End.Equal(b.End) && a.Pages == b.Pages && a.LengthMs == b.LengthMs }); err != nil {
		problems = append(problems, err)
	}
	return errors.Join(problems...)
}

// ExpectedSessions computes the final sessions of the views without the
// framework: per user, views sorted by event time, split where two views
// are more than the gap apart. The app runs to the end of the input, so
// every session is final.
func ExpectedSessions(views []PageView) []Session {
	byUser := map[string][]time.Time{}
	for _, v := range views {
		byUser[v.User] = append(byUser[v.User], v.At)
	}
	var out []Session
	for user, ats := range byUser {
		slices.SortFunc(ats, time.Time.Compare)
		s := Session{User: user, Start: ats[0], End: ats[0], Pages: 1}
		flush := func() {
			s.LengthMs = s.End.Sub(s.Start).Milliseconds()
			out = append(out, s)
		}
		for _, at := range ats[1:] {
			if at.Sub(s.End) > gap {
				flush()
				s = Session{User: user, Start: at, End: at}
			}
			s.End = at
			s.Pages++
		}
		flush()
	}
	return out
}

// Topology builds the app: page views keyed by user, event time from the
// view, sessions of 30 minutes of inactivity with 5 minutes of grace,
// final results only, written as Session values keyed by user.
func Topology(stats *window.Stats) (*stream.Topology, error) {
	b := stream.NewBuilder()
	views := stream.From(b, "page-views", codec.String(), codec.JSON[PageView](),
		stream.Named("page-views"),
		stream.WithTimestamp(func(_ string, v PageView, _ time.Time) time.Time { return v.At }))
	byUser := stream.GroupByKey(views)
	pages := window.AggregateSessions(byUser, window.Session(gap, grace),
		func() int64 { return 0 },
		func(_ string, _ PageView, n int64) int64 { return n + 1 },
		func(_ string, a, b int64) int64 { return a + b },
		"user-sessions", window.EmitOnWindowClose(), window.WithStats(stats), stream.Named("sessionize"))
	sessions := stream.Map(pages.ToStream(), func(w window.Windowed[string], n int64) (string, Session) {
		// Session windows end 1ms after their last record.
		s := Session{User: w.Key, Start: w.Start.UTC(), End: w.End.Add(-time.Millisecond).UTC(), Pages: n}
		s.LengthMs = s.Length().Milliseconds()
		return w.Key, s
	}, stream.Named("to-session"))
	sessions.To("sessions", stream.WithValueCodec(codec.JSON[Session]()))
	return b.Build()
}

var paths = []string{"/", "/products/shoes", "/products/hats", "/products/socks", "/blog/how-to-run", "/cart", "/checkout"}

// Simulate returns a day of page views of n users in the order they
// reach the broker: each user has one to four sessions of 1 to 20 views,
// 10 seconds to 20 minutes apart, sessions separated by more than the
// gap; every view arrives up to maxDelay after it happened. The result
// depends only on n and seed.
func Simulate(n int, seed uint64) []PageView {
	rng := rand.New(rand.NewPCG(seed, 7))
	day := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	type arrival struct {
		v  PageView
		at time.Time
	}
	var all []arrival
	for u := range n {
		user := fmt.Sprintf("user-%d", u)
		t := day.Add(time.Duration(rng.IntN(12*60)) * time.Minute)
		for range 1 + rng.IntN(4) {
			for p := range 1 + rng.IntN(20) {
				if p > 0 {
					t = t.Add(time.Duration(10+rng.IntN(20*60-10)) * time.Second)
				}
				v := PageView{User: user, Path: paths[rng.IntN(len(paths))], At: t}
				all = append(all, arrival{v, t.Add(time.Duration(rng.Int64N(int64(maxDelay))))})
			}
			t = t.Add(gap + time.Minute + time.Duration(rng.IntN(5*60))*time.Minute)
		}
	}
	slices.SortStableFunc(all, func(a, b arrival) int { return a.at.Compare(b.at) })
	out := make([]PageView, len(all))
	for i, a := range all {
		out[i] = a.v
	}
	return out
}

// produce appends the views in batches; the broker timestamp is the
// arrival time, later than the view's event time.
func produce(ctx context.Context, b broker.Broker, views []PageView) error {
	vc := codec.JSON[PageView]()
	const batch = 1000
	recs := make([]broker.Record, 0, batch)
	for i, v := range views {
		val, err := vc.Append(nil, v)
		if err != nil {
			return err
		}
		recs = append(recs, broker.Record{Topic: "page-views", Partition: broker.PartitionByKey,
			Key: []byte(v.User), Value: val, Timestamp: v.At.Add(maxDelay)})
		if len(recs) == batch || i == len(views)-1 {
			if err := b.Produce(ctx, recs); err != nil {
				return fmt.Errorf("produce: %w", err)
			}
			recs = recs[:0]
		}
	}
	return nil
}

// ReadSessions returns the records of the topic "sessions".
func ReadSessions(ctx context.Context, b broker.Broker) ([]Session, error) {
	recs, err := broker.ReadAll(ctx, b, "sessions")
	if err != nil {
		return nil, err
	}
	vc := codec.JSON[Session]()
	out := make([]Session, 0, len(recs))
	for _, r := range recs {
		s, err := vc.Decode(r.Value)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}
