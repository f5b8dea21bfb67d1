package runtime

import (
	"context"
	"sync/atomic"
)

// commitFence makes the committed writes of a task's store partition
// visible to queries atomically with the commit's input offsets.
//
// A commit makes its offsets visible inside the broker call, and the
// worker writes the store only after the call returns: in between, a
// query that has seen the new offsets (a group lag of 0) would read the
// state from before the commit. So the fence is held from before the
// broker call until the commit's writes are in the store (or the commit
// has failed), and a query of the partition waits while it is held: a
// query never reads state older than the offsets committed when it
// started, and waits at most one commit's duration.
//
// The zero value is released. hold and release are called by the worker
// and its commit, one commit at a time; wait by any goroutine.
type commitFence struct {
	// busy is closed by release; nil when released.
	busy atomic.Pointer[chan struct{}]
}

// hold makes queries wait, before the broker commit starts.
func (f *commitFence) hold() {
	ch := make(chan struct{})
	f.busy.Store(&ch)
}

// release lets the waiting and later queries go on, once the commit's
// writes are in the store or the commit has failed.
func (f *commitFence) release() {
	if ch := f.busy.Swap(nil); ch != nil {
		close(*ch)
	}
}

// wait returns once the fence is released, or with ctx's error.
func (f *commitFence) wait(ctx context.Context) error {
	ch := f.busy.Load()
	if ch == nil {
		return nil
	}
	select {
	case <-*ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
