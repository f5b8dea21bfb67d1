// Package windowstore is the byte layout of the state store of a windowed
// aggregation: package window writes it, the root package's windowed
// queries read it, and the runtime knows only its kind and segment
// interval (topology.StoreSpec).
//
// # Layout
//
// Every key starts with a one-byte space:
//
//	0x00                                         stream time(8) expired(8)
//	0x01 segment(8) key(escaped) start(8) end(8)  maxTs(8) aggregate
//	0x02 close(8)   key(escaped) start(8) end(8)  (empty; EmitOnWindowClose)
//
// Times are epoch milliseconds encoded by [AppendTime] (big-endian, sign
// bit flipped, so that encodings sort numerically); keys are the encoded
// record keys escaped and terminated by [AppendEscaped], so that they are
// self-delimiting and keep their byte order. The meta key 0x00 holds the
// stream time and the stream time expiry has reached (the one before the
// last advance; a store written before this field holds the stream time
// alone). The segment is
// floor(T / interval), T being a window's start, or a session's last
// record time ([SegmentTime]), and the interval half the retention
// ([SegmentInterval]): expired windows are whole key ranges at the front
// of space 0x01, and one key's windows in a segment are contiguous and
// ordered by start. Space 0x02 orders the windows waiting for their final
// result by close time. The key part after the segment (escaped key, start,
// end) is the encoding of window.WindowedCodec.
//
// The buffers of windowed stream-stream joins follow the same conventions
// (a meta key, segmented records in 0x01, a close index in 0x02) with
// their own entries; see package window.
package windowstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"math"
	"time"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/internal/topology"
)

// The spaces of a windowed store's keys.
const (
	SpaceMeta   = 0x00
	SpaceWindow = 0x01
	SpaceClose  = 0x02
)

// MetaKey is the key of the stream time of a windowed store (and of the
// stream time its expiry has reached, for an aggregation).
var MetaKey = []byte{SpaceMeta}

// AppendTime appends ms as 8 bytes big-endian with the sign bit flipped,
// so that encodings sort numerically.
func AppendTime(dst []byte, ms int64) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(ms)^(1<<63))
}

// ReadTime decodes the 8 bytes of b written by AppendTime.
func ReadTime(b []byte) int64 { return int64(binary.BigEndian.Uint64(b) ^ (1 << 63)) }

// AppendEscaped appends the escaped, terminated form of key to dst: every
// 0x00 byte becomes 0x00 0xFF, and 0x00 0x01 ends the key.
func AppendEscaped(dst, key []byte) []byte {
	for _, b := range key {
		if b == 0 {
			dst = append(dst, 0, 0xFF)
		} else {
			dst = append(dst, b)
		}
	}
	return append(dst, 0, 1)
}

// EscapeFrom escapes dst[mark:] in place (growing dst) and appends the
// terminator, as AppendEscaped(dst[:mark], dst[mark:]) would.
func EscapeFrom(dst []byte, mark int) []byte {
	zeros := 0
	for _, b := range dst[mark:] {
		if b == 0 {
			zeros++
		}
	}
	if zeros == 0 {
		return append(dst, 0, 1)
	}
	n := len(dst)
	dst = append(dst, make([]byte, zeros+2)...)
	// Copy backwards so the source is read before it is overwritten.
	j := len(dst) - 2
	dst[j], dst[j+1] = 0, 1
	for i := n - 1; i >= mark; i-- {
		if dst[i] == 0 {
			j -= 2
			dst[j], dst[j+1] = 0, 0xFF
		} else {
			j--
			dst[j] = dst[i]
		}
	}
	return dst
}

// Unescape parses an escaped, terminated key at the start of src and
// returns the key (a new slice) and the bytes after the terminator. It
// fails with an error matching codec.ErrInvalid for a bad escape or a
// missing terminator.
func Unescape(src []byte) (key, rest []byte, err error) {
	key = make([]byte, 0, len(src))
	for i := 0; i < len(src); i++ {
		if src[i] != 0 {
			key = append(key, src[i])
			continue
		}
		if i+1 >= len(src) {
			break
		}
		switch src[i+1] {
		case 0xFF:
			key = append(key, 0)
			i++
		case 1:
			return key, src[i+2:], nil
		default:
			return nil, nil, fmt.Errorf("%w: windowed key: bad escape 0x00 0x%02x", codec.ErrInvalid, src[i+1])
		}
	}
	return nil, nil, fmt.Errorf("%w: windowed key: unterminated key", codec.ErrInvalid)
}

// FloorDiv is a / b rounded down (b > 0).
func FloorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// SegmentInterval returns the segment interval of a store with the given
// retention: half the retention, at least 1 ms.
func SegmentInterval(retention time.Duration) time.Duration {
	return max(retention/2, time.Millisecond).Truncate(time.Millisecond)
}

// SegmentTime returns the time, in ms, a window [start, end) is segmented
// and expired by: its start, or for a session its last record time
// (end - 1).
func SegmentTime(session bool, start, end int64) int64 {
	if session {
		return end - 1
	}
	return start
}

// AppendWindowKey appends the key of the window [start, end) of the
// escaped key ekey in segment seg.
func AppendWindowKey(dst []byte, seg int64, ekey []byte, start, end int64) []byte {
	dst = append(dst, SpaceWindow)
	dst = AppendTime(dst, seg)
	dst = append(dst, ekey...)
	dst = AppendTime(dst, start)
	return AppendTime(dst, end)
}

// AppendCloseKey appends the close index key of the window [start, end) of
// the escaped key ekey, which closes at stream time close.
func AppendCloseKey(dst []byte, close int64, ekey []byte, start, end int64) []byte {
	dst = append(dst, SpaceClose)
	dst = AppendTime(dst, close)
	dst = append(dst, ekey...)
	dst = AppendTime(dst, start)
	return AppendTime(dst, end)
}

// Layout is what a reader needs to know of a windowed store: whether it
// holds sessions, and its segment interval in ms.
type Layout struct {
	Session bool
	Segment int64
}

// ErrNotWindowed is returned by LayoutOf for a store that is not a window
// or session store.
var ErrNotWindowed = errors.New("windowstore: not a window or session store")

// LayoutOf returns the layout of the store spec declares.
func LayoutOf(spec topology.StoreSpec) (Layout, error) {
	switch spec.Kind {
	case topology.StoreWindow, topology.StoreSession:
		if spec.Segment < time.Millisecond {
			return Layout{}, fmt.Errorf("windowstore: store %q: segment interval %v", spec.Name, spec.Segment)
		}
		return Layout{Session: spec.Kind == topology.StoreSession, Segment: spec.Segment.Milliseconds()}, nil
	}
	return Layout{}, fmt.Errorf("%w: store %q is a %s store", ErrNotWindowed, spec.Name, spec.Kind)
}

// ScanFunc reads the pairs with start <= key < end of a store, in key
// order; the yielded slices are valid until the next step. The error
// function reports what stopped the sequence.
type ScanFunc func(start, end []byte) (iter.Seq2[[]byte, []byte], func() error)

// Fetch calls yield with the windows of the escaped key ekey whose start
// lies in [lo, hi), in start order (then end order): wkey is the window's
// key in the encoding of window.WindowedCodec (escaped key, start, end)
// and value its aggregate. It returns the first error of scan, or one
// matching codec.ErrInvalid for an entry that is not in the layout.
func (l Layout) Fetch(scan ScanFunc, ekey []byte, lo, hi int64, yield func(wkey, value []byte) bool) error {
	thi := hi - 1 // segment times: window starts...
	if l.Session {
		thi = math.MaxInt64 - 1 // ...or the last record time of sessions, after the start
	}
	return l.segments(scan, lo, thi, func(seg []byte) (bool, error) {
		prefix := append(seg[:len(seg):len(seg)], ekey...)
		from := AppendTime(prefix[:len(prefix):len(prefix)], lo)
		to := AppendTime(prefix[:len(prefix):len(prefix)], hi)
		return l.scan(scan, from, to, lo, hi, yield)
	})
}

// FetchAll is Fetch for every key: windows are ordered by segment, then
// key, then start.
func (l Layout) FetchAll(scan ScanFunc, lo, hi int64, yield func(wkey, value []byte) bool) error {
	thi := hi - 1
	if l.Session {
		thi = math.MaxInt64 - 1
	}
	return l.segments(scan, lo, thi, func(seg []byte) (bool, error) {
		next := AppendTime([]byte{SpaceWindow}, ReadTime(seg[1:])+1)
		return l.scan(scan, seg, next, lo, hi, yield)
	})
}

// segments calls f with the prefix (space and segment) of every segment
// present in the store with segment time in [tlo, thi], in order, until f
// returns false or an error.
func (l Layout) segments(scan ScanFunc, tlo, thi int64, f func(seg []byte) (bool, error)) error {
	if tlo > thi {
		return nil
	}
	end := AppendTime([]byte{SpaceWindow}, FloorDiv(thi, l.Segment)+1)
	for cur := FloorDiv(tlo, l.Segment); ; {
		// Seek to the first segment present at or after cur.
		seq, errf := scan(AppendTime([]byte{SpaceWindow}, cur), end)
		found := false
		for k := range seq {
			if len(k) >= 9 {
				cur, found = ReadTime(k[1:9]), true
			}
			break
		}
		if err := errf(); err != nil {
			return err
		}
		if !found {
			return nil
		}
		more, err := f(AppendTime([]byte{SpaceWindow}, cur))
		if err != nil || !more {
			return err
		}
		cur++
	}
}

// scan yields the windows stored in [from, to) whose start is in [lo,
// hi); it returns false when yield asked to stop.
func (l Layout) scan(scan ScanFunc, from, to []byte, lo, hi int64, yield func(wkey, value []byte) bool) (bool, error) {
	seq, errf := scan(from, to)
	for k, v := range seq {
		if len(k) < 9 || len(v) < 8 {
			return false, fmt.Errorf("%w: window entry", codec.ErrInvalid)
		}
		_, rest, err := Unescape(k[9:])
		if err != nil || len(rest) != 16 {
			return false, fmt.Errorf("%w: window entry", codec.ErrInvalid)
		}
		if start := ReadTime(rest); start < lo || start >= hi {
			continue
		}
		if !yield(k[9:], v[8:]) {
			return false, errf()
		}
	}
	return true, errf()
}
