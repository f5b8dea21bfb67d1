package intern

import "sync/atomic"

// Limits of a Strings, and of all of them together.
const (
	// MaxLen is the longest byte sequence interned; longer ones are
	// copied each time (they rarely recur, and keeping them costs more).
	MaxLen = 32
	// MaxEntries is the number of strings a Strings keeps at most. When
	// it is full it starts over empty, unless the strings it held did
	// not recur enough to pay (see Strings).
	MaxEntries = 4096
	// MaxTotal is the number of strings all the Strings of the process
	// keep together at most: 16 full tables, about 5 MiB at worst (a
	// string of MaxLen bytes and its map entry take about 80 bytes).
	// The tables take their strings from this budget as they fill and
	// give them back when they start over, pause or are released, so
	// that an app with a thousand tasks holds no more than one with
	// sixteen.
	MaxTotal = 16 * MaxEntries
	// pause is the number of decodes a Strings copies without interning
	// after a filling in which fewer than three in four lookups hit.
	pause = 1 << 16
	// retry is the number of misses a Strings copies without asking the
	// budget again after it found the budget spent.
	retry = 1 << 10
)

// budget counts the strings held by the Strings that share it, up to
// max. It is safe for concurrent use.
type budget struct {
	max  int64
	used atomic.Int64
}

// take reserves one string; false when the budget is spent. A spent
// budget costs a load, not a write, so that tables that find it spent do
// not contend on it.
func (b *budget) take() bool {
	if b.used.Load() >= b.max {
		return false
	}
	if b.used.Add(1) > b.max {
		b.used.Add(-1)
		return false
	}
	return true
}

// give returns n strings to the budget.
func (b *budget) give(n int) {
	if n > 0 {
		b.used.Add(-int64(n))
	}
}

// shared is the budget of every Strings of the process.
var shared = budget{max: MaxTotal}

// Held returns the number of strings all the Strings of the process hold
// now, at most MaxTotal. It is safe for concurrent use.
func Held() int64 { return shared.used.Load() }

// Strings interns short strings. The zero value is ready. It is not safe
// for concurrent use: each goroutine (each task's source) has its own.
// Its owner calls Release when it is done with it (a task closing), so
// that the strings it holds count no more against MaxTotal.
//
// It fills a map of up to MaxEntries strings. A full map starts over
// empty (a working set that drifts over time is followed); but when fewer
// than three in four of the lookups since it started hit, the values do
// not recur enough to pay for the lookups and insertions (a working set
// larger than the map, unique values), and the next 65536 decodes are
// plain copies before it tries again. Each string it keeps is taken
// from the process's budget of MaxTotal: while the budget is spent, a
// string it does not hold is a plain copy (the strings it holds are
// still shared), and it asks again after 1024 such misses.
type Strings struct {
	m            map[string]string
	hits, misses int
	off          int     // decodes left to copy without interning
	wait         int     // misses left to copy before asking the budget again
	b            *budget // nil: shared
}

func (s *Strings) budget() *budget {
	if s.b == nil {
		return &shared
	}
	return s.b
}

// Get returns string(b), the same string as an earlier Get of equal bytes
// when it still holds one. It does not retain b.
func (s *Strings) Get(b []byte) string {
	if len(b) > MaxLen || len(b) == 0 {
		return string(b) // "" needs no allocation
	}
	if s.off > 0 {
		s.off--
		return string(b)
	}
	if v, ok := s.m[string(b)]; ok { // the lookup does not allocate
		s.hits++
		return v
	}
	s.misses++
	if len(s.m) >= MaxEntries {
		paid := s.hits >= 3*s.misses
		s.hits, s.misses = 0, 0
		s.budget().give(len(s.m))
		if !paid {
			s.off, s.m = pause, nil // and its memory goes
			return string(b)
		}
		clear(s.m)
		s.misses = 1
	}
	if s.wait > 0 {
		s.wait--
		return string(b)
	}
	if !s.budget().take() {
		s.wait = retry
		return string(b)
	}
	if s.m == nil {
		s.m = make(map[string]string)
	}
	v := string(b)
	s.m[v] = v
	return v
}

// Len returns the number of strings s holds.
func (s *Strings) Len() int { return len(s.m) }

// Release drops the strings s holds and gives them back to the budget
// (MaxTotal). The strings Get returned stay valid; s stays usable and
// starts over empty.
func (s *Strings) Release() {
	s.budget().give(len(s.m))
	s.m = nil
	s.hits, s.misses, s.off, s.wait = 0, 0, 0, 0
}
