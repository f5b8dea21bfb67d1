package intern

// Limits of a Strings.
const (
	// MaxLen is the longest byte sequence interned; longer ones are
	// copied each time (they rarely recur, and keeping them costs more).
	MaxLen = 32
	// MaxEntries is the number of strings a Strings keeps at most. When
	// it is full it starts over empty, unless the strings it held did
	// not recur enough to pay (see Strings).
	MaxEntries = 4096
	// pause is the number of decodes a Strings copies without interning
	// after a filling in which fewer than three in four lookups hit.
	pause = 1 << 16
)

// Strings interns short strings. The zero value is ready. It is not safe
// for concurrent use: each goroutine (each task's source) has its own.
//
// It fills a map of up to MaxEntries strings. A full map starts over
// empty (a working set that drifts over time is followed); but when fewer
// than three in four of the lookups since it started hit, the values do
// not recur enough to pay for the lookups and insertions (a working set
// larger than the map, unique values), and the next 65536 decodes are
// plain copies before it tries again.
type Strings struct {
	m            map[string]string
	hits, misses int
	off          int // decodes left to copy without interning
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
	if s.m == nil {
		s.m = make(map[string]string)
	} else if len(s.m) >= MaxEntries {
		paid := s.hits >= 3*s.misses
		s.hits, s.misses = 0, 0
		if !paid {
			s.off, s.m = pause, nil // and its memory goes
			return string(b)
		}
		clear(s.m)
		s.misses = 1
	}
	v := string(b)
	s.m[v] = v
	return v
}

// Len returns the number of strings s holds.
func (s *Strings) Len() int { return len(s.m) }
