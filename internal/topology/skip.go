package topology

// Skipper is implemented by a Processor that keeps in-memory state
// derived from its stores (stream time, caches, progress markers). It is
// optional.
//
// The runtime calls Begin before each unit of work whose state writes it
// may undo on its own: each record and each punctuation (streamtest: each
// piped record with the punctuations it makes due, or each wall-clock
// advance). When it discards a unit that failed (a skip error policy, or
// streamtest after a failed pipe), it undoes that unit's store writes and
// drops its output, then calls Skip: the processor must restore its
// in-memory state to what it was at Begin, in every step, including the
// steps that succeeded (a sibling step of the same record may have
// failed).
type Skipper interface {
	// Begin starts a unit of work.
	Begin()
	// Skip undoes the in-memory effects of the unit of work last begun,
	// which failed.
	Skip()
}
