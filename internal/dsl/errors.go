package dsl

import "fmt"

// NodeError is the error a step returns when it fails on a record or a
// punctuation. Package stream re-exports it (stream.NodeError), which
// documents it for users.
type NodeError struct {
	// Node is the name of the failing step.
	Node string
	// Topic, Partition and Offset locate the input record (empty and 0
	// for a punctuation).
	Topic     string
	Partition int32
	Offset    int64
	// Err is the cause.
	Err error
}

// Error names the step and the cause. Like the codec's errors, it has no
// package prefix: it adds context to its cause, whose own message says
// where it comes from (stream.ErrInvalidTimestamp's "stream: ..."), so
// the prefix is said once.
func (e *NodeError) Error() string { return fmt.Sprintf("step %q: %v", e.Node, e.Err) }

// Unwrap returns the cause.
func (e *NodeError) Unwrap() error { return e.Err }

// PanicError is a panic recovered in a user function or codec, turned
// into an error so one bad record fails the record instead of the
// process. Package stream re-exports it (stream.PanicError).
type PanicError struct {
	// Value is the value passed to panic.
	Value any
	// Stack is the goroutine's stack at the panic.
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// Unwrap returns Value if it is an error (a panic with an error value),
// else nil.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}
