package runtime

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/topology"
)

// This file holds the placement of tasks on the members of the group, as
// Kafka Streams' high-availability assignor (HighAvailabilityTaskAssignor)
// does it: a stateful task goes to a member whose local copy of its
// state is caught up, so that moving it never pauses it for a long
// restore. When balance wants a task on a member that is not caught up,
// the task stays where it is caught up and the member gets a warm-up
// replica of it (a standby copy it follows from the changelog, see
// standby.go); once the copy has caught up, a probing rebalance moves
// the task there. Standby replicas (Config.NumStandbyReplicas) are placed
// by the same step.
//
// The unit of placement is the partition number: partition p of every
// source topic goes to the same member (co-partitioning), so the tasks
// of all sub-topologies at p move together. The group's broker calls the
// placement of the member that computes the assignment (broker.JoinOptions
// Balance: the Kafka group's leader, the embedded broker's earliest
// member) with every member's metadata (membermeta.go), in which each
// member advertises the positions of its local copies (taskPosition).
//
// # How far behind a copy is
//
// A copy's lag is measured against the most advanced copy any member
// reports for the task: the member that runs the task reports the
// position of the state it committed, which is the changelog's end as of
// its last commit. Kafka Streams' leader lists the changelogs' end
// offsets instead; doing so here would put broker calls inside the
// balance step, which the embedded broker runs under its coordinator's
// lock and kgo runs without a context on the group's loop, while the
// active member's report is that end up to the records of its commit in
// flight. The difference shows when no member runs the task (its owner
// left): Kafka Streams then finds no caught-up member when every copy is
// further behind than AcceptableRecoveryLag, and places the task for
// balance alone; here the most advanced copy counts as caught up, so the
// task goes where the least is left to restore. The member that ran a
// task in the previous generation is caught up whatever it reports, as
// Kafka Streams ranks a running active task first.

// placeMember is a member of the group as the placement sees it.
type placeMember struct {
	id string
	// owned are the partition numbers the member had in the previous
	// generation.
	owned []int32
	// copies are the positions of its local copies of stateful tasks.
	copies map[topology.TaskID]int64
}

// placeInput is what the placement of a generation depends on.
type placeInput struct {
	members []placeMember // sorted by id
	numbers int32         // partition numbers 0..numbers-1
	// stateful are the stateful tasks at each partition number (none for
	// a number whose tasks keep no state); len(stateful) <= numbers.
	stateful [][]topology.TaskID
	// acceptableLag, maxWarmups and standbys are
	// Config.AcceptableRecoveryLag, MaxWarmupReplicas and
	// NumStandbyReplicas.
	acceptableLag int64
	maxWarmups    int
	standbys      int
}

// placement is the placement of a generation: for each member (in the
// order of placeInput.members) the partition numbers it runs, keeps
// warm-up replicas of and keeps standby replicas of, each sorted.
type placement struct {
	active, warmups, standbys [][]int32
}

// place computes the placement of in. Its rules:
//
//   - Every partition number goes to exactly one member.
//   - Balance and stickiness: a target assignment gives every member
//     numbers/len(members) numbers, or one more; members keep the numbers
//     they owned up to that share (giving up first those another member
//     is caught up on), and the numbers left go to the members below
//     their share, a member caught up on the number first, then the
//     least loaded.
//   - A number whose target member is not caught up on its state, while
//     another member is, stays with a caught-up member (its previous
//     owner when there is one, else the least behind) and the target
//     member gets a warm-up replica of it (of the number's stateful
//     tasks), at most maxWarmups numbers in all;
//     beyond that the number stays with no warm-up. A number nobody is
//     caught up on goes to its target.
//   - Each stateful number gets min(standbys, members left) standby
//     replicas, on members that neither run it nor warm it up, the ones
//     with the most advanced copy first, then the least loaded, then the
//     members after the active one in id order.
//
// A member is caught up on a number when it owned it in the previous
// generation, or its copies of the number's stateful tasks are, summed,
// at most acceptableLag behind the most advanced copies reported; a
// number without stateful tasks has every member caught up on it.
func place(in placeInput) placement {
	n := len(in.members)
	pl := placement{active: make([][]int32, n), warmups: make([][]int32, n), standbys: make([][]int32, n)}
	if n == 0 || in.numbers <= 0 {
		return pl
	}
	stateful := func(p int32) []topology.TaskID {
		if int(p) < len(in.stateful) {
			return in.stateful[p]
		}
		return nil
	}
	// The previous owner of each number (the first by id, should two
	// members claim one).
	owner := make([]int, in.numbers)
	for p := range owner {
		owner[p] = -1
	}
	for i, m := range in.members {
		for _, p := range m.owned {
			if p >= 0 && p < in.numbers && owner[p] < 0 {
				owner[p] = i
			}
		}
	}
	// lag[i][p]: how far member i's copies of number p's tasks are behind
	// the most advanced ones.
	lag := make([][]int64, n)
	for i := range lag {
		lag[i] = make([]int64, in.numbers)
	}
	for p := range in.numbers {
		for _, t := range stateful(p) {
			var ref int64
			for _, m := range in.members {
				ref = max(ref, m.copies[t])
			}
			for i, m := range in.members {
				lag[i][p] = satAdd(lag[i][p], max(0, ref-m.copies[t]))
			}
		}
	}
	caughtUp := func(i int, p int32) bool { return owner[p] == i || lag[i][p] <= in.acceptableLag }
	othersCaughtUp := func(i int, p int32) bool {
		for j := range in.members {
			if j != i && caughtUp(j, p) && len(stateful(p)) > 0 {
				return true
			}
		}
		return false
	}

	// The balanced, sticky target.
	target := make([][]int32, n)
	targetOf := make([]int, in.numbers)
	for p := range targetOf {
		targetOf[p] = -1
	}
	base, extra := int(in.numbers)/n, int(in.numbers)%n
	limit := func() int {
		if extra > 0 {
			return base + 1
		}
		return base
	}
	for i, m := range in.members {
		// The numbers it owns (not those another member with a smaller
		// id claims too); those another member is caught up on go last:
		// a member over its share gives those up first.
		owned := slices.DeleteFunc(slices.Clone(m.owned), func(p int32) bool { return p < 0 || p >= in.numbers || owner[p] != i })
		slices.SortFunc(owned, func(x, y int32) int {
			return cmp.Or(cmp.Compare(b2i(othersCaughtUp(i, x)), b2i(othersCaughtUp(i, y))), cmp.Compare(x, y))
		})
		for _, p := range owned {
			if targetOf[p] >= 0 || len(target[i]) >= limit() {
				continue
			}
			target[i] = append(target[i], p)
			targetOf[p] = i
		}
		if len(target[i]) > base {
			extra--
		}
	}
	for p := range in.numbers {
		if targetOf[p] >= 0 {
			continue
		}
		best := -1
		for i := range in.members {
			if len(target[i]) >= limit() {
				continue
			}
			if best < 0 || cmp.Or(
				cmp.Compare(b2i(!caughtUp(i, p)), b2i(!caughtUp(best, p))),
				cmp.Compare(len(target[i]), len(target[best])),
				cmp.Compare(lag[i][p], lag[best][p]),
			) < 0 {
				best = i
			}
		}
		if best < 0 {
			best = 0 // unreachable: the shares add up to numbers
		}
		target[best] = append(target[best], p)
		targetOf[p] = best
		if len(target[best]) > base {
			extra--
		}
	}

	// Actives on caught-up members, warm-ups where balance wants them.
	activeOf := make([]int, in.numbers)
	warmupOf := make([]int, in.numbers)
	warmups := 0
	for p := range in.numbers {
		t := targetOf[p]
		activeOf[p], warmupOf[p] = t, -1
		if caughtUp(t, p) {
			continue
		}
		c := owner[p]
		if c < 0 {
			for i := range in.members {
				if caughtUp(i, p) && (c < 0 || lag[i][p] < lag[c][p]) {
					c = i
				}
			}
		}
		if c < 0 {
			continue // nobody is caught up: any member restores it all
		}
		activeOf[p] = c
		if warmups < in.maxWarmups {
			warmupOf[p] = t
			warmups++
		}
	}
	for p := range in.numbers {
		pl.active[activeOf[p]] = append(pl.active[activeOf[p]], p)
		if w := warmupOf[p]; w >= 0 {
			pl.warmups[w] = append(pl.warmups[w], p)
		}
	}

	// Standbys of the stateful numbers.
	if in.standbys > 0 {
		load := make([]int, n) // warm-ups and standbys per member
		for i := range in.members {
			load[i] = len(pl.warmups[i])
		}
		cands := make([]int, 0, n)
		for p := range in.numbers {
			if len(stateful(p)) == 0 {
				continue
			}
			cands = cands[:0]
			for i := range in.members {
				if i != activeOf[p] && i != warmupOf[p] {
					cands = append(cands, i)
				}
			}
			// On ties, the members after the active one (by id, wrapping
			// around) first: standbys spread as they did before
			// placement knew of copies.
			ring := func(i int) int { return (i - activeOf[p] + n) % n }
			slices.SortFunc(cands, func(x, y int) int {
				return cmp.Or(cmp.Compare(lag[x][p], lag[y][p]), cmp.Compare(load[x], load[y]), cmp.Compare(ring(x), ring(y)))
			})
			for _, i := range cands[:min(in.standbys, len(cands))] {
				pl.standbys[i] = append(pl.standbys[i], p)
				load[i]++
			}
		}
	}
	return pl
}

// satAdd returns x+y, or math.MaxInt64 when that overflows (x, y >= 0).
func satAdd(x, y int64) int64 {
	if x > math.MaxInt64-y {
		return math.MaxInt64
	}
	return x + y
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// The placement a Balance hands every member (broker.Assignment.Data):
// placementMagic, placementVersion, then for each member with warm-ups or
// standbys its id (uvarint length, bytes), its warm-up numbers and its
// standby numbers (each a uvarint count, then uvarints).
const (
	placementMagic   = 'P'
	placementVersion = 1
)

// errPlacement is matched by the errors of decodePlacement.
var errPlacement = errors.New("duality: malformed placement")

// replicas are the warm-up and standby partition numbers of one member.
type replicas struct {
	warmups, standbys []int32
}

// encodePlacement encodes the warm-ups and standbys of pl, whose members
// are ids.
func encodePlacement(ids []string, pl placement) []byte {
	b := []byte{placementMagic, placementVersion}
	nums := func(ps []int32) {
		b = binary.AppendUvarint(b, uint64(len(ps)))
		for _, p := range ps {
			b = binary.AppendUvarint(b, uint64(p))
		}
	}
	for i, id := range ids {
		if len(pl.warmups[i]) == 0 && len(pl.standbys[i]) == 0 {
			continue
		}
		b = binary.AppendUvarint(b, uint64(len(id)))
		b = append(b, id...)
		nums(pl.warmups[i])
		nums(pl.standbys[i])
	}
	return b
}

// decodePlacement decodes what encodePlacement encoded: the replicas of
// each member that has some. It never panics and does not retain b.
func decodePlacement(b []byte) (map[string]replicas, error) {
	if len(b) < 2 || b[0] != placementMagic || b[1] != placementVersion {
		return nil, fmt.Errorf("%w: no header of version %d", errPlacement, placementVersion)
	}
	b = b[2:]
	uv := func() (uint64, bool) {
		x, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return x, true
	}
	nums := func() ([]int32, bool) {
		c, ok := uv()
		if !ok || c > uint64(len(b)) {
			return nil, false
		}
		ps := make([]int32, 0, c)
		for range c {
			p, ok := uv()
			if !ok || p > math.MaxInt32 {
				return nil, false
			}
			ps = append(ps, int32(p))
		}
		return ps, true
	}
	out := map[string]replicas{}
	for len(b) > 0 {
		l, ok := uv()
		if !ok || l > uint64(len(b)) {
			return nil, fmt.Errorf("%w: bad member id", errPlacement)
		}
		id := string(b[:l])
		b = b[l:]
		w, ok1 := nums()
		s, ok2 := nums()
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("%w: member %q: bad partition numbers", errPlacement, id)
		}
		if _, dup := out[id]; dup {
			return nil, fmt.Errorf("%w: member %q given twice", errPlacement, id)
		}
		out[id] = replicas{warmups: w, standbys: s}
	}
	return out, nil
}

// balance is the app's broker.JoinOptions.Balance: it places the
// partition numbers on members (see place) with the copies each
// advertises, and hands every member its warm-ups and standbys. A
// member whose metadata does not decode is taken to have no copies.
func (a *App) balance(members []broker.BalanceMember, numbers int32) ([][]int32, []byte) {
	in := placeInput{
		members:       make([]placeMember, len(members)),
		numbers:       numbers,
		stateful:      a.plan.statefulTasks(a.topics, numbers),
		acceptableLag: a.cfg.AcceptableRecoveryLag,
		maxWarmups:    a.cfg.MaxWarmupReplicas,
		standbys:      a.cfg.NumStandbyReplicas,
	}
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = m.ID
		pm := placeMember{id: m.ID, owned: m.Owned, copies: map[topology.TaskID]int64{}}
		meta, err := decodeMemberMeta(m.UserData)
		if err != nil {
			a.log.Warn("member metadata unreadable: placing tasks as if it had no local state",
				slog.String("member", m.ID), slog.Any("error", err))
		}
		for _, c := range meta.Copies {
			pm.copies[c.Task] = c.Position
		}
		in.members[i] = pm
	}
	pl := place(in)
	var nw int
	for _, w := range pl.warmups {
		nw += len(w)
	}
	a.log.Debug("placed tasks", slog.Int("members", len(members)), slog.Int("numbers", int(numbers)), slog.Int("warmups", nw))
	return pl.active, encodePlacement(ids, pl)
}

// statefulTasks returns, for each partition number below numbers, the
// tasks at it that keep state: one per sub-topology with stores whose
// source topics have a partition p (topics gives the partition counts).
func (p *plan) statefulTasks(topics map[string]int32, numbers int32) [][]topology.TaskID {
	out := make([][]topology.TaskID, max(numbers, 0))
	for _, sp := range p.subs {
		if len(sp.stores) == 0 {
			continue
		}
		var n int32
		for _, src := range sp.sources {
			n = max(n, topics[src])
		}
		for part := range min(n, numbers) {
			out[part] = append(out[part], topology.TaskID{SubTopology: sp.st.ID, Partition: part})
		}
	}
	return out
}
