// Package gen generates Nexmark events deterministically, after the
// generators of Apache Beam's Nexmark and of nexmark-rs: event n is
// a function of the seed and n alone, so any event can be regenerated on its
// own and generators can split the event numbers between them (parallelism)
// without changing a single event. Event time follows the configured rate of
// event time (Config.Rate), never the wall clock: the same events have the
// same timestamps however fast they are produced.
package gen

import (
	"errors"
	"fmt"
	"iter"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// Kind is the kind of an event.
type Kind uint8

// The kinds of events, with the proportions 1 : 3 : 46.
const (
	KindPerson Kind = iota + 1
	KindAuction
	KindBid
)

// String returns "person", "auction" or "bid".
func (k Kind) String() string {
	switch k {
	case KindPerson:
		return "person"
	case KindAuction:
		return "auction"
	case KindBid:
		return "bid"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Person is a new user of the auction site.
type Person struct {
	ID           int64  `json:"id" msgpack:"id"`
	Name         string `json:"name" msgpack:"name"`
	EmailAddress string `json:"emailAddress" msgpack:"emailAddress"`
	CreditCard   string `json:"creditCard" msgpack:"creditCard"`
	City         string `json:"city" msgpack:"city"`
	State        string `json:"state" msgpack:"state"`
	DateTime     int64  `json:"dateTime" msgpack:"dateTime"` // epoch ms
	Extra        string `json:"extra" msgpack:"extra"`
}

// Auction is an item put up for auction by a seller (a Person's ID).
type Auction struct {
	ID          int64  `json:"id" msgpack:"id"`
	ItemName    string `json:"itemName" msgpack:"itemName"`
	Description string `json:"description" msgpack:"description"`
	InitialBid  int64  `json:"initialBid" msgpack:"initialBid"` // cents
	Reserve     int64  `json:"reserve" msgpack:"reserve"`       // cents
	DateTime    int64  `json:"dateTime" msgpack:"dateTime"`     // epoch ms
	Expires     int64  `json:"expires" msgpack:"expires"`       // epoch ms
	Seller      int64  `json:"seller" msgpack:"seller"`
	Category    int64  `json:"category" msgpack:"category"`
	Extra       string `json:"extra" msgpack:"extra"`
}

// Bid is a bid of a bidder (a Person's ID) on an auction (an Auction's ID).
type Bid struct {
	Auction  int64  `json:"auction" msgpack:"auction"`
	Bidder   int64  `json:"bidder" msgpack:"bidder"`
	Price    int64  `json:"price" msgpack:"price"` // cents
	Channel  string `json:"channel" msgpack:"channel"`
	URL      string `json:"url" msgpack:"url"`
	DateTime int64  `json:"dateTime" msgpack:"dateTime"` // epoch ms
	Extra    string `json:"extra" msgpack:"extra"`
}

// Event is one Nexmark event: exactly one of Person, Auction and Bid is
// set, the one Kind names. Its JSON form is the exchange format of
// NEXMARK.md: {"kind":"bid","bid":{...}}.
type Event struct {
	Kind    Kind     `json:"kind"`
	Person  *Person  `json:"person,omitempty"`
	Auction *Auction `json:"auction,omitempty"`
	Bid     *Bid     `json:"bid,omitempty"`
}

// DateTime returns the event time of e in epoch milliseconds.
func (e Event) DateTime() int64 {
	switch {
	case e.Person != nil:
		return e.Person.DateTime
	case e.Auction != nil:
		return e.Auction.DateTime
	case e.Bid != nil:
		return e.Bid.DateTime
	}
	return 0
}

// MarshalJSON writes the kind as its name.
func (k Kind) MarshalJSON() ([]byte, error) { return strconv.AppendQuote(nil, k.String()), nil }

// UnmarshalJSON reads a kind written by MarshalJSON.
func (k *Kind) UnmarshalJSON(b []byte) error {
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return fmt.Errorf("gen: kind %s: %w", b, err)
	}
	switch s {
	case "person":
		*k = KindPerson
	case "auction":
		*k = KindAuction
	case "bid":
		*k = KindBid
	default:
		return fmt.Errorf("gen: unknown kind %q", s)
	}
	return nil
}

// Generator constants (Beam's defaults).
const (
	proportionDenominator = 50 // person 1, auction 3, bid 46 per 50 events
	personProportion      = 1
	auctionProportion     = 3
	firstPersonID         = 1000
	firstAuctionID        = 1000
	firstCategoryID       = 10
	numCategories         = 5
	numActivePeople       = 1000
	numInFlightAuctions   = 100
	personIDLead          = 10
	auctionIDLead         = 10
	hotAuctionRatio       = 2 // a bid is on the hot auction with p = 1/2
	hotBidderRatio        = 4 // a bid is from a hot bidder with p = 3/4
	hotSellerRatio        = 4 // an auction's seller is hot with p = 3/4
	hotChannelRatio       = 2 // a bid comes from a hot channel with p = 1/2
	numChannels           = 10000
	avgPersonBytes        = 200
	avgAuctionBytes       = 500
	avgBidBytes           = 100
)

// DefaultBaseTime is the event time of event 0 unless Config.BaseTime says
// otherwise: 2015-07-15T00:00:00Z.
var DefaultBaseTime = time.Date(2015, 7, 15, 0, 0, 0, 0, time.UTC)

// ErrInvalidConfig is returned for a Config with a rate below 1 or above
// 1,000,000 events per second.
var ErrInvalidConfig = errors.New("gen: invalid config")

// Config configures a Generator. The zero Config is seed 0, 10,000 events
// per second of event time, event 0 at DefaultBaseTime.
type Config struct {
	Seed     uint64
	Rate     int       // events per second of event time; 0 means 10,000
	BaseTime time.Time // event time of event 0; zero means DefaultBaseTime
}

// Generator generates the events of a Config. It is safe for concurrent use.
type Generator struct {
	seed    uint64
	delayUs int64 // microseconds of event time between two events
	baseMs  int64
}

// New returns the generator of cfg, or an error matching ErrInvalidConfig.
func New(cfg Config) (*Generator, error) {
	rate := cfg.Rate
	if rate == 0 {
		rate = 10_000
	}
	if rate < 1 || rate > 1_000_000 {
		return nil, fmt.Errorf("%w: rate %d events/s, want 1 to 1000000", ErrInvalidConfig, cfg.Rate)
	}
	base := cfg.BaseTime
	if base.IsZero() {
		base = DefaultBaseTime
	}
	return &Generator{seed: cfg.Seed, delayUs: 1_000_000 / int64(rate), baseMs: base.UnixMilli()}, nil
}

// DateTime returns the event time of event n in epoch milliseconds:
// base + n * (1e6 / rate) / 1000.
func (g *Generator) DateTime(n int64) int64 { return g.baseMs + n*g.delayUs/1000 }

// EventSpan returns the event time between event n and event n+count.
func (g *Generator) EventSpan(count int64) time.Duration {
	return time.Duration(count*g.delayUs) * time.Microsecond
}

// MaxAuctionDuration is the longest time from an auction's DateTime to its
// Expires, for the auctions of event numbers below 2^62.
func (g *Generator) MaxAuctionDuration() time.Duration {
	return time.Duration(1+2*g.horizonMs(0)) * time.Millisecond
}

// BidAuctionSpan bounds how far apart in event time a bid and the auction
// it names are: the auction's DateTime is at most before earlier and at most
// after later than the bid's (a cold bid may name one of the next auctions,
// not yet created). A stream-stream join of bids with auctions within these
// differences finds every auction a bid names.
func (g *Generator) BidAuctionSpan() (before, after time.Duration) {
	// A bid names an auction at most numInFlightAuctions below the last one
	// (created at most (100/3+1) groups of 50 events earlier), or at most
	// auctionIDLead above it (at most (10/3+1) groups later); one group of
	// rounding on each side, and 1 ms for the truncation of event times.
	groups := func(auctions int64) int64 {
		return (auctions/auctionProportion + 2) * proportionDenominator
	}
	ms := time.Millisecond
	return g.EventSpan(groups(numInFlightAuctions)) + ms, g.EventSpan(groups(auctionIDLead)) + ms
}

// horizonMs is the event time of numInFlightAuctions auctions: the event
// time span of the next 100*50/3 events.
func (g *Generator) horizonMs(n int64) int64 {
	next := int64(numInFlightAuctions) * proportionDenominator / auctionProportion
	return g.DateTime(n+next) - g.DateTime(n)
}

// Events returns events from, from+step, from+2*step, ... below to, each
// with its number. Generators splitting the numbers by residue (worker w of
// p: Events(w, to, p)) produce together exactly the events of Events(0, to,
// 1). A step below 1 is taken as 1.
func (g *Generator) Events(from, to, step int64) iter.Seq2[int64, Event] {
	if step < 1 {
		step = 1
	}
	return func(yield func(int64, Event) bool) {
		s := g.newState()
		for n := from; n < to; n += step {
			if !yield(n, s.event(n)) {
				return
			}
		}
	}
}

// Event returns event n.
func (g *Generator) Event(n int64) Event { return g.newState().event(n) }

// state is one goroutine's PRNG, reseeded from (seed, n) for every event.
type state struct {
	g   *Generator
	pcg *rand.PCG
	r   *rand.Rand
	sb  strings.Builder
}

func (g *Generator) newState() *state {
	pcg := rand.NewPCG(0, 0)
	return &state{g: g, pcg: pcg, r: rand.New(pcg)}
}

// splitmix64 scrambles n so that neighbouring event numbers seed unrelated
// streams.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func (s *state) event(n int64) Event {
	s.pcg.Seed(s.g.seed, splitmix64(uint64(n)))
	switch rem := n % proportionDenominator; {
	case rem < personProportion:
		return Event{Kind: KindPerson, Person: s.person(n)}
	case rem < personProportion+auctionProportion:
		return Event{Kind: KindAuction, Auction: s.auction(n)}
	default:
		return Event{Kind: KindBid, Bid: s.bid(n)}
	}
}

// lastPersonID is the base-0 id of the last person created at or before
// event n.
func lastPersonID(n int64) int64 { return n / proportionDenominator }

// lastAuctionID is the base-0 id of the last auction created at or before
// event n (-1 before the first).
func lastAuctionID(n int64) int64 {
	epoch, rem := n/proportionDenominator, n%proportionDenominator
	switch {
	case rem < personProportion:
		return (epoch-1)*auctionProportion + auctionProportion - 1
	case rem >= personProportion+auctionProportion:
		return epoch*auctionProportion + auctionProportion - 1
	default:
		return epoch*auctionProportion + rem - personProportion
	}
}

// coldPerson picks one of the active people (or of the next few).
func (s *state) coldPerson(n int64) int64 {
	numPeople := lastPersonID(n) + 1
	active := min(numPeople, numActivePeople)
	return numPeople - active + s.r.Int64N(active+personIDLead)
}

// coldAuction picks one of the auctions in flight (or of the next few).
func (s *state) coldAuction(n int64) int64 {
	last := max(lastAuctionID(n), 0)
	lo := max(last-numInFlightAuctions, 0)
	return lo + s.r.Int64N(last-lo+1+auctionIDLead)
}

var (
	firstNames  = []string{"Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter"}
	lastNames   = []string{"Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris"}
	cities      = []string{"Phoenix", "Los Angeles", "San Francisco", "Boise", "Portland", "Bend", "Redmond", "Seattle", "Kent", "Cheyenne"}
	states      = []string{"AZ", "CA", "ID", "OR", "WA", "WY"}
	hotChannels = []string{"Google", "Facebook", "Baidu", "Apple"}
	hotURLs     = []string{
		"https://www.nexmark.com/googl/item.htm?query=1",
		"https://www.nexmark.com/faceb/item.htm?query=1",
		"https://www.nexmark.com/baidu/item.htm?query=1",
		"https://www.nexmark.com/apple/item.htm?query=1",
	}
)

func (s *state) person(n int64) *Person {
	p := &Person{
		ID:       lastPersonID(n) + firstPersonID,
		Name:     firstNames[s.r.IntN(len(firstNames))] + " " + lastNames[s.r.IntN(len(lastNames))],
		City:     cities[s.r.IntN(len(cities))],
		State:    states[s.r.IntN(len(states))],
		DateTime: s.g.DateTime(n),
	}
	p.EmailAddress = s.str(7) + "@" + s.str(5) + ".com"
	p.CreditCard = fmt.Sprintf("%04d %04d %04d %04d", s.r.IntN(10000), s.r.IntN(10000), s.r.IntN(10000), s.r.IntN(10000))
	used := 8 + len(p.Name) + len(p.EmailAddress) + len(p.CreditCard) + len(p.City) + len(p.State) + 8
	p.Extra = s.extra(used, avgPersonBytes)
	return p
}

func (s *state) auction(n int64) *Auction {
	var seller int64
	if s.r.IntN(hotSellerRatio) > 0 {
		seller = (lastPersonID(n) / 100) * 100
	} else {
		seller = s.coldPerson(n)
	}
	a := &Auction{
		ID:       lastAuctionID(n) + firstAuctionID,
		DateTime: s.g.DateTime(n),
		Seller:   seller + firstPersonID,
		Category: firstCategoryID + s.r.Int64N(numCategories),
	}
	a.ItemName = s.str(20)
	a.Description = s.str(100)
	a.InitialBid = s.price()
	a.Reserve = a.InitialBid + s.price()
	a.Expires = a.DateTime + 1 + s.r.Int64N(max(2*s.g.horizonMs(n), 1))
	used := 8 + len(a.ItemName) + len(a.Description) + 8*7
	a.Extra = s.extra(used, avgAuctionBytes)
	return a
}

func (s *state) bid(n int64) *Bid {
	var auction, bidder int64
	if s.r.IntN(hotAuctionRatio) > 0 {
		auction = (lastAuctionID(n) / 100) * 100
	} else {
		auction = s.coldAuction(n)
	}
	if s.r.IntN(hotBidderRatio) > 0 {
		bidder = (lastPersonID(n)/100)*100 + 1
	} else {
		bidder = s.coldPerson(n)
	}
	b := &Bid{
		Auction:  auction + firstAuctionID,
		Bidder:   bidder + firstPersonID,
		Price:    s.price(),
		DateTime: s.g.DateTime(n),
	}
	if s.r.IntN(hotChannelRatio) > 0 {
		i := s.r.IntN(len(hotChannels))
		b.Channel, b.URL = hotChannels[i], hotURLs[i]
	} else {
		c := s.r.IntN(numChannels)
		b.Channel, b.URL = channels[c], channelURLs[c]
	}
	used := 8*4 + len(b.Channel) + len(b.URL)
	b.Extra = s.extra(used, avgBidBytes)
	return b
}

// channels and channelURLs are the generated channels: channel i and its
// URL are the same in every event.
var channels, channelURLs = func() ([]string, []string) {
	cs, us := make([]string, numChannels), make([]string, numChannels)
	for i := range numChannels {
		cs[i] = "channel-" + strconv.Itoa(i)
		us[i] = "https://www.nexmark.com/channel/" + strconv.Itoa(i) + "/item.htm?query=1&channel_id=" + strconv.Itoa(i)
	}
	return cs, us
}()

// price is log-uniform from $1 to $1M, in cents.
func (s *state) price() int64 {
	return int64(math.Round(math.Pow(10, s.r.Float64()*6) * 100))
}

// str returns a string of 3 to max-1 characters: letters, and spaces with
// p = 1/13, trimmed.
func (s *state) str(maxLen int) string {
	n := 3 + s.r.IntN(maxLen-3)
	s.sb.Reset()
	for range n {
		if s.r.IntN(13) == 0 {
			s.sb.WriteByte(' ')
		} else {
			s.sb.WriteByte(byte('a' + s.r.IntN(26)))
		}
	}
	return strings.TrimSpace(s.sb.String())
}

// extra pads an event of used bytes towards avg bytes, +/- 20%.
func (s *state) extra(used, avg int) string {
	if used >= avg {
		return ""
	}
	want := avg - used
	delta := int(math.Round(float64(want) * 0.2))
	n := want - delta + s.r.IntN(2*delta+1)
	buf := make([]byte, n)
	for i := 0; i < n; {
		x := s.r.Uint64()
		for j := 0; j < 12 && i < n; j++ { // 12 letters of 26 from 64 bits
			buf[i] = byte('a' + x%26)
			x /= 26
			i++
		}
	}
	return string(buf)
}
