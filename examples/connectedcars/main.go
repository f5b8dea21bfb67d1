// Command connectedcars is a lambda architecture for connected cars, on
// the embedded broker or on Kafka: one topology serves the hot path and batch runs.
//
// Simulated cars send a reading every second: speed, fuel level and
// engine temperature, stamped with the time the car measured it (event
// time, the "at" field); readings reach the broker up to 5 seconds late
// and out of order. The app takes event time from the reading
// (stream.WithTimestamp) and computes per car and minute (tumbling
// windows, 10 s of grace, final results only) the average speed and
// engine temperature and the lowest temperature and fuel level, written to
// "car-minutes". From those it derives alerts to "car-alerts": "overheat"
// when the engine temperature stayed above 110 °C for a whole minute, and
// "low-fuel" for every minute in which the fuel level was below 10 %.
//
// On live input the topology runs with duality.App.Run (the hot path): a
// minute is final once the latest event time seen in its partition passes
// its end + grace. The simulated drive is a bounded input, so here it runs
// with duality.App.RunToEnd, as a backfill would: it processes the
// readings, then advances stream time to the end, which closes every
// minute (the last ones included) and returns.
//
// The cold path reads the committed "car-minutes" topic and writes it as
// JSON lines files, one per hour of event time, for batch jobs
// (-out, default: a directory under the data directory). The directory
// mirrors the topic: files of other hours, left by an earlier run, are
// removed.
//
// The command checks the minutes and alerts against those computed from
// the simulated readings without the framework, prints a summary and
// exits 0. It exits 1, after printing the error, on a mismatch, on any
// reading dropped as late (readings arrive within the grace, so none may
// be), and on any other failure (the app's included).
//
//	go run ./examples/connectedcars
//	go run ./examples/connectedcars -cars 500 -minutes 60 -out /tmp/cold
//
// With -kfake it runs on an in-process kfake cluster (a Kafka test
// cluster started for the run), with -brokers host:port,... on a Kafka
// cluster, such as the one go run ./cmd/kfake serves; the topology is the
// same, only the broker's constructor differs:
//
//	go run ./examples/connectedcars -kfake
//	go run ./examples/connectedcars -brokers 127.0.0.1:9092
//
// With -dir the data directory (the log and the default -out) is kept for
// inspection, and a second run needs a fresh one: the command refuses a
// directory that holds its topics. A bounded run leaves the app's state at
// the end of time (every window closed), so a second run of the app id
// would drop every reading as late; a backfill of a windowed topology gets
// its own app id, or, as here, its own data.
package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
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

// Reading is what a car sends every second.
type Reading struct {
	Car         string    `json:"car"`
	At          time.Time `json:"at"` // when the car measured it
	SpeedKmh    float64   `json:"speed_kmh"`
	FuelPct     float64   `json:"fuel_pct"`
	EngineTempC float64   `json:"engine_temp_c"`
}

// Minute is the summary of one car's readings in one minute.
type Minute struct {
	Car         string    `json:"car"`
	Start       time.Time `json:"start"`
	Readings    int64     `json:"readings"`
	AvgSpeedKmh float64   `json:"avg_speed_kmh"`
	AvgTempC    float64   `json:"avg_engine_temp_c"`
	MinTempC    float64   `json:"min_engine_temp_c"`
	MinFuelPct  float64   `json:"min_fuel_pct"`
}

// Alert is raised from a car's minute.
type Alert struct {
	Car    string    `json:"car"`
	Minute time.Time `json:"minute"`
	Kind   string    `json:"kind"` // "overheat" or "low-fuel"
	Value  float64   `json:"value"`
}

// acc is the running aggregate of a car's minute.
type acc struct {
	N        int64   `json:"n"`
	SumSpeed float64 `json:"sum_speed"`
	SumTemp  float64 `json:"sum_temp"`
	MinTemp  float64 `json:"min_temp"`
	MinFuel  float64 `json:"min_fuel"`
}

const (
	appID        = "connectedcars"
	overheatC    = 110.0
	lowFuelPct   = 10.0
	maxDelay     = 5 * time.Second
	windowSize   = time.Minute
	windowGrace  = 10 * time.Second
	readingEvery = time.Second
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "connectedcars:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) (err error) {
	fs := flag.NewFlagSet("connectedcars", flag.ContinueOnError)
	cars := fs.Int("cars", 50, "cars to simulate")
	minutes := fs.Int("minutes", 30, "minutes of driving to simulate")
	partitions := fs.Int("partitions", 4, "partitions of every topic")
	dir := fs.String("dir", "", "data directory (default: a temporary one, removed at exit)")
	out := fs.String("out", "", "directory of the cold path's JSON lines files (default: <dir>/cold)")
	seed := fs.Uint64("seed", 1, "seed of the simulation")
	verbose := fs.Bool("v", false, "log the runtime's steps")
	brokerFlags := exbroker.Register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cars < 1 || *minutes < 1 || *partitions < 1 {
		return errors.New("-cars, -minutes and -partitions must be >= 1")
	}
	if *dir == "" {
		tmp, err := os.MkdirTemp("", "duality-connectedcars-")
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, os.RemoveAll(tmp)) }()
		*dir = tmp
	}
	if *out == "" {
		*out = filepath.Join(*dir, "cold")
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
	if brokerFlags.Kafka() {
		fmt.Fprintf(stdout, "topics %s\n", b.Where)
	}
	for _, topic := range []string{"car-readings", "car-minutes", "car-alerts"} {
		err := b.CreateTopic(ctx, topic, broker.TopicConfig{Partitions: int32(*partitions)})
		if errors.Is(err, broker.ErrTopicExists) {
			return fmt.Errorf("topic %q exists %s: connectedcars needs a fresh data directory, or on Kafka a cluster without its topics "+
				"(the previous run left the app's windows closed at the end of time: every reading would be dropped as late)", topic, b.Where)
		}
		if err != nil {
			return err
		}
	}
	readings := Simulate(*cars, *minutes, *seed)
	if err := produce(ctx, b, readings); err != nil {
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

	mins, err := ReadTopic[Minute](ctx, b, "car-minutes")
	if err != nil {
		return err
	}
	alerts, err := ReadTopic[Alert](ctx, b, "car-alerts")
	if err != nil {
		return err
	}
	files, removed, err := ColdPath(mins, *out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d readings of %d cars processed in %v, %d late readings dropped\n", len(readings), *cars, elapsed.Round(time.Millisecond), stats.LateRecords())
	fmt.Fprintf(stdout, "%d car-minutes final\n", len(mins))
	kinds := map[string]int{}
	for _, a := range alerts {
		kinds[a.Kind]++
	}
	fmt.Fprintf(stdout, "%d alerts: %d overheat, %d low-fuel\n", len(alerts), kinds["overheat"], kinds["low-fuel"])
	if len(alerts) > 0 {
		a := alerts[0]
		fmt.Fprintf(stdout, "e.g. %s %s in the minute from %s (%.1f)\n", a.Car, a.Kind, a.Minute.Format(time.TimeOnly), a.Value)
	}
	fmt.Fprintf(stdout, "cold path: %d JSON lines files in %s", len(files), *out)
	if removed > 0 {
		fmt.Fprintf(stdout, " (%d files of other hours removed)", removed)
	}
	fmt.Fprintln(stdout)
	if err := check(readings, mins, alerts, stats.LateRecords()); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "every car-minute and alert matches the model computed without the framework")
	return nil
}

// check compares the car-minutes and alerts with ExpectedMinutes of the
// readings, and fails if any reading was dropped as late: readings reach
// the broker at most maxDelay after they were measured, within the grace,
// so none may be.
func check(readings []Reading, mins []Minute, alerts []Alert, late int64) error {
	var problems []error
	if late > 0 {
		problems = append(problems, fmt.Errorf("%d readings dropped as late, want none: readings arrive at most %v late, within the %v grace",
			late, maxDelay, windowGrace))
	}
	wantMins, wantAlerts := ExpectedMinutes(readings)
	type minuteID struct {
		car   string
		start int64
	}
	sameMinute := func(a, b Minute) bool {
		near := func(x, y float64) bool { return math.Abs(x-y) <= 1e-9*max(1, math.Abs(y)) }
		return a.Readings == b.Readings && near(a.AvgSpeedKmh, b.AvgSpeedKmh) && near(a.AvgTempC, b.AvgTempC) &&
			a.MinTempC == b.MinTempC && a.MinFuelPct == b.MinFuelPct
	}
	if err := excheck.Compare("car-minutes", mins, wantMins,
		func(m Minute) minuteID { return minuteID{m.Car, m.Start.UnixMilli()} }, sameMinute); err != nil {
		problems = append(problems, err)
	}
	type alertID struct {
		car    string
		minute int64
		kind   string
	}
	if err := excheck.Compare("car-alerts", alerts, wantAlerts,
		func(a Alert) alertID { return alertID{a.Car, a.Minute.UnixMilli(), a.Kind} },
		func(a, b Alert) bool { return a.Value == b.Value }); err != nil {
		problems = append(problems, err)
	}
	return errors.Join(problems...)
}

// ExpectedMinutes computes the final car-minutes and alerts of the
// readings without the framework: readings summed per car and minute in
// arrival order (the app's order: a car's readings are in one partition).
// The app runs to the end of the input, so every minute is final.
func ExpectedMinutes(readings []Reading) ([]Minute, []Alert) {
	type key struct {
		car   string
		start time.Time
	}
	accs := map[key]*Minute{}
	for _, r := range readings {
		k := key{r.Car, r.At.Truncate(windowSize)}
		m := accs[k]
		if m == nil {
			m = &Minute{Car: r.Car, Start: k.start, MinTempC: math.Inf(1), MinFuelPct: math.Inf(1)}
			accs[k] = m
		}
		m.Readings++
		m.AvgSpeedKmh += r.SpeedKmh
		m.AvgTempC += r.EngineTempC
		m.MinTempC = min(m.MinTempC, r.EngineTempC)
		m.MinFuelPct = min(m.MinFuelPct, r.FuelPct)
	}
	var mins []Minute
	var alerts []Alert
	for _, m := range accs {
		m.AvgSpeedKmh /= float64(m.Readings)
		m.AvgTempC /= float64(m.Readings)
		mins = append(mins, *m)
		if m.MinTempC > overheatC {
			alerts = append(alerts, Alert{Car: m.Car, Minute: m.Start, Kind: "overheat", Value: m.MinTempC})
		}
		if m.MinFuelPct < lowFuelPct {
			alerts = append(alerts, Alert{Car: m.Car, Minute: m.Start, Kind: "low-fuel", Value: m.MinFuelPct})
		}
	}
	return mins, alerts
}

// Topology builds the app: readings keyed by car, event time from the
// reading, per-car one-minute tumbling summaries (final results only) to
// "car-minutes", and alerts derived from them to "car-alerts".
func Topology(stats *window.Stats) (*stream.Topology, error) {
	b := stream.NewBuilder()
	rc := codec.JSON[Reading]()
	readings := stream.From(b, "car-readings", codec.String(), rc, stream.Named("car-readings"),
		stream.WithTimestamp(func(_ string, r Reading, _ time.Time) time.Time { return r.At }))
	byCar := stream.GroupByKey(readings)
	perMinute := window.Aggregate(byCar, window.Tumbling(windowSize, windowGrace),
		func() acc { return acc{MinTemp: math.Inf(1), MinFuel: math.Inf(1)} },
		func(_ string, r Reading, a acc) acc {
			a.N++
			a.SumSpeed += r.SpeedKmh
			a.SumTemp += r.EngineTempC
			a.MinTemp = min(a.MinTemp, r.EngineTempC)
			a.MinFuel = min(a.MinFuel, r.FuelPct)
			return a
		},
		"car-minute-aggregates", stream.WithValueCodec(codec.JSON[acc]()),
		window.EmitOnWindowClose(), window.WithStats(stats), stream.Named("per-car-minute"))
	minutes := stream.Map(perMinute.ToStream(), func(w window.Windowed[string], a acc) (string, Minute) {
		return w.Key, Minute{Car: w.Key, Start: w.Start.UTC(), Readings: a.N,
			AvgSpeedKmh: a.SumSpeed / float64(a.N), AvgTempC: a.SumTemp / float64(a.N),
			MinTempC: a.MinTemp, MinFuelPct: a.MinFuel}
	}, stream.Named("to-minute"))
	minutes.To("car-minutes", stream.WithValueCodec(codec.JSON[Minute]()))
	alerts := stream.FlatMapValues(minutes, func(m Minute) iter.Seq[Alert] {
		return func(yield func(Alert) bool) {
			if m.MinTempC > overheatC && !yield(Alert{Car: m.Car, Minute: m.Start, Kind: "overheat", Value: m.MinTempC}) {
				return
			}
			if m.MinFuelPct < lowFuelPct {
				yield(Alert{Car: m.Car, Minute: m.Start, Kind: "low-fuel", Value: m.MinFuelPct})
			}
		}
	}, stream.Named("alerts"))
	alerts.To("car-alerts", stream.WithValueCodec(codec.JSON[Alert]()))
	return b.Build()
}

// Simulate returns the readings of n cars driving for the given minutes,
// one per car and second, in the order they reach the broker (each up to
// maxDelay after it was measured). Some cars overheat for a few minutes;
// fuel drains at a car-specific rate, so some run low. The result depends
// only on its arguments.
func Simulate(cars, minutes int, seed uint64) []Reading {
	rng := rand.New(rand.NewPCG(seed, 11))
	start := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	type arrival struct {
		r  Reading
		at time.Time
	}
	var all []arrival
	for c := range cars {
		car := fmt.Sprintf("car-%03d", c)
		fuel := 8 + rng.Float64()*80
		drain := rng.Float64() * 0.05 // % per second
		speed := 30 + rng.Float64()*70
		overheatFrom, overheatTo := -1, -1
		if rng.IntN(4) == 0 { // one car in four overheats for 2 to 5 minutes
			overheatFrom = rng.IntN(max(1, minutes-5)) * 60
			overheatTo = overheatFrom + (2+rng.IntN(4))*60
		}
		for s := range minutes * 60 {
			speed = max(0, min(160, speed+rng.NormFloat64()*2))
			fuel = max(0, fuel-drain)
			temp := 85 + rng.NormFloat64()*3
			if s >= overheatFrom && s < overheatTo {
				temp = 115 + rng.Float64()*10
			}
			at := start.Add(time.Duration(s) * readingEvery)
			r := Reading{Car: car, At: at, SpeedKmh: math.Round(speed*10) / 10, FuelPct: math.Round(fuel*100) / 100, EngineTempC: math.Round(temp*10) / 10}
			all = append(all, arrival{r, at.Add(time.Duration(rng.Int64N(int64(maxDelay))))})
		}
	}
	slices.SortStableFunc(all, func(a, b arrival) int { return a.at.Compare(b.at) })
	out := make([]Reading, len(all))
	for i, a := range all {
		out[i] = a.r
	}
	return out
}

func produce(ctx context.Context, b broker.Broker, readings []Reading) error {
	rc := codec.JSON[Reading]()
	const batch = 1000
	recs := make([]broker.Record, 0, batch)
	for i, r := range readings {
		val, err := rc.Append(nil, r)
		if err != nil {
			return err
		}
		recs = append(recs, broker.Record{Topic: "car-readings", Partition: broker.PartitionByKey,
			Key: []byte(r.Car), Value: val, Timestamp: r.At.Add(maxDelay)})
		if len(recs) == batch || i == len(readings)-1 {
			if err := b.Produce(ctx, recs); err != nil {
				return fmt.Errorf("produce: %w", err)
			}
			recs = recs[:0]
		}
	}
	return nil
}

// ReadTopic returns the JSON values of every record of topic, partition
// by partition.
func ReadTopic[T any](ctx context.Context, b broker.Broker, topic string) ([]T, error) {
	recs, err := broker.ReadAll(ctx, b, topic)
	if err != nil {
		return nil, err
	}
	vc := codec.JSON[T]()
	out := make([]T, 0, len(recs))
	for _, r := range recs {
		v, err := vc.Decode(r.Value)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// ColdPath writes the car-minutes as JSON lines files, one per hour of
// event time ("car-minutes-2026-11-23T08.jsonl"), sorted by minute and
// car, and returns the files' paths and the number of files it removed.
// The topic is the source of truth: existing files are replaced, and
// files of other hours (left by an earlier run) are removed, so that the
// directory holds the topic's minutes only.
func ColdPath(mins []Minute, dir string) (files []string, removed int, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, 0, err
	}
	old, err := filepath.Glob(filepath.Join(dir, "car-minutes-*.jsonl"))
	if err != nil {
		return nil, 0, err
	}
	mins = slices.Clone(mins)
	slices.SortFunc(mins, func(a, b Minute) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return cmp.Compare(a.Car, b.Car)
	})
	for i := 0; i < len(mins); {
		hour := mins[i].Start.Truncate(time.Hour)
		path := filepath.Join(dir, "car-minutes-"+hour.Format("2006-01-02T15")+".jsonl")
		f, err := os.Create(path)
		if err != nil {
			return nil, 0, err
		}
		w := bufio.NewWriter(f)
		enc := json.NewEncoder(w)
		for ; i < len(mins) && mins[i].Start.Truncate(time.Hour).Equal(hour); i++ {
			if err := enc.Encode(mins[i]); err != nil {
				return nil, 0, errors.Join(err, f.Close())
			}
		}
		if err := errors.Join(w.Flush(), f.Close()); err != nil {
			return nil, 0, err
		}
		files = append(files, path)
	}
	for _, path := range old {
		if slices.Contains(files, path) {
			continue
		}
		if err := os.Remove(path); err != nil {
			return nil, 0, err
		}
		removed++
	}
	return files, removed, nil
}
