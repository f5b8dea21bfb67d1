package sticky

import "slices"

// Deal deals the partition numbers 0..n-1 to len(owned) members, given in
// the order that breaks ties (join order, or member id): owned[i] are the
// numbers member i had in the previous generation, which it keeps up to
// its share (see the package documentation). Numbers outside 0..n-1, and
// those an earlier member keeps, are ignored. It returns each member's
// numbers, sorted; a member may get none (more members than numbers). It
// does not retain owned, and returns an empty result for no member.
func Deal(owned [][]int32, n int32) [][]int32 {
	out := make([][]int32, len(owned))
	if len(owned) == 0 || n <= 0 {
		return out
	}
	base, extra := int(n)/len(owned), int(n)%len(owned) // extra: members that may hold base+1
	limit := func() int {
		if extra > 0 {
			return base + 1
		}
		return base
	}
	taken := make([]bool, n)
	// Sticky pass: members keep owned numbers up to their share; those
	// that keep base+1 use up the extra shares.
	for i, nums := range owned {
		q := limit()
		for _, p := range nums {
			if p >= 0 && p < n && !taken[p] && len(out[i]) < q {
				taken[p] = true
				out[i] = append(out[i], p)
			}
		}
		if len(out[i]) > base {
			extra--
		}
	}
	// Fill pass: free numbers go to the members below their share, the
	// fewest first (the earliest on ties).
	for p := range n {
		if taken[p] {
			continue
		}
		best := -1
		for i := range owned {
			if len(out[i]) < limit() && (best < 0 || len(out[i]) < len(out[best])) {
				best = i
			}
		}
		if best < 0 {
			best = 0 // unreachable: the shares add up to n
		}
		out[best] = append(out[best], p)
		if len(out[best]) > base {
			extra--
		}
	}
	for i := range out {
		slices.Sort(out[i])
	}
	return out
}
