package queries

import (
	"iter"
	"sort"
	"time"

	"github.com/duality-streams/duality/benchmarks/nexmark/internal/gen"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
	"github.com/duality-streams/duality/window"
)

const (
	windowSize = 10 * time.Second
	q5Advance  = 2 * time.Second
	sessionGap = 10 * time.Second
)

// windowStarts returns the starts (epoch ms) of the windows of size and
// advance, aligned to the epoch, that hold time t.
func windowStarts(t int64, size, advance time.Duration) []int64 {
	sz, adv := size.Milliseconds(), advance.Milliseconds()
	var out []int64
	for s := t - t%adv; s > t-sz && s >= 0; s -= adv {
		out = append(out, s)
	}
	return out
}

// Q5Row is q5's output: an auction with the most bids in a window.
type Q5Row struct {
	Auction     int64 `json:"auction" msgpack:"auction"`
	Num         int64 `json:"num" msgpack:"num"`
	WindowStart int64 `json:"windowStart" msgpack:"windowStart"`
	WindowEnd   int64 `json:"windowEnd" msgpack:"windowEnd"`
}

// q5Hot is the hottest auctions of a window so far.
type q5Hot struct {
	Start, End int64
	Max        int64
	Auctions   []int64
}

// q5, hot items: the auctions with the most bids in each hopping window of
// 10 s every 2 s. Bids are counted per auction and window (final counts
// only, at window close); the counts are then re-grouped by window into a
// table of the auctions at the window's maximum.
func q5() Query {
	return Query{
		Name:  "q5",
		Table: true,
		Build: func(b *stream.Builder, env Env) {
			byAuction := stream.Map(bids(events(b)), func(_ []byte, b gen.Bid) (int64, int64) { return b.Auction, b.Price },
				stream.Named("auction"))
			counts := window.Count(stream.GroupByKey(byAuction), window.Hopping(windowSize, q5Advance, env.Grace), "q5-counts",
				window.EmitOnWindowClose(), window.WithStats(env.Stats))
			perWindow := stream.Map(counts.ToStream(), func(w window.Windowed[int64], n int64) (int64, Q5Row) {
				return w.Start.UnixMilli(), Q5Row{w.Key, n, w.Start.UnixMilli(), w.End.UnixMilli()}
			}, stream.Named("by-window"))
			hot := table.Aggregate(stream.GroupByKey(perWindow), func() q5Hot { return q5Hot{} },
				func(_ int64, c Q5Row, h q5Hot) q5Hot {
					switch {
					case c.Num > h.Max:
						return q5Hot{c.WindowStart, c.WindowEnd, c.Num, []int64{c.Auction}}
					case c.Num == h.Max:
						h.Auctions = append(h.Auctions, c.Auction)
					}
					return h
				}, "q5-hot")
			hot.ToStream().To(OutputTopic("q5"))
		},
		Rows: func(v []byte) ([]any, error) {
			h, err := codec.Msgpack[q5Hot]().Decode(v)
			if err != nil {
				return nil, err
			}
			var out []any
			for _, a := range h.Auctions {
				out = append(out, Q5Row{a, h.Max, h.Start, h.End})
			}
			return out, nil
		},
		Reference: func(_ *gen.Generator, events iter.Seq2[int64, gen.Event]) []any {
			counts := map[int64]map[int64]int64{} // window start -> auction -> bids
			for b := range refBids(events) {
				for _, s := range windowStarts(b.DateTime, windowSize, q5Advance) {
					if counts[s] == nil {
						counts[s] = map[int64]int64{}
					}
					counts[s][b.Auction]++
				}
			}
			var out []any
			for s, byAuction := range counts {
				var m int64
				for _, n := range byAuction {
					m = max(m, n)
				}
				for a, n := range byAuction {
					if n == m {
						out = append(out, Q5Row{a, n, s, s + windowSize.Milliseconds()})
					}
				}
			}
			return out
		},
	}
}

// Q7Row is q7's output: a bid with the highest price of its window.
type Q7Row struct {
	Auction     int64  `json:"auction" msgpack:"auction"`
	Price       int64  `json:"price" msgpack:"price"`
	Bidder      int64  `json:"bidder" msgpack:"bidder"`
	DateTime    int64  `json:"dateTime" msgpack:"dateTime"`
	Extra       string `json:"extra" msgpack:"extra"`
	WindowStart int64  `json:"windowStart" msgpack:"windowStart"`
	WindowEnd   int64  `json:"windowEnd" msgpack:"windowEnd"`
}

// q7Max is the bids at the highest price of a window so far.
type q7Max struct {
	Price int64
	Bids  []gen.Bid
}

// q7, highest bid: the bids at the highest price of each tumbling window of
// 10 s. All bids form one group (one key), aggregated per window into the
// bids at the window's maximum, emitted when the window closes.
func q7() Query {
	return Query{
		Name: "q7",
		Build: func(b *stream.Builder, env Env) {
			all := stream.GroupBy(bids(events(b)), func([]byte, gen.Bid) int64 { return 0 }, stream.Named("all-bids"))
			maxes := window.Aggregate(all, window.Tumbling(windowSize, env.Grace), func() q7Max { return q7Max{} },
				func(_ int64, b gen.Bid, m q7Max) q7Max {
					switch {
					case b.Price > m.Price:
						return q7Max{b.Price, []gen.Bid{b}}
					case b.Price == m.Price:
						m.Bids = append(m.Bids, b)
					}
					return m
				}, "q7-max", window.EmitOnWindowClose(), window.WithStats(env.Stats))
			rows := stream.FlatMap(maxes.ToStream(), func(w window.Windowed[int64], m q7Max) iter.Seq2[int64, Q7Row] {
				return func(yield func(int64, Q7Row) bool) {
					for _, b := range m.Bids {
						if !yield(w.Start.UnixMilli(), Q7Row{b.Auction, b.Price, b.Bidder, b.DateTime, b.Extra,
							w.Start.UnixMilli(), w.End.UnixMilli()}) {
							return
						}
					}
				}
			}, stream.Named("max-bids"))
			rows.To(OutputTopic("q7"))
		},
		Rows: decodeRows(codec.Msgpack[Q7Row]()),
		Reference: func(_ *gen.Generator, events iter.Seq2[int64, gen.Event]) []any {
			maxes := map[int64]q7Max{}
			for b := range refBids(events) {
				s := windowStarts(b.DateTime, windowSize, windowSize)[0]
				m := maxes[s]
				switch {
				case b.Price > m.Price:
					maxes[s] = q7Max{b.Price, []gen.Bid{b}}
				case b.Price == m.Price:
					m.Bids = append(m.Bids, b)
					maxes[s] = m
				}
			}
			var out []any
			for s, m := range maxes {
				for _, b := range m.Bids {
					out = append(out, Q7Row{b.Auction, b.Price, b.Bidder, b.DateTime, b.Extra, s, s + windowSize.Milliseconds()})
				}
			}
			return out
		},
	}
}

// Q8Row is q8's output: a person who created an auction in the tumbling
// window of 10 s in which they registered.
type Q8Row struct {
	ID          int64  `json:"id" msgpack:"id"`
	Name        string `json:"name" msgpack:"name"`
	WindowStart int64  `json:"windowStart" msgpack:"windowStart"`
	WindowEnd   int64  `json:"windowEnd" msgpack:"windowEnd"`
}

// q8, monitor new users: persons and the sellers of auctions, each in
// tumbling windows of 10 s (final results only), joined per window on the
// person's id and the seller.
func q8() Query {
	return Query{
		Name: "q8",
		Build: func(b *stream.Builder, env Env) {
			ev := events(b)
			persons := stream.Map(ev.Filter(func(_ []byte, e gen.Event) bool { return e.Kind == gen.KindPerson }, stream.Named("persons")),
				func(_ []byte, e gen.Event) (int64, string) { return e.Person.ID, e.Person.Name }, stream.Named("person-by-id"))
			sellers := stream.Map(ev.Filter(isAuction, stream.Named("auctions")),
				func(_ []byte, e gen.Event) (int64, int64) { return e.Auction.Seller, e.Auction.ID }, stream.Named("auction-by-seller"))
			// The join reads a window of one side when the other side's
			// final result of it comes out: each side's stream time follows
			// its own repartition topic, so keep closed windows a while
			// after their grace, for the side that runs behind.
			w := window.Tumbling(windowSize, env.Grace).WithRetention(windowSize + env.Grace + time.Minute)
			names := window.Reduce(stream.GroupByKey(persons), w, func(name, _ string) string { return name }, "q8-persons",
				window.EmitOnWindowClose(), window.WithStats(env.Stats))
			auctions := window.Count(stream.GroupByKey(sellers), w, "q8-sellers",
				window.EmitOnWindowClose(), window.WithStats(env.Stats))
			joined := table.JoinTables(names, auctions, func(k window.Windowed[int64], name string, _ int64) Q8Row {
				return Q8Row{k.Key, name, k.Start.UnixMilli(), k.End.UnixMilli()}
			}, stream.Named("new-sellers"))
			joined.ToStream().To(OutputTopic("q8"))
		},
		Rows: decodeRows(codec.Msgpack[Q8Row]()),
		Reference: func(_ *gen.Generator, events iter.Seq2[int64, gen.Event]) []any {
			type key struct{ id, start int64 }
			names := map[key]string{}
			sellers := map[key]bool{}
			for _, e := range events {
				switch e.Kind {
				case gen.KindPerson:
					k := key{e.Person.ID, windowStarts(e.Person.DateTime, windowSize, windowSize)[0]}
					if _, ok := names[k]; !ok {
						names[k] = e.Person.Name
					}
				case gen.KindAuction:
					sellers[key{e.Auction.Seller, windowStarts(e.Auction.DateTime, windowSize, windowSize)[0]}] = true
				}
			}
			var out []any
			for k, name := range names {
				if sellers[k] {
					out = append(out, Q8Row{k.id, name, k.start, k.start + windowSize.Milliseconds()})
				}
			}
			return out
		},
	}
}

// Q11Row is q11's output: a bidder's session.
type Q11Row struct {
	Bidder      int64 `json:"bidder" msgpack:"bidder"`
	BidCount    int64 `json:"bidCount" msgpack:"bidCount"`
	WindowStart int64 `json:"windowStart" msgpack:"windowStart"`
	WindowEnd   int64 `json:"windowEnd" msgpack:"windowEnd"` // the last bid's time + 1 ms
}

// q11, user sessions: the bids of each bidder counted per session window
// with a gap of 10 s, final results only.
func q11() Query {
	return Query{
		Name: "q11",
		Build: func(b *stream.Builder, env Env) {
			byBidder := stream.Map(bids(events(b)), func(_ []byte, b gen.Bid) (int64, int64) { return b.Bidder, b.Auction },
				stream.Named("bidder"))
			sessions := window.Count(stream.GroupByKey(byBidder), window.Session(sessionGap, env.Grace), "q11-sessions",
				window.EmitOnWindowClose(), window.WithStats(env.Stats))
			stream.Map(sessions.ToStream(), func(w window.Windowed[int64], n int64) (int64, Q11Row) {
				return w.Key, Q11Row{w.Key, n, w.Start.UnixMilli(), w.End.UnixMilli()}
			}, stream.Named("session")).To(OutputTopic("q11"))
		},
		Rows: decodeRows(codec.Msgpack[Q11Row]()),
		Reference: func(_ *gen.Generator, events iter.Seq2[int64, gen.Event]) []any {
			times := map[int64][]int64{}
			for b := range refBids(events) {
				times[b.Bidder] = append(times[b.Bidder], b.DateTime)
			}
			var out []any
			for bidder, ts := range times {
				sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
				cur := Q11Row{bidder, 1, ts[0], ts[0] + 1}
				for _, t := range ts[1:] {
					if t-(cur.WindowEnd-1) > sessionGap.Milliseconds() {
						out = append(out, cur)
						cur = Q11Row{bidder, 0, t, t + 1}
					}
					cur.BidCount++
					cur.WindowEnd = t + 1
				}
				out = append(out, cur)
			}
			return out
		},
	}
}
