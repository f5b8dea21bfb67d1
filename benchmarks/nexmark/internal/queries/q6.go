package queries

import (
	"cmp"
	"iter"
	"slices"

	"github.com/duality-streams/duality/benchmarks/nexmark/internal/gen"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
	"github.com/duality-streams/duality/window"
)

// Q6Row is q6's output.
type Q6Row struct {
	Seller int64 `json:"seller" msgpack:"seller"`
	Avg    int64 `json:"avg" msgpack:"avg"` // cents, rounded down
}

// q6Win is an auction's winning bid so far, with what q6 needs of the
// auction.
type q6Win struct {
	Auction int64 `msgpack:"a"`
	Seller  int64 `msgpack:"s"`
	Expires int64 `msgpack:"e"`
	Price   int64 `msgpack:"p"`
	Valid   bool  `msgpack:"v"`
}

// q6Last is a seller's last (latest to expire) q6Last winning bids.
type q6Last struct {
	Seller int64   `msgpack:"s"`
	Wins   []q6Win `msgpack:"w"`
}

const q6Last10 = 10

// newer orders winning bids by expiry, then auction id, latest first.
func newer(a, b q6Win) int {
	return cmp.Or(cmp.Compare(b.Expires, a.Expires), cmp.Compare(b.Auction, a.Auction))
}

func (l q6Last) avg() Q6Row {
	if len(l.Wins) == 0 {
		return Q6Row{Seller: l.Seller}
	}
	var sum int64
	for _, w := range l.Wins {
		sum += w.Price
	}
	return Q6Row{l.Seller, sum / int64(len(l.Wins))}
}

// q6, average selling price by seller: the average winning price (as in
// q4) of each seller's last 10 auctions, by expiry. As a bounded run's
// final output: one row per seller. The winning bids are a table (max per
// auction) re-grouped by seller with retraction: when an auction's winning
// bid rises, its old price is subtracted and the new one added, so the
// aggregate, which keeps only the 10 auctions expiring last, stays exact
// (an update replaces an entry with the same expiry).
func q6() Query {
	return Query{
		Name:  "q6",
		Table: true,
		Build: func(b *stream.Builder, env Env) {
			ev := events(b)
			auctions := stream.MapValues(ev.Filter(isAuction, stream.Named("auctions")),
				func(e gen.Event) gen.Auction { return *e.Auction }, stream.Named("auction-values"))
			byID := stream.GroupBy(auctions, func(_ []byte, a gen.Auction) int64 { return a.ID }, stream.Named("auction-by-id"))
			byAuction := stream.GroupBy(bids(ev), func(_ []byte, b gen.Bid) int64 { return b.Auction }, stream.Named("bid-by-auction"))
			during := window.JoinTimeDifference(env.Gen.MaxAuctionDuration(), env.Grace).Before(0)
			joined := window.Join(byID, byAuction, during, func(_ int64, a gen.Auction, b gen.Bid) q6Win {
				return q6Win{a.ID, a.Seller, a.Expires, b.Price, b.DateTime <= a.Expires}
			}, "q6-auction-bids", window.WithStats(env.Stats))
			valid := joined.Filter(func(_ int64, w q6Win) bool { return w.Valid }, stream.Named("before-expiry"))
			wins := table.Reduce(stream.GroupByKey(valid), func(w, b q6Win) q6Win {
				if b.Price > w.Price {
					return b
				}
				return w
			}, "q6-winning-bids")
			bySeller := table.GroupBy(wins, func(_ int64, w q6Win) (int64, q6Win) { return w.Seller, w })
			last := table.AggregateTable(bySeller, func() q6Last { return q6Last{} },
				func(seller int64, w q6Win, l q6Last) q6Last {
					l.Seller = seller
					i, _ := slices.BinarySearchFunc(l.Wins, w, newer)
					l.Wins = slices.Insert(l.Wins, i, w)
					if len(l.Wins) > q6Last10 {
						l.Wins = l.Wins[:q6Last10]
					}
					return l
				},
				func(seller int64, w q6Win, l q6Last) q6Last {
					l.Seller = seller
					l.Wins = slices.DeleteFunc(l.Wins, func(x q6Win) bool { return x.Auction == w.Auction })
					return l
				}, "q6-last-wins")
			table.MapValues(last, q6Last.avg, stream.Named("q6-avg")).ToStream().To(OutputTopic("q6"))
		},
		Rows: decodeRows(codec.Msgpack[Q6Row]()),
		Reference: func(_ *gen.Generator, events iter.Seq2[int64, gen.Event]) []any {
			auctions := map[int64]gen.Auction{}
			wins := map[int64]q6Win{}
			for _, e := range events {
				switch e.Kind {
				case gen.KindAuction:
					auctions[e.Auction.ID] = *e.Auction
				case gen.KindBid:
					// A bid naming an auction not created yet is before
					// it, so never valid.
					b := e.Bid
					a, ok := auctions[b.Auction]
					if !ok || b.DateTime < a.DateTime || b.DateTime > a.Expires {
						continue
					}
					if w, ok := wins[a.ID]; !ok || b.Price > w.Price {
						wins[a.ID] = q6Win{a.ID, a.Seller, a.Expires, b.Price, true}
					}
				}
			}
			bySeller := map[int64][]q6Win{}
			for _, w := range wins {
				bySeller[w.Seller] = append(bySeller[w.Seller], w)
			}
			var out []any
			for s, ws := range bySeller {
				slices.SortFunc(ws, newer)
				out = append(out, q6Last{s, ws[:min(len(ws), q6Last10)]}.avg())
			}
			return out
		},
	}
}
