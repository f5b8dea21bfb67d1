package runtime

import (
	"math"
	"math/bits"
	"sync/atomic"
)

// HistogramBuckets is the number of buckets of a [Histogram].
const HistogramBuckets = 40

// Histogram is a snapshot of a distribution of non-negative integers
// (durations in nanoseconds, sizes in records) in power-of-two buckets
// (duality.Histogram is this type). Buckets[i] counts the observations v
// with 2^(i-1) < v <= 2^i, Buckets[0] those up to 1, and the last bucket
// every observation above 2^(HistogramBuckets-2) (about 275 s in
// nanoseconds). Buckets are not cumulative; Count is their sum and Sum
// the sum of the observations. The zero value is an empty histogram.
type Histogram struct {
	Count   uint64
	Sum     uint64
	Buckets [HistogramBuckets]uint64
}

// UpperBound returns the largest observation bucket i counts: 2^i, and
// math.MaxUint64 for the last bucket (and for an i out of range).
func (h *Histogram) UpperBound(i int) uint64 {
	if i < 0 || i >= HistogramBuckets-1 {
		return math.MaxUint64
	}
	return 1 << i
}

// Quantile returns an upper bound of the q-quantile (q in [0, 1]) of the
// observations: the upper bound of the bucket that holds it, at most
// twice the true value. It returns 0 for an empty histogram.
func (h *Histogram) Quantile(q float64) uint64 {
	if h.Count == 0 {
		return 0
	}
	rank := uint64(math.Ceil(min(max(q, 0), 1) * float64(h.Count)))
	var seen uint64
	for i, n := range h.Buckets {
		seen += n
		if seen >= max(rank, 1) {
			return h.UpperBound(i)
		}
	}
	return math.MaxUint64
}

// Mean returns the mean of the observations, 0 for an empty histogram.
func (h *Histogram) Mean() float64 {
	if h.Count == 0 {
		return 0
	}
	return float64(h.Sum) / float64(h.Count)
}

// add adds o's observations to h.
func (h *Histogram) add(o *Histogram) {
	h.Count += o.Count
	h.Sum += o.Sum
	for i, n := range o.Buckets {
		h.Buckets[i] += n
	}
}

// bucketOf returns the bucket of a Histogram that counts v.
func bucketOf(v uint64) int {
	if v <= 1 {
		return 0
	}
	return min(bits.Len64(v-1), HistogramBuckets-1)
}

// hist is a histogram written and read by one goroutine: the observations
// a worker has not published yet.
type hist struct {
	sum     uint64
	buckets [HistogramBuckets]uint64
	dirty   bool
}

func (h *hist) observe(v uint64) {
	h.buckets[bucketOf(v)]++
	h.sum += v
	h.dirty = true
}

// atomicHist is a histogram safe for concurrent use: observe and publish
// from any goroutine, load for snapshots. A snapshot's Count is the sum
// of the buckets it read, so it always equals the buckets' total.
type atomicHist struct {
	sum     atomic.Uint64
	buckets [HistogramBuckets]atomic.Uint64
}

func (a *atomicHist) observe(v uint64) {
	a.buckets[bucketOf(v)].Add(1)
	a.sum.Add(v)
}

// publish adds h's observations to a and empties h.
func (a *atomicHist) publish(h *hist) {
	if !h.dirty {
		return
	}
	for i, n := range h.buckets {
		if n > 0 {
			a.buckets[i].Add(n)
			h.buckets[i] = 0
		}
	}
	a.sum.Add(h.sum)
	h.sum, h.dirty = 0, false
}

// load adds a's observations to dst.
func (a *atomicHist) load(dst *Histogram) {
	for i := range a.buckets {
		n := a.buckets[i].Load()
		dst.Buckets[i] += n
		dst.Count += n
	}
	dst.Sum += a.sum.Load()
}
