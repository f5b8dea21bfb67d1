package duality

import (
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/runtime"
)

// The headers of a dead letter ([DeadLetterOnError]), each a text value.
// The record's own headers come first, in their order; these follow.
const (
	// DeadLetterErrorHeader holds the error's text, cut after 8 KiB:
	// e.g. `decode value: codec: invalid encoding: int64 needs 8 bytes,
	// got 5` (the step that failed is in DeadLetterStepHeader).
	DeadLetterErrorHeader = runtime.DeadLetterErrorHeader
	// DeadLetterStepHeader names the step that failed (the name of
	// [stream.Named], or the one Build gave it); absent when the error
	// names no step (a processor written against the topology contract).
	DeadLetterStepHeader = runtime.DeadLetterStepHeader
	// DeadLetterTopicHeader, DeadLetterPartitionHeader and
	// DeadLetterOffsetHeader say where the app read the record: its
	// topic, and its partition and offset in decimal.
	DeadLetterTopicHeader     = runtime.DeadLetterTopicHeader
	DeadLetterPartitionHeader = runtime.DeadLetterPartitionHeader
	DeadLetterOffsetHeader    = runtime.DeadLetterOffsetHeader
	// DeadLetterTaskHeader names the task that read it ("0_1", see
	// [TaskID]).
	DeadLetterTaskHeader = runtime.DeadLetterTaskHeader
	// DeadLetterAppHeader is the app's id.
	DeadLetterAppHeader = runtime.DeadLetterAppHeader
)

// ErrNotDeadLetter is matched by the error [ParseDeadLetter] returns for
// headers without a [DeadLetterErrorHeader].
var ErrNotDeadLetter = runtime.ErrNotDeadLetter

// DeadLetter is what the headers of a dead letter say about the failure
// of its record: Error, Step (empty when the error names none), Topic,
// Partition and Offset of the record as the app read it, Task and App.
// [ParseDeadLetter] returns it.
type DeadLetter = runtime.DeadLetter

// ParseDeadLetter reads the dead-letter headers among headers, those of a
// record of a dead-letter topic ([DeadLetterOnError]). It returns what
// they say, and the record's own headers: the others, in their order, as
// the record had them when the app read it, which is what a replay of the
// record to its topic writes. Headers without a [DeadLetterErrorHeader]
// give an error matching [ErrNotDeadLetter] and all of them as the
// record's own; a partition or offset header that is not a decimal number
// gives an error naming it. The returned headers share their bytes with
// headers.
func ParseDeadLetter(headers []broker.Header) (DeadLetter, []broker.Header, error) {
	return runtime.ParseDeadLetter(headers)
}
