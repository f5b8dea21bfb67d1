package gen

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/codec"
)

func generate(t *testing.T, g *Generator, count int64, workers int) []Event {
	t.Helper()
	out := make([]Event, count)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for n, e := range g.Events(int64(w), count, int64(workers)) {
				out[n] = e
			}
		})
	}
	wg.Wait()
	return out
}

func TestSameEventsWhateverTheParallelism(t *testing.T) {
	g, err := New(Config{Seed: 42})
	require.NoError(t, err)
	const count = 20_000
	want := generate(t, g, count, 1)
	for _, workers := range []int{2, 3, 8} {
		require.Equal(t, want, generate(t, g, count, workers), "workers=%d", workers)
	}
	for _, n := range []int64{0, 1, 4, 49, 50, 12345, count - 1} {
		require.Equal(t, want[n], g.Event(n), "event %d alone", n)
	}
	other, err := New(Config{Seed: 43})
	require.NoError(t, err)
	require.NotEqual(t, want[7], other.Event(7), "another seed gives other events")
}

func TestEventShape(t *testing.T) {
	g, err := New(Config{Seed: 1, Rate: 1000})
	require.NoError(t, err)
	base := DefaultBaseTime.UnixMilli()
	var persons, auctions, bids int
	lastAuction, lastPerson := int64(firstAuctionID-1), int64(firstPersonID-1)
	for n, e := range g.Events(0, 5000, 1) {
		// Event time follows the rate: 1000 events/s is 1 ms per event.
		require.Equal(t, base+n, e.DateTime(), "event %d", n)
		switch e.Kind {
		case KindPerson:
			persons++
			require.Equal(t, lastPerson+1, e.Person.ID)
			lastPerson = e.Person.ID
			require.Contains(t, states, e.Person.State)
		case KindAuction:
			auctions++
			a := e.Auction
			require.Equal(t, lastAuction+1, a.ID)
			lastAuction = a.ID
			require.GreaterOrEqual(t, a.Category, int64(10))
			require.Less(t, a.Category, int64(15))
			require.Greater(t, a.Expires, a.DateTime)
			require.LessOrEqual(t, time.Duration(a.Expires-a.DateTime)*time.Millisecond, g.MaxAuctionDuration())
			require.Greater(t, a.Reserve, a.InitialBid)
			require.LessOrEqual(t, a.Seller, lastPerson+personIDLead)
		case KindBid:
			bids++
			b := e.Bid
			require.GreaterOrEqual(t, b.Price, int64(100))
			require.LessOrEqual(t, b.Price, int64(100_000_000))
			require.LessOrEqual(t, b.Auction, lastAuction+auctionIDLead)
			require.GreaterOrEqual(t, b.Auction, lastAuction-numInFlightAuctions)
		}
	}
	require.Equal(t, []int{100, 300, 4600}, []int{persons, auctions, bids})
}

func TestBidAuctionSpan(t *testing.T) {
	g, err := New(Config{Seed: 3})
	require.NoError(t, err)
	before, after := g.BidAuctionSpan()
	created := map[int64]int64{}
	const count = 60_000
	// Auctions are created in order; a bid may name one created later.
	for _, e := range g.Events(0, count, 1) {
		if e.Kind == KindAuction {
			created[e.Auction.ID] = e.Auction.DateTime
		}
	}
	for _, e := range g.Events(0, count-5_000, 1) {
		if e.Kind != KindBid {
			continue
		}
		at, ok := created[e.Bid.Auction]
		require.True(t, ok, "auction %d", e.Bid.Auction)
		d := time.Duration(e.Bid.DateTime-at) * time.Millisecond
		require.True(t, d <= before && -d <= after, "bid at %d, auction at %d: outside [-%v, %v]", e.Bid.DateTime, at, after, before)
	}
}

func TestCodecRoundTrip(t *testing.T) {
	g, err := New(Config{})
	require.NoError(t, err)
	c := EventCodec()
	for _, e := range g.Events(0, 200, 1) {
		b, err := c.Append(nil, e)
		require.NoError(t, err)
		got, err := c.Decode(b)
		require.NoError(t, err)
		require.Equal(t, e, got)
		for i := range b { // every truncation is an error, never a panic
			_, err := c.Decode(b[:i])
			require.ErrorIs(t, err, codec.ErrInvalid)
		}
		if e.Kind == KindBid {
			bb, err := BidCodec().Append(nil, *e.Bid)
			require.NoError(t, err)
			back, err := BidCodec().Decode(bb)
			require.NoError(t, err)
			require.Equal(t, *e.Bid, back)
		}
	}
	_, err = c.Append(nil, Event{Kind: KindBid})
	require.Error(t, err)
}

func TestJSON(t *testing.T) {
	g, err := New(Config{})
	require.NoError(t, err)
	b, err := json.Marshal(g.Event(5))
	require.NoError(t, err)
	require.Contains(t, string(b), `{"kind":"bid","bid":{"auction":`)
	var back Event
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, g.Event(5), back)
}

func TestInvalidRate(t *testing.T) {
	_, err := New(Config{Rate: -1})
	require.ErrorIs(t, err, ErrInvalidConfig)
}

func BenchmarkEvents(b *testing.B) {
	g, _ := New(Config{})
	b.ReportAllocs()
	n := int64(0)
	s := g.newState()
	for b.Loop() {
		_ = s.event(n)
		n++
	}
}
