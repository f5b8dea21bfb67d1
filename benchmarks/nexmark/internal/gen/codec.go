package gen

import (
	"encoding/binary"
	"fmt"

	"github.com/duality-streams/duality/codec"
)

// EventCodec returns a compact binary codec for events: the kind, the
// integer fields as varints, the string lengths, then the strings' bytes
// (decoded with one allocation for all the strings of an event). It is not
// order-preserving. Decode fails with an error matching codec.ErrInvalid on
// input it did not write.
func EventCodec() codec.Codec[Event] { return eventCodec{} }

// BidCodec returns the binary codec of EventCodec for bids alone.
func BidCodec() codec.Codec[Bid] { return bidCodec{} }

type eventCodec struct{}

func (eventCodec) OrderPreserving() bool { return false }

func (eventCodec) Append(dst []byte, e Event) ([]byte, error) {
	switch {
	case e.Kind == KindPerson && e.Person != nil:
		p := e.Person
		dst = append(dst, byte(KindPerson))
		dst = appendInts(dst, p.ID, p.DateTime)
		return appendStrings(dst, p.Name, p.EmailAddress, p.CreditCard, p.City, p.State, p.Extra), nil
	case e.Kind == KindAuction && e.Auction != nil:
		return appendAuction(append(dst, byte(KindAuction)), e.Auction), nil
	case e.Kind == KindBid && e.Bid != nil:
		return appendBid(append(dst, byte(KindBid)), e.Bid), nil
	}
	return dst, fmt.Errorf("gen: event of kind %v without its %v", e.Kind, e.Kind)
}

func appendAuction(dst []byte, a *Auction) []byte {
	dst = appendInts(dst, a.ID, a.InitialBid, a.Reserve, a.DateTime, a.Expires, a.Seller, a.Category)
	return appendStrings(dst, a.ItemName, a.Description, a.Extra)
}

func appendBid(dst []byte, b *Bid) []byte {
	dst = appendInts(dst, b.Auction, b.Bidder, b.Price, b.DateTime)
	return appendStrings(dst, b.Channel, b.URL, b.Extra)
}

func appendInts(dst []byte, vs ...int64) []byte {
	for _, v := range vs {
		dst = binary.AppendVarint(dst, v)
	}
	return dst
}

func appendStrings(dst []byte, ss ...string) []byte {
	for _, s := range ss {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
	}
	for _, s := range ss {
		dst = append(dst, s...)
	}
	return dst
}

func (eventCodec) Decode(src []byte) (Event, error) {
	if len(src) == 0 {
		return Event{}, fmt.Errorf("%w: empty event", codec.ErrInvalid)
	}
	d := decoder{src: src[1:]}
	switch Kind(src[0]) {
	case KindPerson:
		p := new(Person)
		d.ints(&p.ID, &p.DateTime)
		d.strings(&p.Name, &p.EmailAddress, &p.CreditCard, &p.City, &p.State, &p.Extra)
		return Event{Kind: KindPerson, Person: p}, d.done()
	case KindAuction:
		a := new(Auction)
		d.auction(a)
		return Event{Kind: KindAuction, Auction: a}, d.done()
	case KindBid:
		b := new(Bid)
		d.bid(b)
		return Event{Kind: KindBid, Bid: b}, d.done()
	}
	return Event{}, fmt.Errorf("%w: unknown event kind %d", codec.ErrInvalid, src[0])
}

type bidCodec struct{}

func (bidCodec) OrderPreserving() bool { return false }

func (bidCodec) Append(dst []byte, b Bid) ([]byte, error) { return appendBid(dst, &b), nil }

func (bidCodec) Decode(src []byte) (Bid, error) {
	d := decoder{src: src}
	var b Bid
	d.bid(&b)
	return b, d.done()
}

// decoder reads what appendInts and appendStrings wrote; the first
// problem sticks in err.
type decoder struct {
	src []byte
	err error
}

func (d *decoder) auction(a *Auction) {
	d.ints(&a.ID, &a.InitialBid, &a.Reserve, &a.DateTime, &a.Expires, &a.Seller, &a.Category)
	d.strings(&a.ItemName, &a.Description, &a.Extra)
}

func (d *decoder) bid(b *Bid) {
	d.ints(&b.Auction, &b.Bidder, &b.Price, &b.DateTime)
	d.strings(&b.Channel, &b.URL, &b.Extra)
}

func (d *decoder) ints(vs ...*int64) {
	if d.err != nil {
		return
	}
	for _, v := range vs {
		x, n := binary.Varint(d.src)
		if n <= 0 {
			d.fail()
			return
		}
		*v, d.src = x, d.src[n:]
	}
}

func (d *decoder) strings(ss ...*string) {
	if d.err != nil {
		return
	}
	var lens [8]int
	total := 0
	for i := range ss {
		l, n := binary.Uvarint(d.src)
		if n <= 0 || l > uint64(len(d.src)) {
			d.fail()
			return
		}
		lens[i], total, d.src = int(l), total+int(l), d.src[n:]
	}
	if total > len(d.src) {
		d.fail()
		return
	}
	all := string(d.src[:total]) // one copy for all the strings
	d.src = d.src[total:]
	off := 0
	for i, s := range ss {
		*s = all[off : off+lens[i]]
		off += lens[i]
	}
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = fmt.Errorf("%w: truncated or malformed event", codec.ErrInvalid)
	}
}

func (d *decoder) done() error {
	if d.err == nil && len(d.src) != 0 {
		d.err = fmt.Errorf("%w: %d bytes after the event", codec.ErrInvalid, len(d.src))
	}
	return d.err
}
