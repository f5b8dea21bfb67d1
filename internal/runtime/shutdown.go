package runtime

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// shutdown bounds how long Run takes to stop. Workers process and commit
// with its context, which Run's ctx does not cancel (the work done when
// ctx ends is still flushed and committed), but which is canceled, with
// cause ErrShutdownTimeout, Config.ShutdownTimeout after the stop began:
// after Run's ctx ended, or when the app stops without it (start): the
// last generation stops (a fatal error, a bounded run at its end) or the
// group loop returns without one (a failed start, the membership ended).
// Waits
// for broker calls (await, awaitPurge, call) give up at that deadline
// even when the call ignores its context, so a hung broker cannot make
// Run hang; the abandoned call's goroutine exits when the call returns.
type shutdown struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	begin  chan struct{} // closed by start
	once   sync.Once
	done   chan struct{} // closed when the timing goroutine has exited
}

// newShutdown returns the shutdown of a Run with context ctx and starts
// its timing goroutine; end stops it.
func newShutdown(ctx context.Context, timeout time.Duration) *shutdown {
	sctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	s := &shutdown{ctx: sctx, cancel: cancel, begin: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		select {
		case <-ctx.Done():
		case <-s.begin:
		case <-sctx.Done():
			return
		}
		t := time.NewTimer(timeout)
		defer t.Stop()
		select {
		case <-t.C:
			cancel(fmt.Errorf("%w after %v", ErrShutdownTimeout, timeout))
		case <-sctx.Done():
		}
	}()
	return s
}

// start begins the stop without Run's ctx ending (a fatal error).
func (s *shutdown) start() { s.once.Do(func() { close(s.begin) }) }

// expired returns the error of the passed deadline, or nil.
func (s *shutdown) expired() error {
	if s.ctx.Err() == nil {
		return nil
	}
	return context.Cause(s.ctx)
}

// call runs f with the shutdown's context and returns its error, or the
// deadline's error if the deadline passes first (f goes on in the
// background: it must not touch what the caller releases afterwards).
func (s *shutdown) call(f func(ctx context.Context) error) error {
	errc := make(chan error, 1)
	go func() { errc <- f(s.ctx) }()
	select {
	case err := <-errc:
		return err
	case <-s.ctx.Done():
		select {
		case err := <-errc:
			return err
		default:
			return s.expired()
		}
	}
}

// end stops the timing goroutine and waits for it; s's context is then
// canceled.
func (s *shutdown) end() {
	s.cancel(nil)
	<-s.done
}
