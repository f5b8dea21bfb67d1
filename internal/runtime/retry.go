package runtime

import (
	"context"
	"time"
)

// Bounds of backoff's waits.
const (
	minBackoff = 10 * time.Millisecond
	maxBackoff = time.Second
)

// backoff paces the retries of a broker call that failed with a retryable
// error (broker.IsRetryable): it waits 10 ms after the first failure,
// twice as long after each next one, at most a second. Its zero value is
// ready to use.
type backoff struct{ next time.Duration }

// wait waits before the next retry, or until ctx ends.
func (b *backoff) wait(ctx context.Context) {
	if b.next == 0 {
		b.next = minBackoff
	}
	_ = sleep(ctx, b.next) // ctx's end is the caller's to notice
	b.next = min(2*b.next, maxBackoff)
}

// reset starts the waits over, after a call succeeded.
func (b *backoff) reset() { b.next = 0 }
