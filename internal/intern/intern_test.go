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
