package queries

import (
	"iter"

	"github.com/duality-streams/duality/benchmarks/nexmark/internal/gen"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
)

// refBids yields the bids among events.
func refBids(events iter.Seq2[int64, gen.Event]) iter.Seq[gen.Bid] {
	return func(yield func(gen.Bid) bool) {
		for _, e := range events {
			if e.Kind == gen.KindBid && !yield(*e.Bid) {
				return
			}
		}
	}
}

// q0, pass-through: every bid, unchanged.
func q0() Query {
	return Query{
		Name: "q0",
		Build: func(b *stream.Builder, _ Env) {
			bids(events(b)).To(OutputTopic("q0"))
		},
		Rows:  decodeRows(gen.BidCodec()),
		Plain: plainBids("q0", gen.BidCodec(), func(b gen.Bid) (gen.Bid, bool) { return b, true }),
		Reference: func(_ *gen.Generator, events iter.Seq2[int64, gen.Event]) []any {
			var out []any
			for b := range refBids(events) {
				out = append(out, b)
			}
			return out
		},
	}
}

// dollarToEuro converts a price in cents as q1 does: price * 0.908, in
// whole cents rounded down (integer arithmetic, so exact).
func dollarToEuro(cents int64) int64 { return cents * 908 / 1000 }

// q1, currency conversion: every bid with its price times 0.908.
func q1() Query {
	return Query{
		Name: "q1",
		Build: func(b *stream.Builder, _ Env) {
			euros := stream.MapValues(bids(events(b)), func(b gen.Bid) gen.Bid {
				b.Price = dollarToEuro(b.Price)
				return b
			}, stream.Named("to-euro"))
			euros.To(OutputTopic("q1"))
		},
		Rows: decodeRows(gen.BidCodec()),
		Plain: plainBids("q1", gen.BidCodec(), func(b gen.Bid) (gen.Bid, bool) {
			b.Price = dollarToEuro(b.Price)
			return b, true
		}),
		Reference: func(_ *gen.Generator, events iter.Seq2[int64, gen.Event]) []any {
			var out []any
			for b := range refBids(events) {
				b.Price = dollarToEuro(b.Price)
				out = append(out, b)
			}
			return out
		},
	}
}

// Q2Row is q2's output.
type Q2Row struct {
	Auction int64 `json:"auction" msgpack:"auction"`
	Price   int64 `json:"price" msgpack:"price"`
}

// q2, selection: (auction, price) of the bids on auctions whose id is a
// multiple of 123.
func q2() Query {
	return Query{
		Name: "q2",
		Build: func(b *stream.Builder, _ Env) {
			sel := bids(events(b)).Filter(func(_ []byte, b gen.Bid) bool { return b.Auction%123 == 0 }, stream.Named("auction-123"))
			stream.MapValues(sel, func(b gen.Bid) Q2Row { return Q2Row{b.Auction, b.Price} }, stream.Named("auction-price")).
				To(OutputTopic("q2"))
		},
		Rows: decodeRows(codec.Msgpack[Q2Row]()),
		Plain: plainBids("q2", codec.Msgpack[Q2Row](), func(b gen.Bid) (Q2Row, bool) {
			return Q2Row{b.Auction, b.Price}, b.Auction%123 == 0
		}),
		Reference: func(_ *gen.Generator, events iter.Seq2[int64, gen.Event]) []any {
			var out []any
			for b := range refBids(events) {
				if b.Auction%123 == 0 {
					out = append(out, Q2Row{b.Auction, b.Price})
				}
			}
			return out
		},
	}
}

// Q13Row is q13's output: a bid and the side input's value for it.
type Q13Row struct {
	gen.Bid
	Value string `json:"value" msgpack:"value"`
}

// q13, bounded side input join: every bid joined with the side input (a
// global table) at key auction % 10000.
func q13() Query {
	return Query{
		Name: "q13",
		Side: true,
		Build: func(b *stream.Builder, _ Env) {
			side := table.Global(b, SideTopic, codec.Int64(), codec.String(), "q13-side")
			joined := table.JoinGlobal(bids(events(b)), side,
				func(_ []byte, b gen.Bid) int64 { return b.Auction % SideKeys },
				func(_ []byte, b gen.Bid, v string) Q13Row { return Q13Row{b, v} },
				stream.Named("join-side"))
			joined.To(OutputTopic("q13"))
		},
		Rows: decodeRows(codec.Msgpack[Q13Row]()),
		Reference: func(_ *gen.Generator, events iter.Seq2[int64, gen.Event]) []any {
			var out []any
			for b := range refBids(events) {
				out = append(out, Q13Row{b, SideValue(b.Auction % SideKeys)})
			}
			return out
		},
	}
}
