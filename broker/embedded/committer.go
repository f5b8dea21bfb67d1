package embedded

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/duality-streams/duality/broker"
)

// committerID is the state the committers of one id share: the newest
// one's epoch. Its mutex is held across a commit's check and write, so
// that once NewCommitter returned, no older committer's commit lands.
type committerID struct {
	mu    sync.Mutex
	epoch uint64
}

// NewCommitter returns the broker.Committer with the given id; see
// broker.Broker. Its commits are the broker's atomic commits (Commit
// documents them), fenced by the group generation as they are, and by
// the id: opening a committer with the same id fences this one, whose
// commits then fail with an error matching broker.ErrFenced, and waits
// for its commit in flight. Ids live in memory, for the broker's
// lifetime. An empty id gives an error matching broker.ErrInvalidConfig.
func (b *Broker) NewCommitter(ctx context.Context, id string) (broker.Committer, error) {
	if err := b.enter(); err != nil {
		return nil, err
	}
	defer b.leave()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if id == "" {
		return nil, fmt.Errorf("%w: empty committer id", broker.ErrInvalidConfig)
	}
	s := b.groups.committerID(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.epoch++
	return &committer{b: b, id: id, s: s, epoch: s.epoch}, nil
}

// NewAtLeastOnceCommitter returns the committer NewCommitter returns: its
// commits stay atomic, so an app asking for at-least-once gets
// exactly-once on the embedded broker, at the same cost. Splitting a
// commit would save nothing here: records and offsets go into one Pebble
// batch behind one write-ahead-log sync either way, and the check of the
// committer's id is an uncontended mutex. See broker.Broker.
func (b *Broker) NewAtLeastOnceCommitter(ctx context.Context, id string) (broker.Committer, error) {
	return b.NewCommitter(ctx, id)
}

// committer is a broker.Committer over Broker.Commit.
type committer struct {
	b      *Broker
	id     string
	s      *committerID
	epoch  uint64
	closed atomic.Bool // Close may race with a commit its owner abandoned
}

// Commit commits req atomically; see broker.Committer and Broker.Commit.
func (c *committer) Commit(ctx context.Context, req broker.CommitRequest) error {
	if c.closed.Load() {
		return broker.ErrClosed
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if c.s.epoch != c.epoch {
		return fmt.Errorf("%w: committer %q was opened again", broker.ErrFenced, c.id)
	}
	return c.b.Commit(ctx, req)
}

// Close releases the committer; later Commits return broker.ErrClosed.
func (c *committer) Close() error {
	c.closed.Store(true)
	return nil
}
