package runtime

import (
	"context"
	"sync"
	"sync/atomic"
)

// mailbox carries what the app's loop posts to a goroutine of a
// generation while it runs: to a worker, a cooperative rebalance's step
// (see change) and, in a bounded run, the controller's end advance (see
// advanceReq); to the replica run, its updates (see replicaUpdate). Each
// post interrupts the goroutine's fetch in progress (see fetchContext)
// and signals notify, so that the goroutine sees it at once, whether it
// fetches or waits for a post. Each kind has one slot, which a post
// replaces (the replica run's updates merge, see standbyRun.post) and a
// take empties.
type mailbox struct {
	// changing says a change is posted: the worker stops processing
	// its buffered records to apply it first.
	changing atomic.Bool
	// notify (buffered) is signaled by every post, for a goroutine that
	// waits for one; init makes it.
	notify chan struct{}
	mu     struct {
		sync.Mutex
		req    *advanceReq
		change *change
		update *replicaUpdate
		// cancel cancels the fetch in progress (nil: none).
		cancel context.CancelFunc
	}
}

// init makes m ready for use.
func (m *mailbox) init() { m.notify = make(chan struct{}, 1) }

// postedLocked interrupts the fetch in progress and signals notify, after
// a post; m.mu must be held.
func (m *mailbox) postedLocked() {
	if m.mu.cancel != nil {
		m.mu.cancel()
	}
	select {
	case m.notify <- struct{}{}:
	default:
	}
}

// postChange posts c, a rebalance, to the worker.
func (m *mailbox) postChange(c *change) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mu.change = c
	m.changing.Store(true)
	m.postedLocked()
}

// takeChange returns the change posted, if any, and empties its slot.
func (m *mailbox) takeChange() *change {
	if !m.changing.Load() {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.mu.change
	m.mu.change = nil
	m.changing.Store(false)
	return c
}

// postAdvance posts r, the controller's end advance, to the worker.
func (m *mailbox) postAdvance(r *advanceReq) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mu.req = r
	m.postedLocked()
}

// takeAdvance returns the advance posted, if any, and empties its slot.
func (m *mailbox) takeAdvance() *advanceReq { return take(m, &m.mu.req) }

// takeUpdate returns the replica update posted (standbyRun.post), if
// any, and empties its slot.
func (m *mailbox) takeUpdate() *replicaUpdate { return take(m, &m.mu.update) }

// take returns what slot, one of m's, holds and empties it.
func take[T any](m *mailbox, slot **T) *T {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := *slot
	*slot = nil
	return v
}

// fetchContext returns the context of the goroutine's next fetch, which
// every post cancels, and the function to call when the fetch returns;
// ok is false when something is posted already.
func (m *mailbox) fetchContext(parent context.Context) (ctx context.Context, done func(), ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.req != nil || m.mu.change != nil || m.mu.update != nil {
		return nil, nil, false
	}
	ctx, cancel := context.WithCancel(parent)
	m.mu.cancel = cancel
	return ctx, func() {
		m.mu.Lock()
		m.mu.cancel = nil
		m.mu.Unlock()
		cancel()
	}, true
}
