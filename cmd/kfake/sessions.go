package main

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// sessions removes the classic group members whose client is gone and
// that kfake would keep.
//
// kfake (the version in go.mod) starts a member's session timer when a
// heartbeat arrives and when it delivers the member a JoinGroup or
// SyncGroup response (its group.reply). A member whose connection closed
// while its JoinGroup waited for the other members (a process killed
// with -9 during a rebalance) gets no response, so no timer: the join
// still completes with it (its JoinGroup counts), and if another member
// leads, the group turns stable with the dead member holding its share
// of the partitions for good; in a later rebalance it holds the group
// until the rebalance timeout, which kfake restarts at every JoinGroup.
// Whether the response fails depends on a select between the closed
// connection and its buffered reply channel, so this happens about every
// other time a member dies in a JoinGroup that completes. Kafka
// schedules every member's session expiration when a join completes,
// delivered or not (GroupCoordinator.onCompleteJoin), so the dead member
// leaves the group one session timeout later.
//
// sessions does what that timer would: it reads the group requests
// (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) on the cluster's
// connections as kfake reads them (its listeners wrap kfake's), keeps
// for each member the connection of its last request and its session
// timeout, and when that connection has been closed for longer than the
// session timeout, with no request of the member since, it removes the
// member with a LeaveGroup (which kfake answers UNKNOWN_MEMBER_ID when
// it removed the member itself). A live client that reconnects sends its
// next heartbeat on the new connection well within its session timeout.
type sessions struct {
	logf func(format string, args ...any)

	mu struct {
		sync.Mutex
		members map[memberKey]*watchedMember
	}
}

// memberKey names a member of a group.
type memberKey struct{ group, id string }

// watchedMember is a member's session as sessions knows it.
type watchedMember struct {
	conn    *watchedConn  // the connection of its last group request
	session time.Duration // from its last JoinGroup; 0 until one is seen
	// gone is when conn closed, zero while it is open.
	gone time.Time
}

// newSessions returns sessions that report each removal with logf.
// Pass its listen to kfake.ListenFn, then call run.
func newSessions(logf func(format string, args ...any)) *sessions {
	s := &sessions{logf: logf}
	s.mu.members = map[memberKey]*watchedMember{}
	return s
}

// listen is net.Listen for kfake, with connections whose group requests
// s reads.
func (s *sessions) listen(network, address string) (net.Listener, error) {
	ln, err := net.Listen(network, address)
	if err != nil {
		return nil, err
	}
	return &watchedListener{Listener: ln, s: s}, nil
}

// request records a group request read on c.
func (s *sessions) request(c *watchedConn, req kmsg.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := func(group, id string) *watchedMember {
		k := memberKey{group, id}
		m := s.mu.members[k]
		if m == nil {
			m = &watchedMember{}
			s.mu.members[k] = m
		}
		m.conn, m.gone = c, time.Time{}
		return m
	}
	switch r := req.(type) {
	case *kmsg.JoinGroupRequest:
		if r.MemberID != "" { // a first join gets its id in the response, then joins with it
			seen(r.Group, r.MemberID).session = time.Duration(r.SessionTimeoutMillis) * time.Millisecond
		}
	case *kmsg.SyncGroupRequest:
		seen(r.Group, r.MemberID)
	case *kmsg.HeartbeatRequest:
		seen(r.Group, r.MemberID)
	case *kmsg.LeaveGroupRequest:
		delete(s.mu.members, memberKey{r.Group, r.MemberID})
		for _, m := range r.Members {
			delete(s.mu.members, memberKey{r.Group, m.MemberID})
		}
	}
}

// closed records that c closed.
func (s *sessions) closed(c *watchedConn) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.mu.members {
		if m.conn == c {
			m.gone = now
		}
	}
}

// sessionTick is how often run looks for members to remove.
const sessionTick = 50 * time.Millisecond

// run removes, through cl (a client of the cluster), the members gone
// for longer than their session timeout, every sessionTick until ctx
// ends.
func (s *sessions) run(ctx context.Context, cl *kgo.Client) {
	t := time.NewTicker(sessionTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, k := range s.expired(time.Now()) {
			s.remove(ctx, cl, k)
		}
	}
}

// expired returns the members gone for longer than their session
// timeout at now, and forgets them; it also forgets the members gone
// whose session timeout it never learnt (their first join was
// answered, then the connection closed), after a minute.
func (s *sessions) expired(now time.Time) []memberKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []memberKey
	for k, m := range s.mu.members {
		switch gone := now.Sub(m.gone); {
		case m.gone.IsZero():
		case m.session > 0 && gone > m.session:
			out = append(out, k)
			delete(s.mu.members, k)
		case m.session == 0 && gone > time.Minute:
			delete(s.mu.members, k)
		}
	}
	return out
}

// remove sends a LeaveGroup for the member k and logs the removal;
// kfake may have removed the member itself, which is no news.
func (s *sessions) remove(ctx context.Context, cl *kgo.Client, k memberKey) {
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Group = k.group
	lm := kmsg.NewLeaveGroupRequestMember()
	lm.MemberID = k.id
	lm.Reason = kmsg.StringPtr("its client is gone: session timeout (enforced by cmd/kfake)")
	req.Members = append(req.Members, lm)
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := req.RequestWith(rctx, cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err == nil && len(resp.Members) == 1 {
		err = kerr.ErrorForCode(resp.Members[0].ErrorCode)
	}
	switch {
	case err == nil:
		s.logf("group %s: removed member %s: its client has been gone for longer than its session timeout", k.group, k.id)
	case errors.Is(err, kerr.UnknownMemberID):
	case ctx.Err() == nil:
		s.logf("group %s: removing member %s, whose client is gone, failed: %v", k.group, k.id, err)
	}
}

// watchedListener is a listener of a broker of the cluster whose
// connections are watchedConns.
type watchedListener struct {
	net.Listener
	s *sessions
}

func (l *watchedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &watchedConn{Conn: c, s: l.s}, nil
}

// watchedConn is a connection to a broker of the cluster whose group
// requests sessions reads as kfake reads them. kfake reads a connection
// from one goroutine at a time.
type watchedConn struct {
	net.Conn
	s         *sessions
	closeOnce sync.Once

	// The request frame being read: its 4-byte size (nsize bytes of it
	// read so far), then size bytes, got of them read; body holds them
	// while the frame may be a group request.
	sizeBuf [4]byte
	nsize   int
	size    int
	got     int
	body    []byte
	skip    bool
}

// maxGroupRequest bounds the group requests read: a larger frame is not
// read (a SyncGroup of a huge group).
const maxGroupRequest = 4 << 20

func (c *watchedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.feed(p[:n])
	if err != nil {
		c.closed()
	}
	return n, err
}

func (c *watchedConn) Close() error {
	c.closed()
	return c.Conn.Close()
}

func (c *watchedConn) closed() { c.closeOnce.Do(func() { c.s.closed(c) }) }

// feed reads b, the next bytes of the request frames.
func (c *watchedConn) feed(b []byte) {
	for len(b) > 0 {
		if c.nsize < len(c.sizeBuf) {
			n := copy(c.sizeBuf[c.nsize:], b)
			c.nsize += n
			b = b[n:]
			if c.nsize == len(c.sizeBuf) {
				c.size, c.got = int(binary.BigEndian.Uint32(c.sizeBuf[:])), 0
				c.body, c.skip = c.body[:0], c.size > maxGroupRequest
				c.maybeDone()
			}
			continue
		}
		n := min(len(b), c.size-c.got)
		if !c.skip {
			c.body = append(c.body, b[:n]...)
			if len(c.body) >= 2 && !isGroupRequest(int16(binary.BigEndian.Uint16(c.body))) {
				c.body, c.skip = c.body[:0], true
			}
		}
		c.got += n
		b = b[n:]
		c.maybeDone()
	}
}

// maybeDone hands a whole group request to sessions and starts the next
// frame.
func (c *watchedConn) maybeDone() {
	if c.got < c.size {
		return
	}
	if !c.skip {
		if req := parseRequest(c.body); req != nil {
			c.s.request(c, req)
		}
	}
	c.nsize = 0
	if cap(c.body) > 64<<10 {
		c.body = nil
	}
}

// isGroupRequest reports whether key is one of the requests sessions
// reads.
func isGroupRequest(key int16) bool {
	switch kmsg.Key(key) {
	case kmsg.JoinGroup, kmsg.SyncGroup, kmsg.Heartbeat, kmsg.LeaveGroup:
		return true
	}
	return false
}

// parseRequest parses a request frame (without its size) as kfake does,
// or returns nil.
func parseRequest(frame []byte) kmsg.Request {
	r := kbin.Reader{Src: frame}
	key, version := r.Int16(), r.Int16()
	r.Int32() // correlation id
	r.NullableString()
	req := kmsg.RequestForKey(key)
	if req == nil || !r.Ok() {
		return nil
	}
	req.SetVersion(version)
	if req.IsFlexible() {
		kmsg.SkipTags(&r)
	}
	if err := req.ReadFrom(r.Src); err != nil {
		return nil
	}
	return req
}
