package window

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/duality-streams/duality/internal/dsl"
	"github.com/duality-streams/duality/stream"
)

// ErrInvalidWindow is matched by the errors Build reports for an invalid
// window definition: a size, advance, gap or time difference that is not a
// positive whole number of milliseconds, an advance larger than the size, a
// negative grace, a retention shorter than the window's size plus grace,
// and session windows given to an aggregation that cannot merge them.
var ErrInvalidWindow = errors.New("window: invalid window definition")

// ErrInvalidTimestamp is [stream.ErrInvalidTimestamp]: it is matched by
// the error of a record whose timestamp is before the Unix epoch
// (negative in milliseconds, like Kafka's invalid timestamps) or after
// [MaxTimestamp]. Every source already fails such a record (as Kafka
// Streams' default extractor does); windowed aggregations and joins check
// again. The record fails and the runtime applies the app's error policy:
// it stops the app by default, or skips the record under a skip policy.
var ErrInvalidTimestamp = stream.ErrInvalidTimestamp

// MaxTimestamp is [stream.MaxTimestamp], the largest record timestamp, in
// Unix milliseconds, that sources, windowed aggregations and joins
// accept: 9999-12-31T23:59:59.999Z. Later timestamps fail with
// [ErrInvalidTimestamp]; the cap keeps window bounds (timestamp plus
// size, grace and retention, all time.Durations) far from int64
// overflow.
const MaxTimestamp = stream.MaxTimestamp

// checkTimestamp returns an error matching ErrInvalidTimestamp when ts
// (Unix ms) is negative or after MaxTimestamp.
func checkTimestamp(ts int64) error { return dsl.CheckMillis(ts) }

// Kind says how a [Windows] assigns records to windows.
type Kind uint8

const (
	// KindTumbling is fixed-size, non-overlapping windows aligned to the
	// epoch.
	KindTumbling Kind = iota + 1
	// KindHopping is fixed-size windows that start every advance.
	KindHopping
	// KindSliding is Kafka Streams' sliding windows: windows of a fixed
	// time difference defined by the records' timestamps.
	KindSliding
	// KindSession is gap-based windows that grow and merge with activity.
	KindSession
)

// String returns "tumbling", "hopping", "sliding" or "session".
func (k Kind) String() string {
	switch k {
	case KindTumbling:
		return "tumbling"
	case KindHopping:
		return "hopping"
	case KindSliding:
		return "sliding"
	case KindSession:
		return "session"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// NoGrace is a grace period of zero: a window closes as soon as stream
// time reaches its end. It names the choice at the call site, as Kafka
// Streams' ofSizeWithNoGrace does.
const NoGrace time.Duration = 0

// Windows defines how records are grouped into windows: the kind, its
// sizes, the grace period and the retention of the windowed state. Create
// one with [Tumbling], [Hopping], [Sliding] or [Session]; the grace period
// is always given explicitly (use [NoGrace] for none). Windows is a small
// immutable value. Invalid definitions are reported by Build (with
// ErrInvalidWindow), never by the constructors.
//
// All durations are in milliseconds, as record timestamps are: a duration
// that is not a whole number of milliseconds is invalid.
type Windows struct {
	kind      Kind
	size      time.Duration // tumbling, hopping: size; sliding: time difference; session: gap
	advance   time.Duration // hopping; equal to size for tumbling
	grace     time.Duration
	retention time.Duration // 0: the minimum
}

// Tumbling returns windows of the given size that do not overlap: the
// window of a record with timestamp t is [t - t%size, t - t%size + size),
// start inclusive, end exclusive. A window accepts records until stream
// time reaches its end plus grace (Kafka Streams'
// TimeWindows.ofSizeAndGrace; ofSizeWithNoGrace is grace [NoGrace]).
func Tumbling(size, grace time.Duration) Windows {
	return Windows{kind: KindTumbling, size: size, advance: size, grace: grace}
}

// Hopping returns windows of the given size that start every advance
// (advance <= size), so that a record belongs to up to size/advance
// windows: those with start in (t - size, t], start a multiple of advance
// and not negative, as in Kafka Streams' TimeWindows.advanceBy. Grace as
// for [Tumbling]. An advance equal to the size makes tumbling windows.
func Hopping(size, advance, grace time.Duration) Windows {
	return Windows{kind: KindHopping, size: size, advance: advance, grace: grace}
}

// Sliding returns Kafka Streams' sliding windows with the given maximum
// time difference: windows contain the records whose timestamps lie within
// difference of each other, and exist only where records are. For every
// record at t there is a window [t - difference, t] that ends with it
// and, if later records fall within difference of t, a window
// [t + 1ms, t + 1ms + difference] that starts just after it. Both ends
// are inclusive in Kafka's terms; [Windowed.End] is exclusive, so it is
// start + difference + 1ms. Grace as for [Tumbling].
//
// Unlike Kafka Streams, windows of records earlier than difference after
// the epoch start before the epoch (Kafka clamps them to start at 0).
func Sliding(difference, grace time.Duration) Windows {
	return Windows{kind: KindSliding, size: difference, grace: grace}
}

// Session returns session windows with the given inactivity gap: records
// of a key whose timestamps are within gap of each other form one session
// [first, last] (both inclusive; [Windowed.End] is last + 1ms), and a
// record that falls within gap of two sessions merges them. A session
// accepts records until stream time reaches its end + gap + grace, as in
// Kafka Streams' SessionWindows.ofInactivityGapAndGrace.
func Session(gap, grace time.Duration) Windows {
	return Windows{kind: KindSession, size: gap, grace: grace}
}

// WithRetention returns w with the given retention: how long windowed
// state is kept, measured back from stream time against a window's start
// (a session's end), so that interactive queries can read closed windows.
// The default and minimum is size + grace (gap + grace for sessions;
// 2 * difference + 1ms + grace for sliding windows, whose new windows are
// derived from older ones); a shorter retention is an
// ErrInvalidWindow at Build. State is dropped in segments of half the
// retention, so a window may be kept up to that much longer, and with
// the step's advance of stream time after the one that expired it (see
// "State" in the package documentation).
func (w Windows) WithRetention(retention time.Duration) Windows {
	w.retention = retention
	return w
}

// Kind returns the kind of the windows.
func (w Windows) Kind() Kind { return w.kind }

// Size returns the window size (the time difference for sliding windows,
// the inactivity gap for sessions).
func (w Windows) Size() time.Duration { return w.size }

// Advance returns the advance of hopping windows (the size for tumbling
// windows, 0 for the other kinds).
func (w Windows) Advance() time.Duration { return w.advance }

// Grace returns the grace period.
func (w Windows) Grace() time.Duration { return w.grace }

// Retention returns how long windowed state is kept (see
// [Windows.WithRetention]): the configured retention, or the minimum.
func (w Windows) Retention() time.Duration {
	if w.retention > 0 {
		return w.retention
	}
	return w.minRetention()
}

func (w Windows) minRetention() time.Duration {
	if w.kind == KindSliding {
		// New sliding windows are derived from the aggregates of windows
		// up to two time differences back.
		return 2*w.size + time.Millisecond + w.grace
	}
	return w.size + w.grace
}

// minRetentionOverflows reports whether minRetention does not fit a
// time.Duration (size and grace being non-negative).
func (w Windows) minRetentionOverflows() bool {
	limit := time.Duration(math.MaxInt64) - w.grace
	if w.kind == KindSliding {
		return w.size > (limit-time.Millisecond)/2
	}
	return w.size > limit
}

// String describes the windows, e.g. "hopping(size 10s, advance 2s, grace 0s)".
func (w Windows) String() string {
	switch w.kind {
	case KindTumbling:
		return fmt.Sprintf("tumbling(size %s, grace %s)", w.size, w.grace)
	case KindHopping:
		return fmt.Sprintf("hopping(size %s, advance %s, grace %s)", w.size, w.advance, w.grace)
	case KindSliding:
		return fmt.Sprintf("sliding(difference %s, grace %s)", w.size, w.grace)
	case KindSession:
		return fmt.Sprintf("session(gap %s, grace %s)", w.size, w.grace)
	}
	return "windows(undefined)"
}

// validate returns every problem of w, each matching ErrInvalidWindow.
func (w Windows) validate() []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s: %s", ErrInvalidWindow, w, fmt.Sprintf(format, args...)))
	}
	positiveMs := func(what string, d time.Duration) bool {
		switch {
		case d <= 0:
			bad("%s %s must be positive", what, d)
		case d%time.Millisecond != 0:
			bad("%s %s must be a whole number of milliseconds", what, d)
		default:
			return true
		}
		return false
	}
	var sizeName string
	switch w.kind {
	case KindTumbling, KindHopping:
		sizeName = "size"
	case KindSliding:
		sizeName = "time difference"
	case KindSession:
		sizeName = "inactivity gap"
	default:
		return []error{fmt.Errorf("%w: the zero Windows; use Tumbling, Hopping, Sliding or Session", ErrInvalidWindow)}
	}
	okSize := positiveMs(sizeName, w.size)
	if w.kind == KindHopping && positiveMs("advance", w.advance) && okSize && w.advance > w.size {
		bad("advance %s must not exceed the size %s", w.advance, w.size)
	}
	switch {
	case w.grace < 0:
		bad("grace %s must not be negative", w.grace)
	case w.grace%time.Millisecond != 0:
		bad("grace %s must be a whole number of milliseconds", w.grace)
	}
	if okSize && w.grace >= 0 && w.minRetentionOverflows() {
		bad("%s plus grace overflows a time.Duration (about 292 years)", sizeName)
	}
	if w.retention != 0 {
		switch {
		case w.retention < 0 || w.retention%time.Millisecond != 0:
			bad("retention %s must be a positive whole number of milliseconds", w.retention)
		case w.grace >= 0 && w.retention < w.minRetention():
			bad("retention %s must be at least %s (the window size plus grace)", w.retention, w.minRetention())
		}
	}
	return errs
}

// Windowed is the key of a windowed aggregation's results: the record key
// and the window, [Start, End) with Start inclusive and End exclusive, at
// millisecond precision. For sliding windows and sessions, whose ends
// Kafka Streams counts as inclusive, End is the inclusive end + 1ms.
type Windowed[K any] struct {
	Key   K
	Start time.Time
	End   time.Time
}

// String formats the windowed key as "key@[start,end)" with RFC 3339
// times in UTC.
func (w Windowed[K]) String() string {
	return fmt.Sprintf("%v@[%s,%s)", w.Key, w.Start.UTC().Format(time.RFC3339Nano), w.End.UTC().Format(time.RFC3339Nano))
}

// span is a window in epoch milliseconds: [start, end).
type span struct{ start, end int64 }

func (s span) times() (time.Time, time.Time) {
	return time.UnixMilli(s.start), time.UnixMilli(s.end)
}

// timeWindowsFor returns the windows of a tumbling or hopping definition
// that contain t (ms), oldest first, starts >= 0 (Kafka Streams'
// TimeWindows.windowsFor).
func timeWindowsFor(t, size, advance int64) []span {
	first := max(0, t-size+advance) / advance * advance
	var out []span
	for s := first; s <= t; s += advance {
		out = append(out, span{s, s + size})
		if s > t-advance { // the next start is past t; stop before s+advance could overflow
			break
		}
	}
	return out
}
