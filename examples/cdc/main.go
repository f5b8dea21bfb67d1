// Command cdc is Duality's change-data-capture example, on the
// embedded broker or on Kafka: a compacted topic of customer records becomes a table, orders are
// enriched with it, and customers are counted per country.
//
// The topic "customers" holds the change log of a customer database: one
// record per insert or update (key: customer id, value: the customer as
// JSON) and a tombstone (nil value) per delete, as a CDC connector such as
// Debezium writes them. It is compacted, so it keeps the newest row of
// every customer forever. The topology
//
//   - reads it as a table (table.From): the newest value per id wins and a
//     tombstone deletes the customer;
//   - joins every record of the "orders" stream with the customer's row at
//     the time the order is processed (table.LeftJoin) and writes the
//     enriched orders to "orders-enriched"; an order of an unknown or
//     deleted customer is kept, marked as such;
//   - counts customers per country with a table GroupBy whose subtractor
//     retracts a customer from its old country when it moves, and from its
//     country when it is deleted, and writes the counts to
//     "customers-per-country".
//
// The command first inserts customers, then appends rounds: each appends
// customer changes (new customers, moves to another country, renames,
// deletes) and orders mixed at random, with rising timestamps. That is a
// bounded input: the app runs with duality.App.RunToEnd, which returns
// once every record is processed, through the repartition of the counts.
// A task processes the records of its partitions of both topics in
// timestamp order (waiting, up to duality.MaxTaskIdle, for a partition
// that is behind), so each order is joined with its customer's row as of
// the order's timestamp, although the app reads all rounds in one backlog.
// At the end the command checks every output against a model computed
// without the framework and prints a summary; it exits 1 on a mismatch,
// and on any other failure (the app's included), after printing the
// error.
//
//	go run ./examples/cdc
//	go run ./examples/cdc -customers 5000 -rounds 5 -orders 20000 -dir /tmp/cdc
//
// With -kfake it runs on an in-process kfake cluster (a Kafka test
// cluster started for the run), with -brokers host:port,... on a Kafka
// cluster, such as the one go run ./cmd/kfake serves; the topology is the
// same, only the broker's constructor differs:
//
//	go run ./examples/cdc -kfake
//	go run ./examples/cdc -brokers 127.0.0.1:9092
//
// With -dir the data directory is kept for inspection, and a second run
// needs a fresh one: the command refuses a directory that holds its
// topics, because the model it checks against is that of one run's
// changes, and the topics would hold the earlier runs' too.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/examples/internal/exbroker"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
)

const (
	appID          = "cdc"
	customersTopic = "customers"
	ordersTopic    = "orders"
	enrichedTopic  = "orders-enriched"
	countsTopic    = "customers-per-country"
	countsStore    = "customers-per-country"
	customersStore = "customers"
)

// Customer is a row of the customers table.
type Customer struct {
	Name    string `json:"name"`
	Country string `json:"country"`
}

// Order is a record of the orders stream, keyed by customer id.
type Order struct {
	ID     int64 `json:"id"`
	Amount int64 `json:"amount_cents"`
}

// EnrichedOrder is an order joined with its customer's row.
type EnrichedOrder struct {
	Order
	// Known is false for an order of a customer that does not exist (never
	// inserted, or deleted); Name and Country are then empty.
	Known   bool   `json:"known"`
	Name    string `json:"name,omitempty"`
	Country string `json:"country,omitempty"`
}

var countries = []string{"AR", "BR", "DE", "FR", "IN", "JP", "NL", "NG", "US", "VN"}

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "cdc:", err)
		os.Exit(1)
	}
}

type params struct {
	customers, rounds, orders, partitions int
	seed                                  uint64
}

func run(ctx context.Context, args []string, stdout io.Writer) (err error) {
	fs := flag.NewFlagSet("cdc", flag.ContinueOnError)
	var p params
	fs.IntVar(&p.customers, "customers", 2000, "customers inserted in the first round")
	fs.IntVar(&p.rounds, "rounds", 3, "rounds of customer changes followed by orders")
	fs.IntVar(&p.orders, "orders", 5000, "orders appended per round")
	fs.IntVar(&p.partitions, "partitions", 4, "partitions of every topic")
	fs.Uint64Var(&p.seed, "seed", 1, "seed of the generated changes and orders")
	dir := fs.String("dir", "", "data directory (default: a temporary one, removed at exit)")
	verbose := fs.Bool("v", false, "log the runtime's steps")
	brokerFlags := exbroker.Register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if p.customers < 1 || p.rounds < 1 || p.orders < 0 || p.partitions < 1 {
		return errors.New("-customers, -rounds and -partitions must be >= 1 and -orders >= 0")
	}
	if *dir == "" {
		tmp, err := os.MkdirTemp("", "duality-cdc-")
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
	if brokerFlags.Kafka() {
		fmt.Fprintf(stdout, "topics %s\n", b.Where)
	}
	topics := []struct {
		name    string
		cleanup broker.CleanupPolicy
	}{
		{customersTopic, broker.CleanupCompact},
		{ordersTopic, broker.CleanupDelete},
		{enrichedTopic, broker.CleanupDelete},
		{countsTopic, broker.CleanupCompact},
	}
	for _, topic := range topics {
		err := b.CreateTopic(ctx, topic.name, broker.TopicConfig{Partitions: int32(p.partitions), Cleanup: topic.cleanup})
		if errors.Is(err, broker.ErrTopicExists) {
			return fmt.Errorf("topic %q exists %s: cdc needs a fresh data directory, or on Kafka a cluster without its topics "+
				"(its check models the changes of one run; the topics would hold an earlier run's too)", topic.name, b.Where)
		}
		if err != nil {
			return err
		}
	}

	topo, err := topology()
	if err != nil {
		return err
	}
	app, err := duality.New(appID, topo, b, duality.Logger(logger), duality.StateDir(filepath.Join(*dir, "state")))
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, app.Describe())
	m := newModel(p.seed)
	for r := range p.rounds {
		var recs []broker.Record
		if r == 0 {
			recs = m.changeCustomers(p.customers, false)
		}
		recs = append(recs, m.mixed(p.customers/5, p.orders)...)
		if err := produce(ctx, b, recs); err != nil {
			return err
		}
	}
	start := time.Now()
	if err := app.RunToEnd(ctx); err != nil {
		return err
	}
	elapsed := time.Since(start)
	fmt.Fprintf(stdout, "\n%d rounds: %d customer changes (%d inserts, %d moves, %d renames, %d deletes), %d orders, processed in %v\n",
		p.rounds, m.inserts+m.moves+m.renames+m.deletes, m.inserts, m.moves, m.renames, m.deletes, len(m.orders), elapsed.Round(time.Millisecond))
	return check(ctx, b, m, stdout)
}

// topology reads customers as a table, enriches orders with it and counts
// customers per country.
func topology() (*stream.Topology, error) {
	b := stream.NewBuilder()
	customers := table.From(b, customersTopic, codec.String(), codec.JSON[Customer](), customersStore)

	orders := stream.From(b, ordersTopic, codec.String(), codec.JSON[Order]())
	enriched := table.LeftJoin(orders, customers, func(_ string, o Order, c Customer, found bool) EnrichedOrder {
		return EnrichedOrder{Order: o, Known: found, Name: c.Name, Country: c.Country}
	})
	enriched.To(enrichedTopic, stream.WithValueCodec(codec.JSON[EnrichedOrder]()))

	byCountry := table.GroupBy(customers, func(id string, c Customer) (string, string) { return c.Country, id },
		stream.Named("by-country"))
	byCountry.Count(countsStore).ToStream().To(countsTopic)
	return b.Build()
}

// model is the expected state, computed without the framework.
type model struct {
	rng       *rand.Rand
	customers map[string]Customer // current rows
	nextID    int
	nextOrder int64
	// clock is the timestamp of the next record: every record gets its
	// own millisecond, so timestamp order is the order of the model.
	clock time.Time
	// orders are the expected enriched orders, in the order appended.
	orders                           []keyed[EnrichedOrder]
	inserts, moves, renames, deletes int
}

type keyed[V any] struct {
	key   string
	value V
}

func newModel(seed uint64) *model {
	return &model{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), customers: map[string]Customer{},
		clock: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

// tick returns the timestamp of the next record.
func (m *model) tick() time.Time {
	m.clock = m.clock.Add(time.Millisecond)
	return m.clock
}

// mixed returns changes customer changes and orders orders in a random
// interleaving (customer changes as changeCustomers with mix).
func (m *model) mixed(changes, orders int) []broker.Record {
	recs := make([]broker.Record, 0, changes+orders)
	for changes+orders > 0 {
		if m.rng.IntN(changes+orders) < changes {
			recs = append(recs, m.changeCustomers(1, true)...)
			changes--
		} else {
			recs = append(recs, m.placeOrders(1)...)
			orders--
		}
	}
	return recs
}

// changeCustomers returns n customer changes: only inserts in the first
// round, a mix of inserts, moves, renames and deletes later.
func (m *model) changeCustomers(n int, mix bool) []broker.Record {
	recs := make([]broker.Record, 0, n)
	ids := slices.Sorted(maps.Keys(m.customers))
	for range n {
		kind := 0 // insert
		if mix && len(ids) > 0 {
			kind = m.rng.IntN(4)
		}
		if kind == 0 {
			id := fmt.Sprintf("c%05d", m.nextID)
			m.nextID++
			c := Customer{Name: fmt.Sprintf("customer %d", m.nextID), Country: countries[m.rng.IntN(len(countries))]}
			m.customers[id] = c
			m.inserts++
			recs = append(recs, customerRecord(id, &c, m.tick()))
			continue
		}
		id := ids[m.rng.IntN(len(ids))]
		c, ok := m.customers[id]
		switch {
		case !ok:
			// Deleted earlier in this batch: deleting again is a
			// tombstone for an absent row, which changes nothing.
			recs = append(recs, customerRecord(id, nil, m.tick()))
			continue
		case kind == 1:
			c.Country = countries[m.rng.IntN(len(countries))]
			m.moves++
		case kind == 2:
			c.Name += "'"
			m.renames++
		default:
			delete(m.customers, id)
			m.deletes++
			recs = append(recs, customerRecord(id, nil, m.tick()))
			continue
		}
		m.customers[id] = c
		recs = append(recs, customerRecord(id, &c, m.tick()))
	}
	return recs
}

func customerRecord(id string, c *Customer, ts time.Time) broker.Record {
	r := broker.Record{Topic: customersTopic, Partition: broker.PartitionByKey, Key: []byte(id), Timestamp: ts}
	if c != nil {
		v, err := codec.JSON[Customer]().Append(nil, *c)
		if err != nil {
			panic(err) // Customer always encodes
		}
		r.Value = v
	}
	return r
}

// placeOrders returns n orders of random customer ids, some of which do
// not exist (never inserted, or deleted), and records what the join must
// make of them given the current customers.
func (m *model) placeOrders(n int) []broker.Record {
	recs := make([]broker.Record, 0, n)
	for range n {
		id := fmt.Sprintf("c%05d", m.rng.IntN(m.nextID+m.nextID/10+1))
		m.nextOrder++
		o := Order{ID: m.nextOrder, Amount: 100 + m.rng.Int64N(100_000)}
		c, known := m.customers[id]
		m.orders = append(m.orders, keyed[EnrichedOrder]{id, EnrichedOrder{Order: o, Known: known, Name: c.Name, Country: c.Country}})
		v, err := codec.JSON[Order]().Append(nil, o)
		if err != nil {
			panic(err) // Order always encodes
		}
		recs = append(recs, broker.Record{Topic: ordersTopic, Partition: broker.PartitionByKey, Key: []byte(id), Value: v, Timestamp: m.tick()})
	}
	return recs
}

// perCountry returns the number of current customers per country.
func (m *model) perCountry() map[string]int64 {
	n := map[string]int64{}
	for _, c := range m.customers {
		n[c.Country]++
	}
	return n
}

func produce(ctx context.Context, b broker.Broker, recs []broker.Record) error {
	for chunk := range slices.Chunk(recs, 1000) {
		if err := b.Produce(ctx, chunk); err != nil {
			return fmt.Errorf("produce: %w", err)
		}
	}
	return nil
}

// check compares the output topics with the model and prints a summary.
func check(ctx context.Context, b broker.Broker, m *model, stdout io.Writer) error {
	enriched, err := readAll(ctx, b, enrichedTopic, codec.JSON[EnrichedOrder]())
	if err != nil {
		return err
	}
	var problems []error
	// Orders of one customer id keep their order (one partition).
	want := map[string][]EnrichedOrder{}
	for _, o := range m.orders {
		want[o.key] = append(want[o.key], o.value)
	}
	got := map[string][]EnrichedOrder{}
	var known, unknown int
	for _, r := range enriched {
		got[r.key] = append(got[r.key], *r.value)
		if r.value.Known {
			known++
		} else {
			unknown++
		}
	}
	for id, w := range want {
		if g := got[id]; !slices.Equal(g, w) {
			problems = append(problems, fmt.Errorf("orders of %s: got %d enriched orders %v, want %d %v", id, len(g), g, len(w), w))
		}
	}
	if len(enriched) != len(m.orders) {
		problems = append(problems, fmt.Errorf("%d enriched orders, want %d", len(enriched), len(m.orders)))
	}
	fmt.Fprintf(stdout, "%q: %d orders, %d with their customer, %d of unknown or deleted customers\n", enrichedTopic, len(enriched), known, unknown)

	updates, err := readAll(ctx, b, countsTopic, codec.Int64())
	if err != nil {
		return err
	}
	counts := map[string]int64{}
	for _, r := range updates {
		if r.value == nil {
			delete(counts, r.key)
		} else {
			counts[r.key] = *r.value
		}
	}
	for country, n := range counts {
		if n == 0 {
			delete(counts, country) // a country whose last customer left
		}
	}
	wantCounts := m.perCountry()
	if !maps.Equal(counts, wantCounts) {
		problems = append(problems, fmt.Errorf("customers per country: got %v, want %v", counts, wantCounts))
	}
	fmt.Fprintf(stdout, "%q: %d updates; %d customers now:\n", countsTopic, len(updates), len(m.customers))
	for _, country := range slices.SortedFunc(maps.Keys(counts), func(a, b string) int {
		return cmp.Or(cmp.Compare(counts[b], counts[a]), cmp.Compare(a, b))
	}) {
		fmt.Fprintf(stdout, "  %s %5d\n", country, counts[country])
	}
	if len(problems) > 0 {
		return fmt.Errorf("outputs differ from the model: %w", errors.Join(problems...))
	}
	fmt.Fprintln(stdout, "every output matches the model computed without the framework")
	return nil
}

// readAll returns every record of topic, partition by partition, with
// values decoded by vc (nil for a tombstone).
func readAll[V any](ctx context.Context, b broker.Broker, topic string, vc codec.Codec[V]) ([]keyed[*V], error) {
	recs, err := broker.ReadAll(ctx, b, topic)
	if err != nil {
		return nil, err
	}
	out := make([]keyed[*V], 0, len(recs))
	for _, r := range recs {
		k := keyed[*V]{key: string(r.Key)}
		if r.Value != nil {
			v, err := vc.Decode(r.Value)
			if err != nil {
				return nil, fmt.Errorf("%s/%d@%d: %w", topic, r.Partition, r.Offset, err)
			}
			k.value = &v
		}
		out = append(out, k)
	}
	return out, nil
}
