// Package intern shares one Go string per distinct short byte sequence
// among the decodes of one goroutine, so that a source reading string keys
// or values from a bounded set (user ids, country codes, event kinds)
// decodes them without allocating once it has seen each.
//
// The strings are ordinary immutable Go strings: sharing them is invisible
// to their users, who may keep them as long as they like. A [Strings]
// keeps at most [MaxEntries] strings of at most [MaxLen] bytes each, so it
// holds a few hundred KiB at worst; when its strings do not recur (a
// working set larger than it, or unique values), it stops interning for a
// while and decodes with a plain copy, at the cost of one counter.
//
// # A budget for the process
//
// Each task's source has tables of its own, so the number of tables grows
// with the tasks. All of them together hold at most [MaxTotal] strings
// (a few MiB): a table takes each string it keeps from that budget and
// gives its strings back when it starts over, pauses or is released
// ([Strings.Release], which package stream calls when a task closes).
// While the budget is spent, a table decodes the strings it does not hold
// with a plain copy, as without interning. [Held] tells how much of the
// budget is in use.
package intern
