package queries

import (
	"iter"

	"github.com/duality-streams/duality/benchmarks/nexmark/internal/gen"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
	"github.com/duality-streams/duality/window"
)

func isAuction(_ []byte, e gen.Event) bool { return e.Kind == gen.KindAuction }

// Q3Row is q3's output.
type Q3Row struct {
	Name    string `json:"name" msgpack:"name"`
	City    string `json:"city" msgpack:"city"`
	State   string `json:"state" msgpack:"state"`
	Auction int64  `json:"id" msgpack:"id"`
}

func q3State(s string) bool { return s == "OR" || s == "ID" || s == "CA" }

// q3, local item suggestion: the auctions of category 10 whose seller
// lives in Oregon, Idaho or California, with the seller's name, city and
// state. As in Flink's SQL, an unbounded join: auctions and sellers are
// tables (the newest row per id), joined by the auction's seller, a
// foreign key, so the result does not depend on which side arrives first.
func q3() Query {
	return Query{
		Name:  "q3",
		Table: true,
		Build: func(b *stream.Builder, _ Env) {
			ev := events(b)
			auctions := stream.Map(ev.Filter(func(_ []byte, e gen.Event) bool {
				return e.Kind == gen.KindAuction && e.Auction.Category == 10
			}, stream.Named("category-10")), func(_ []byte, e gen.Event) (int64, gen.Auction) {
				return e.Auction.ID, *e.Auction
			}, stream.Named("auction-by-id"))
			persons := stream.Map(ev.Filter(func(_ []byte, e gen.Event) bool {
				return e.Kind == gen.KindPerson && q3State(e.Person.State)
			}, stream.Named("or-id-ca")), func(_ []byte, e gen.Event) (int64, gen.Person) {
				return e.Person.ID, *e.Person
			}, stream.Named("person-by-id"))
			latestAuction := func(_, v gen.Auction) gen.Auction { return v }
			latestPerson := func(_, v gen.Person) gen.Person { return v }
			auctionTable := table.Reduce(stream.GroupByKey(auctions), latestAuction, "q3-auctions")
			personTable := table.Reduce(stream.GroupByKey(persons), latestPerson, "q3-persons")
			joined := table.JoinByForeignKey(auctionTable, personTable,
				func(a gen.Auction) int64 { return a.Seller },
				func(a gen.Auction, p gen.Person) Q3Row { return Q3Row{p.Name, p.City, p.State, a.ID} },
				"q3-join")
			joined.ToStream().To(OutputTopic("q3"))
		},
		Rows: decodeRows(codec.Msgpack[Q3Row]()),
		Reference: func(_ *gen.Generator, events iter.Seq2[int64, gen.Event]) []any {
			persons := map[int64]gen.Person{}
			var auctions []gen.Auction
			for _, e := range events {
				switch {
				case e.Kind == gen.KindPerson && q3State(e.Person.State):
					persons[e.Person.ID] = *e.Person
				case e.Kind == gen.KindAuction && e.Auction.Category == 10:
					auctions = append(auctions, *e.Auction)
				}
			}
			var out []any
			for _, a := range auctions {
				if p, ok := persons[a.Seller]; ok {
					out = append(out, Q3Row{p.Name, p.City, p.State, a.ID})
				}
			}
			return out
		},
	}
}

// Q4Row is q4's output.
type Q4Row struct {
	Category int64 `json:"category" msgpack:"category"`
	Avg      int64 `json:"avg" msgpack:"avg"` // cents, rounded down (SQL AVG of integers)
}

// q4Win is the winning bid of an auction so far.
type q4Win struct {
	Category int64 `msgpack:"c"`
	Price    int64 `msgpack:"p"`
}

// q4Sum is a category's sum and count of winning prices.
type q4Sum struct {
	Category int64 `msgpack:"c"`
	Sum      int64 `msgpack:"s"`
	Count    int64 `msgpack:"n"`
}

// q4, average price per category: the winning bid of every auction (its
// highest bid with a time in [auction.dateTime, auction.expires]), then
// the average winning price per category. Bids join their auction in a
// stream-stream join whose window covers the longest auction; the winning
// bids are a table (max per auction), re-grouped by category with
// retraction, so when an auction's winning bid rises its old price leaves
// the category's average.
func q4() Query {
	return Query{
		Name:  "q4",
		Table: true,
		Build: func(b *stream.Builder, env Env) {
			ev := events(b)
			auctions := stream.MapValues(ev.Filter(isAuction, stream.Named("auctions")),
				func(e gen.Event) gen.Auction { return *e.Auction }, stream.Named("auction-values"))
			byID := stream.GroupBy(auctions, func(_ []byte, a gen.Auction) int64 { return a.ID }, stream.Named("auction-by-id"))
			byAuction := stream.GroupBy(bids(ev), func(_ []byte, b gen.Bid) int64 { return b.Auction }, stream.Named("bid-by-auction"))
			// An auction at t joins the bids of [t, t + longest auction].
			during := window.JoinTimeDifference(env.Gen.MaxAuctionDuration(), env.Grace).Before(0)
			joined := window.Join(byID, byAuction, during, func(_ int64, a gen.Auction, b gen.Bid) q4Bid {
				return q4Bid{Category: a.Category, Price: b.Price, Valid: b.DateTime <= a.Expires}
			}, "q4-auction-bids", window.WithStats(env.Stats))
			valid := joined.Filter(func(_ int64, b q4Bid) bool { return b.Valid }, stream.Named("before-expiry"))
			wins := table.Reduce(stream.GroupByKey(stream.MapValues(valid, func(b q4Bid) q4Win {
				return q4Win{b.Category, b.Price}
			}, stream.Named("win"))), func(w, b q4Win) q4Win {
				if b.Price > w.Price {
					return b
				}
				return w
			}, "q4-winning-bids")
			byCategory := table.GroupBy(wins, func(_ int64, w q4Win) (int64, int64) { return w.Category, w.Price })
			sums := table.AggregateTable(byCategory, func() q4Sum { return q4Sum{} },
				func(c int64, price int64, s q4Sum) q4Sum { return q4Sum{c, s.Sum + price, s.Count + 1} },
				func(c int64, price int64, s q4Sum) q4Sum { return q4Sum{c, s.Sum - price, s.Count - 1} },
				"q4-category-sums")
			avg := table.MapValues(sums, func(s q4Sum) Q4Row {
				if s.Count == 0 {
					return Q4Row{Category: s.Category}
				}
				return Q4Row{s.Category, s.Sum / s.Count}
			}, stream.Named("q4-avg"))
			avg.ToStream().To(OutputTopic("q4"))
		},
		Rows: decodeRows(codec.Msgpack[Q4Row]()),
		Reference: func(_ *gen.Generator, events iter.Seq2[int64, gen.Event]) []any {
			auctions := map[int64]gen.Auction{}
			var bids []gen.Bid
			for _, e := range events {
				switch e.Kind {
				case gen.KindAuction:
					auctions[e.Auction.ID] = *e.Auction
				case gen.KindBid:
					bids = append(bids, *e.Bid)
				}
			}
			wins := map[int64]int64{}
			for _, b := range bids {
				a, ok := auctions[b.Auction]
				if !ok || b.DateTime < a.DateTime || b.DateTime > a.Expires {
					continue
				}
				if p, ok := wins[a.ID]; !ok || b.Price > p {
					wins[a.ID] = b.Price
				}
			}
			sums := map[int64]q4Sum{}
			for id, p := range wins {
				s := sums[auctions[id].Category]
				sums[auctions[id].Category] = q4Sum{auctions[id].Category, s.Sum + p, s.Count + 1}
			}
			var out []any
			for c, s := range sums {
				out = append(out, Q4Row{c, s.Sum / s.Count})
			}
			return out
		},
	}
}

// q4Bid is a bid joined with its auction.
type q4Bid struct {
	Category int64 `msgpack:"c"`
	Price    int64 `msgpack:"p"`
	Valid    bool  `msgpack:"v"` // placed before the auction expired
}

// Q20Row is q20's output: a bid with its auction's fields.
type Q20Row struct {
	Auction         int64  `json:"auction" msgpack:"auction"`
	Bidder          int64  `json:"bidder" msgpack:"bidder"`
	Price           int64  `json:"price" msgpack:"price"`
	Channel         string `json:"channel" msgpack:"channel"`
	URL             string `json:"url" msgpack:"url"`
	DateTime        int64  `json:"dateTime" msgpack:"dateTime"`
	Extra           string `json:"extra" msgpack:"extra"`
	ItemName        string `json:"itemName" msgpack:"itemName"`
	Description     string `json:"description" msgpack:"description"`
	InitialBid      int64  `json:"initialBid" msgpack:"initialBid"`
	Reserve         int64  `json:"reserve" msgpack:"reserve"`
	AuctionDateTime int64  `json:"auctionDateTime" msgpack:"auctionDateTime"`
	Expires         int64  `json:"expires" msgpack:"expires"`
	Seller          int64  `json:"seller" msgpack:"seller"`
	Category        int64  `json:"category" msgpack:"category"`
	AuctionExtra    string `json:"auctionExtra" msgpack:"auctionExtra"`
}

func q20Row(b gen.Bid, a gen.Auction) Q20Row {
	return Q20Row{b.Auction, b.Bidder, b.Price, b.Channel, b.URL, b.DateTime, b.Extra,
		a.ItemName, a.Description, a.InitialBid, a.Reserve, a.DateTime, a.Expires, a.Seller, a.Category, a.Extra}
}

// q20, expand bid with auction: every bid on an auction of category 10,
// with the auction's fields. Flink's SQL joins without a time bound; here
// it is a stream-stream join whose window covers every auction a bid can
// name (the generator's bound: an auction at most 100 auctions older than
// the bid, or 10 newer), so it finds the same pairs.
func q20() Query {
	return Query{
		Name: "q20",
		Build: func(b *stream.Builder, env Env) {
			ev := events(b)
			auctions := stream.MapValues(ev.Filter(func(_ []byte, e gen.Event) bool {
				return e.Kind == gen.KindAuction && e.Auction.Category == 10
			}, stream.Named("category-10")), func(e gen.Event) gen.Auction { return *e.Auction }, stream.Named("auction-values"))
			byID := stream.GroupBy(auctions, func(_ []byte, a gen.Auction) int64 { return a.ID }, stream.Named("auction-by-id"))
			byAuction := stream.GroupBy(bids(ev), func(_ []byte, b gen.Bid) int64 { return b.Auction }, stream.Named("bid-by-auction"))
			// A bid at t joins the auctions of [t - before, t + after].
			before, after := env.Gen.BidAuctionSpan()
			span := window.JoinTimeDifference(before, env.Grace).After(after)
			joined := window.Join(byAuction, byID, span, func(_ int64, b gen.Bid, a gen.Auction) Q20Row {
				return q20Row(b, a)
			}, "q20-bid-auctions", window.WithStats(env.Stats))
			joined.To(OutputTopic("q20"))
		},
		Rows: decodeRows(codec.Msgpack[Q20Row]()),
		Reference: func(_ *gen.Generator, events iter.Seq2[int64, gen.Event]) []any {
			auctions := map[int64]gen.Auction{}
			var bids []gen.Bid
			for _, e := range events {
				switch {
				case e.Kind == gen.KindAuction && e.Auction.Category == 10:
					auctions[e.Auction.ID] = *e.Auction
				case e.Kind == gen.KindBid:
					bids = append(bids, *e.Bid)
				}
			}
			var out []any
			for _, b := range bids {
				if a, ok := auctions[b.Auction]; ok {
					out = append(out, q20Row(b, a))
				}
			}
			return out
		},
	}
}
