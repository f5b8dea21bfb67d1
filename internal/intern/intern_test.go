package intern

import (
	"fmt"
	"strings"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

func TestGetSharesRecurringStrings(t *testing.T) {
	var s Strings
	b := []byte("user-42")
	first := s.Get(b)
	require.Equal(t, "user-42", first)
	b[0] = 'X' // Get does not retain b
	require.Equal(t, "user-42", first)
	again := s.Get([]byte("user-42"))
	require.Equal(t, "user-42", again)
	require.Same(t, unsafe.StringData(first), unsafe.StringData(again), "one string per distinct value")
	require.Equal(t, "Xser-42", s.Get(b))
	require.Equal(t, 2, s.Len())
}

func TestGetLimits(t *testing.T) {
	var s Strings
	require.Equal(t, "", s.Get(nil))
	require.Equal(t, "", s.Get([]byte{}))
	long := strings.Repeat("x", MaxLen+1)
	require.Equal(t, long, s.Get([]byte(long)))
	require.Equal(t, 0, s.Len(), "empty and long strings are not kept")
	exact := strings.Repeat("y", MaxLen)
	require.Equal(t, exact, s.Get([]byte(exact)))
	require.Equal(t, 1, s.Len())
}

func TestGetNoAllocationOnHit(t *testing.T) {
	var s Strings
	keys := make([][]byte, 1000)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "k%07d", i)
		s.Get(keys[i])
	}
	i := 0
	allocs := testing.AllocsPerRun(10_000, func() {
		s.Get(keys[i%len(keys)])
		i++
	})
	require.Zero(t, allocs)
}

func TestGetBounded(t *testing.T) {
	t.Run("a recurring working set that drifts is followed", func(t *testing.T) {
		var s Strings
		// Each phase reads a working set of 1000 keys 8 times: the map
		// fills with the old and new sets and starts over, keeping the
		// new one.
		for phase := range 10 {
			for range 8 {
				for i := range 1000 {
					k := fmt.Appendf(nil, "p%d-%d", phase, i)
					require.Equal(t, string(k), s.Get(k))
				}
			}
			require.LessOrEqual(t, s.Len(), MaxEntries)
		}
		require.Zero(t, s.off, "the strings recurred: interning stays on")
		before := s.Len()
		s.Get([]byte("p9-1"))
		require.Equal(t, before, s.Len(), "the last working set is held")
	})
	t.Run("unique strings pause interning", func(t *testing.T) {
		var s Strings
		for i := range MaxEntries + 1 {
			k := fmt.Appendf(nil, "u%d", i)
			require.Equal(t, string(k), s.Get(k))
		}
		require.Equal(t, pause, s.off)
		require.Zero(t, s.Len(), "the map is dropped while paused")
		for i := range pause {
			k := fmt.Appendf(nil, "v%d", i)
			require.Equal(t, string(k), s.Get(k))
		}
		require.Zero(t, s.off)
		require.Zero(t, s.Len())
		s.Get([]byte("again"))
		require.Equal(t, 1, s.Len(), "interning resumes after the pause")
	})
}

func TestBudget(t *testing.T) {
	t.Run("tables together hold at most the budget", func(t *testing.T) {
		// 100 tables (tasks) each read a working set of 300 recurring
		// keys; the budget holds 1000 strings: the first three fill
		// 300 each, the fourth 100, the others none and copy.
		b := &budget{max: 1000}
		tables := make([]*Strings, 100)
		for i := range tables {
			tables[i] = &Strings{b: b}
			for range 3 {
				for j := range 300 {
					k := fmt.Appendf(nil, "t%d-%d", i, j)
					require.Equal(t, string(k), tables[i].Get(k))
				}
			}
		}
		var held int
		for _, s := range tables {
			held += s.Len()
		}
		require.Equal(t, 1000, held)
		require.EqualValues(t, 1000, b.used.Load())
		require.Equal(t, []int{300, 300, 300, 100, 0}, []int{tables[0].Len(), tables[1].Len(), tables[2].Len(), tables[3].Len(), tables[4].Len()})

		// The strings a table holds are still shared, budget spent or not.
		first := tables[0].Get([]byte("t0-7"))
		require.Same(t, unsafe.StringData(first), unsafe.StringData(tables[0].Get([]byte("t0-7"))))

		// Released tables (closed tasks) give their strings back; a
		// table that found the budget spent asks again after retry
		// misses, and interns again.
		tables[0].Release()
		tables[1].Release()
		require.Zero(t, tables[0].Len())
		require.EqualValues(t, 400, b.used.Load())
		s := tables[50]
		wait := s.wait
		require.Positive(t, wait)
		require.LessOrEqual(t, wait, retry)
		for j := range wait + 10 {
			k := fmt.Appendf(nil, "t50-new%d", j)
			require.Equal(t, string(k), s.Get(k))
		}
		require.Equal(t, 10, s.Len(), "the misses after the wait are interned")
		require.EqualValues(t, 400+s.Len(), b.used.Load())
		for _, s := range tables {
			s.Release()
		}
		require.Zero(t, b.used.Load())
	})
	t.Run("starting over and pausing give the strings back", func(t *testing.T) {
		b := &budget{max: MaxTotal}
		s := &Strings{b: b}
		for i := range MaxEntries {
			s.Get(fmt.Appendf(nil, "u%d", i))
		}
		require.EqualValues(t, MaxEntries, b.used.Load())
		s.Get([]byte("one more")) // full, unpaid: pauses, the map dropped
		require.Equal(t, pause, s.off)
		require.Zero(t, b.used.Load())

		s = &Strings{b: b}
		for range 5 {
			for i := range MaxEntries {
				s.Get(fmt.Appendf(nil, "r%d", i))
			}
		}
		s.Get([]byte("one more")) // full, paid: starts over with it
		require.Equal(t, 1, s.Len())
		require.EqualValues(t, 1, b.used.Load())
		s.Release()
		require.Zero(t, b.used.Load())
	})
	t.Run("the zero value takes from the process's budget", func(t *testing.T) {
		before := Held()
		var s Strings
		for i := range 100 {
			s.Get(fmt.Appendf(nil, "z%d", i))
		}
		require.Equal(t, before+100, Held())
		s.Release()
		require.Equal(t, before, Held())
		require.Equal(t, "z1", s.Get([]byte("z1")), "usable after Release")
		require.Equal(t, 1, s.Len())
		s.Release()
	})
}

// BenchmarkGet compares Get with a plain string conversion on keys from
// working sets of 2500 and 100,000 strings (the second larger than a
// table: Get pauses and copies).
func BenchmarkGet(b *testing.B) {
	for _, n := range []int{2500, 100_000} {
		keys := make([][]byte, n)
		for i := range keys {
			keys[i] = fmt.Appendf(nil, "k%07d", i*7919%n)
		}
		b.Run(fmt.Sprintf("intern/keys=%d", n), func(b *testing.B) {
			var s Strings
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				sink = s.Get(keys[i%n])
				i++
			}
		})
		b.Run(fmt.Sprintf("copy/keys=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				sink = string(keys[i%n])
				i++
			}
		})
	}
}

var sink string
