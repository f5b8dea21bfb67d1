package dsl

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/duality-streams/duality/internal/topology"
)

// ErrInvalidTimestamp is matched by the error of a record whose timestamp
// is before the Unix epoch or after [MaxTimestamp]. Package stream
// re-exports it (stream.ErrInvalidTimestamp), and package window again
// (window.ErrInvalidTimestamp).
var ErrInvalidTimestamp = errors.New("stream: invalid record timestamp")

// MaxTimestamp is the largest valid record timestamp in Unix milliseconds:
// 9999-12-31T23:59:59.999Z (topology.MaxTimestamp, the end of time of a
// bounded run). Package stream re-exports it.
const MaxTimestamp = topology.MaxTimestamp

var (
	epoch   = time.UnixMilli(0)
	pastMax = time.UnixMilli(MaxTimestamp + 1)
	// The range of times whose Unix milliseconds fit an int64.
	minMilli = time.UnixMilli(math.MinInt64)
	maxMilli = time.UnixMilli(math.MaxInt64)
)

// ValidTimestamp reports whether ts is a valid record timestamp: not
// before the Unix epoch and not after [MaxTimestamp]. Unlike a check of
// ts.UnixMilli(), it is right for times whose milliseconds overflow an
// int64.
func ValidTimestamp(ts time.Time) bool { return !ts.Before(epoch) && ts.Before(pastMax) }

// CheckTimestamp returns nil for a valid ts (see [ValidTimestamp]), else
// an error matching [ErrInvalidTimestamp] that gives ts.
func CheckTimestamp(ts time.Time) error {
	if ValidTimestamp(ts) {
		return nil
	}
	what := "before the Unix epoch"
	if !ts.Before(epoch) {
		what = fmt.Sprintf("after MaxTimestamp (%d ms, year 9999)", MaxTimestamp)
	}
	if ts.Before(minMilli) || ts.After(maxMilli) {
		return fmt.Errorf("%w: %s is %s", ErrInvalidTimestamp, ts.UTC().Format(time.RFC3339Nano), what)
	}
	return fmt.Errorf("%w: %d ms (%s) is %s", ErrInvalidTimestamp, ts.UnixMilli(), ts.UTC().Format(time.RFC3339Nano), what)
}

// CheckMillis is [CheckTimestamp] for a timestamp in Unix milliseconds.
func CheckMillis(ms int64) error {
	if ms >= 0 && ms <= MaxTimestamp {
		return nil
	}
	return CheckTimestamp(time.UnixMilli(ms))
}

// orderTime returns the event time in Unix milliseconds that the runtime
// orders a record by: ts's, or -1 for an invalid ts, so that the record
// is processed (and fails) as soon as it is the first of its partition,
// without holding back the task or moving its stream time.
func orderTime(ts time.Time) int64 {
	if !ValidTimestamp(ts) {
		return -1
	}
	return ts.UnixMilli()
}
