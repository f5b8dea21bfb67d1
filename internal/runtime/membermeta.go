package runtime

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"strconv"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/topology"
)

// This file holds the metadata an instance shares with the other members
// of its group: the runtime puts it in broker.JoinOptions.UserData when it
// joins, and every member's broker.Assignment lists every member's
// (Assignment.Members), so each instance knows, per assignment, what the
// others advertise.
//
// # Encoding
//
// UserData is empty when an instance advertises nothing. Otherwise it is
// a header of two bytes, memberMetaMagic and the format version
// (memberMetaVersion, 1), then fields, each
//
//	tag    uvarint (1 and up; 0 is invalid)
//	length uvarint
//	value  length bytes
//
// Tags:
//
//	1  endpoint: the URL of Config.Endpoint (UTF-8)
//	2  copies: the positions of the instance's local copies of stateful
//	   tasks (see taskPosition), each three uvarints: sub-topology,
//	   partition, position; sorted by partition, then sub-topology
//
// A decoder skips the fields whose tags it does not know, so a field is
// added with a new tag and no new version: an older instance in the same
// group ignores it, a newer one reads it as absent from an older
// instance. A tag appears at most once. The version changes only for a
// layout older decoders cannot skip through; a decoder refuses a version
// it does not know (the member is then taken to advertise nothing, see
// App.owners). Fields are encoded in tag order.

// memberMetaMagic and memberMetaVersion start an encoded memberMeta.
const (
	memberMetaMagic   = 'D'
	memberMetaVersion = 1
)

// Tags of the fields of an encoded memberMeta.
const (
	tagEndpoint = 1
	tagCopies   = 2
)

// maxCopies bounds the copies an instance advertises (at most 30 bytes
// each, so that the encoded metadata stays below broker.MaxUserData);
// the ones beyond it are left out, and their tasks placed as if the
// instance had no copy.
const maxCopies = 2000

// maxEndpointLen bounds Config.Endpoint, so that the encoded metadata
// stays far below broker.MaxUserData.
const maxEndpointLen = 2048

// errMemberMeta is matched by the errors of decodeMemberMeta.
var errMemberMeta = errors.New("duality: malformed member metadata")

// memberMeta is what an instance advertises to the other members of its
// group. Its zero value advertises nothing.
type memberMeta struct {
	// Endpoint is the instance's Config.Endpoint, empty when it has none.
	Endpoint string
	// Copies are the positions of the instance's local copies of
	// stateful tasks, for the placement of tasks (placement.go).
	Copies []taskPosition
}

// taskPosition is how far an instance's local copy of a stateful task's
// stores goes: the sum, over the task's stores, of the changelog offset
// from which the copy would catch up (the offset after the one the store
// recorded; 0 for a store without one), as Kafka Streams' subscriptions
// carry task offset sums.
type taskPosition struct {
	Task     topology.TaskID
	Position int64
}

// encode returns m in the encoding above: nil for the zero memberMeta.
func (m memberMeta) encode() []byte {
	if m.Endpoint == "" && len(m.Copies) == 0 {
		return nil
	}
	b := []byte{memberMetaMagic, memberMetaVersion}
	field := func(tag uint64, v []byte) {
		if len(v) == 0 {
			return
		}
		b = binary.AppendUvarint(b, tag)
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	field(tagEndpoint, []byte(m.Endpoint))
	var copies []byte
	for _, c := range m.Copies[:min(len(m.Copies), maxCopies)] {
		copies = binary.AppendUvarint(copies, uint64(c.Task.SubTopology))
		copies = binary.AppendUvarint(copies, uint64(c.Task.Partition))
		copies = binary.AppendUvarint(copies, uint64(c.Position))
	}
	field(tagCopies, copies)
	return b
}

// decodeCopies decodes the value of a copies field.
func decodeCopies(v []byte) ([]taskPosition, error) {
	var copies []taskPosition
	next := func(limit uint64) (uint64, bool) {
		x, n := binary.Uvarint(v)
		if n <= 0 || x > limit {
			return 0, false
		}
		v = v[n:]
		return x, true
	}
	for len(v) > 0 {
		sub, ok1 := next(math.MaxInt32)
		p, ok2 := next(math.MaxInt32)
		pos, ok3 := next(math.MaxInt64)
		if !ok1 || !ok2 || !ok3 {
			return nil, fmt.Errorf("%w: copies: bad entry", errMemberMeta)
		}
		if len(copies) >= maxCopies {
			return nil, fmt.Errorf("%w: copies: more than %d", errMemberMeta, maxCopies)
		}
		copies = append(copies, taskPosition{Task: topology.TaskID{SubTopology: int(sub), Partition: int32(p)}, Position: int64(pos)})
	}
	return copies, nil
}

// decodeMemberMeta decodes the UserData of a member: the zero memberMeta
// for empty data, an error matching errMemberMeta for data that is not in
// the encoding above or has a version this decoder does not know. It never
// panics and does not retain b.
func decodeMemberMeta(b []byte) (memberMeta, error) {
	var m memberMeta
	if len(b) == 0 {
		return m, nil
	}
	if len(b) < 2 || b[0] != memberMetaMagic {
		return m, fmt.Errorf("%w: no header", errMemberMeta)
	}
	if b[1] != memberMetaVersion {
		return m, fmt.Errorf("%w: version %d (this instance reads version %d)", errMemberMeta, b[1], memberMetaVersion)
	}
	b = b[2:]
	var seen []uint64
	for len(b) > 0 {
		tag, n := binary.Uvarint(b)
		if n <= 0 || tag == 0 {
			return memberMeta{}, fmt.Errorf("%w: bad field tag", errMemberMeta)
		}
		b = b[n:]
		l, n := binary.Uvarint(b)
		if n <= 0 || l > uint64(len(b)-n) {
			return memberMeta{}, fmt.Errorf("%w: field %d: bad length", errMemberMeta, tag)
		}
		v := b[n : n+int(l)]
		b = b[n+int(l):]
		for _, s := range seen {
			if s == tag {
				return memberMeta{}, fmt.Errorf("%w: field %d given twice", errMemberMeta, tag)
			}
		}
		seen = append(seen, tag)
		switch tag {
		case tagEndpoint:
			m.Endpoint = string(v)
		case tagCopies:
			copies, err := decodeCopies(v)
			if err != nil {
				return memberMeta{}, err
			}
			m.Copies = copies
		}
	}
	return m, nil
}

// validEndpoint checks Config.Endpoint: an absolute http or https URL with
// a host, without user information, query or fragment, of at most
// maxEndpointLen bytes. The error matches ErrInvalidConfig.
func validEndpoint(s string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w: Endpoint(%q): %s", ErrInvalidConfig, s, why)
	}
	if len(s) > maxEndpointLen {
		return fmt.Errorf("%w: Endpoint: longer than %d bytes", ErrInvalidConfig, maxEndpointLen)
	}
	u, err := url.Parse(s)
	switch {
	case s == "":
		return bad(`an endpoint is required (leave the option out to advertise none)`)
	case err != nil:
		return bad(fmt.Sprintf("not a URL: %v", err))
	case u.Scheme != "http" && u.Scheme != "https":
		return bad(`want an http or https URL such as "http://10.0.0.7:8080"`)
	case u.Host == "" || u.Hostname() == "":
		return bad("no host")
	case u.User != nil:
		return bad("user information is not allowed: every member of the group sees the endpoint")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return bad("a query or fragment is not allowed")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return bad(fmt.Sprintf("port %q out of range", p))
		}
	}
	return nil
}

// owners returns, for each store of a's sub-topologies, the endpoint
// advertised by the member that owns each of its partitions in asg: the
// member assigned partition p of a source topic of the store's
// sub-topology owns partition p of the store. Partitions whose owner
// advertises no endpoint, and unassigned ones, are absent. A member whose
// metadata does not decode (a newer instance with an incompatible
// version) is logged at Warn and taken to advertise nothing.
func (a *App) owners(asg broker.Assignment) map[string]map[int32]string {
	owners := map[string]map[int32]string{}
	for _, m := range asg.Members {
		meta, err := decodeMemberMeta(m.UserData)
		if err != nil {
			a.log.Warn("member metadata unreadable: its endpoint is unknown", slog.String("member", m.ID), slog.Any("error", err))
			continue
		}
		if meta.Endpoint == "" {
			continue
		}
		for _, tp := range m.Partitions {
			sp := a.plan.bySource[tp.Topic]
			if sp == nil {
				continue
			}
			for _, st := range sp.stores {
				if owners[st.name] == nil {
					owners[st.name] = map[int32]string{}
				}
				owners[st.name][tp.Partition] = meta.Endpoint
			}
		}
	}
	return owners
}
