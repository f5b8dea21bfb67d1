package runtime

import (
	"context"
	"log/slog"
	"time"

	"github.com/duality-streams/duality/broker"
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

// fetchRetrying fetches reqs, retrying retryable errors with a backoff
// (each logged at Debug on log with msg) until ctx ends. The worker's
// fetch does not use it: it retries through its loop, which meanwhile
// commits, punctuates and stops waiting for a stalled partition.
func (a *App) fetchRetrying(ctx context.Context, reqs []broker.FetchRequest, opts broker.FetchOptions, log *slog.Logger, msg string) ([]broker.Record, error) {
	var bo backoff
	for {
		recs, err := a.b.Fetch(ctx, reqs, opts)
		if err == nil || !broker.IsRetryable(err) || ctx.Err() != nil {
			return recs, err
		}
		log.Debug(msg, slog.Any("error", err))
		bo.wait(ctx)
	}
}
