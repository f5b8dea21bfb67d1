// Package queries holds the Nexmark queries written in Duality's DSL, each
// with a plain-Go reference computed from the same events, and Run, which
// runs a query over a bounded input to its end (duality.App.RunToEnd on the
// embedded broker) and returns its final output for Check.
package queries

import (
	"encoding/json"
	"fmt"
	"iter"
	"slices"
	"strings"
	"time"

	"github.com/duality-streams/duality/benchmarks/nexmark/internal/gen"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/window"
)

// Topics read and written by the queries.
const (
	// EventsTopic holds the generated events, event n in partition n % P,
	// with the event time as the record timestamp and no key.
	EventsTopic = "nexmark-events"
	// SideTopic holds q13's side input: SideKeys keys, key i (Int64) with
	// the value SideValue(i).
	SideTopic = "nexmark-side"
	// SideKeys is the number of keys of the side input.
	SideKeys = 10_000
)

// SideValue is the side input's value for key i.
func SideValue(i int64) string { return fmt.Sprintf("side-%d", i) }

// OutputTopic is the topic a query writes its output to.
func OutputTopic(query string) string { return query + "-out" }

// Env is what a query's topology needs besides the builder.
type Env struct {
	Gen   *gen.Generator
	Stats *window.Stats // the windowed steps' counters (late records)
	Grace time.Duration // grace of windows and joins: how far behind stream time a record may arrive
}

// Query is one Nexmark query.
type Query struct {
	Name string
	// Build adds the query to b: it reads EventsTopic (and SideTopic when
	// Side is set) and writes OutputTopic(Name).
	Build func(b *stream.Builder, env Env)
	// Table says the output topic is a table's change stream: the final
	// output is the newest value of each key, a tombstone deleting it.
	// Otherwise every record of the output topic is output.
	Table bool
	// Side says the query reads SideTopic.
	Side bool
	// Rows decodes one output record value into output rows.
	Rows func(value []byte) ([]any, error)
	// Plain, if set, is the query's ceiling (RunPlain): the same work in
	// plain Go over one fetched event record, with no DSL and no runtime.
	// It appends the output records of r to out and returns out, and is
	// safe for concurrent use. The stateless queries q0, q1 and q2 have
	// one.
	Plain func(r broker.Record, out []broker.Record) ([]broker.Record, error)
	// Reference computes the expected final output rows from the events
	// without the framework.
	Reference func(g *gen.Generator, events iter.Seq2[int64, gen.Event]) []any
}

// All returns the queries of the suite, in order.
func All() []Query {
	return []Query{q0(), q1(), q2(), q3(), q4(), q5(), q6(), q7(), q8(), q11(), q13(), q20()}
}

// ByName returns the query named name.
func ByName(name string) (Query, bool) {
	for _, q := range All() {
		if q.Name == name {
			return q, true
		}
	}
	return Query{}, false
}

// events is the stream of all events, timestamped by the broker record
// (the event time the producer set).
func events(b *stream.Builder) stream.Stream[[]byte, gen.Event] {
	return stream.From(b, EventsTopic, codec.Bytes(), gen.EventCodec(), stream.Named("events"))
}

// bids is the stream of the bids among the events.
func bids(ev stream.Stream[[]byte, gen.Event]) stream.Stream[[]byte, gen.Bid] {
	return stream.MapValues(ev.Filter(func(_ []byte, e gen.Event) bool { return e.Kind == gen.KindBid }, stream.Named("bids")),
		func(e gen.Event) gen.Bid { return *e.Bid }, stream.Named("bid-values"), stream.WithValueCodec(gen.BidCodec()))
}

// decodeRows returns a Rows function decoding values of type T with c
// into one row each.
func decodeRows[T any](c codec.Codec[T]) func([]byte) ([]any, error) {
	return func(b []byte) ([]any, error) {
		v, err := c.Decode(b)
		if err != nil {
			return nil, err
		}
		return []any{v}, nil
	}
}

// Check compares rows, the final output of q over count events of g, with
// q's reference, as multisets of JSON lines. The error lists the first
// differences.
func Check(q Query, g *gen.Generator, count int64, rows []any) error {
	got, err := jsonLines(rows)
	if err != nil {
		return err
	}
	want, err := jsonLines(q.Reference(g, g.Events(0, count, 1)))
	if err != nil {
		return err
	}
	slices.Sort(got)
	slices.Sort(want)
	if slices.Equal(got, want) {
		return nil
	}
	var missing, extra []string
	i, j := 0, 0
	for i < len(want) || j < len(got) {
		switch {
		case j == len(got) || (i < len(want) && want[i] < got[j]):
			missing = append(missing, want[i])
			i++
		case i == len(want) || got[j] < want[i]:
			extra = append(extra, got[j])
			j++
		default:
			i++
			j++
		}
	}
	head := func(s []string) string {
		if len(s) > 3 {
			s = append(s[:3:3], "...")
		}
		return strings.Join(s, "\n    ")
	}
	return fmt.Errorf("%s: output differs from the reference: %d rows, want %d; %d missing:\n    %s\n  %d unexpected:\n    %s",
		q.Name, len(got), len(want), len(missing), head(missing), len(extra), head(extra))
}

// JSONLines returns each row as one line of JSON.
func jsonLines(rows []any) ([]string, error) {
	out := make([]string, len(rows))
	for i, r := range rows {
		b, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		out[i] = string(b)
	}
	return out, nil
}
