package runtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/duality-streams/duality/broker"
)

// workerSlot is what a worker of the app reads and commits with, kept across
// generations: the worker with index i of every generation uses slot i.
// Its consumers are reassigned by each worker (reader.release at the
// worker's end), and its committer, whose id is
// "<app id>-<instance id>-<i>", fences the committer of the same id of an
// older run of the instance (a zombie) when it is created. Under
// AtLeastOnce the committer is the broker's at-least-once one, which
// need not fence by id: a zombie's commits are fenced by the generation
// only.
type workerSlot struct {
	id string
	// rd reads the tasks' input; restore reads their changelogs.
	rd, restore *reader
	com         broker.Committer
	// fenced says a commit of com was fenced: the slot gets a new
	// committer before its next worker starts (on Kafka a fenced
	// transactional producer cannot go on).
	fenced bool
}

// workerSlot returns the app's slot i, creating it (and the ones before it)
// when needed, and replacing a fenced committer.
func (a *App) workerSlot(ctx context.Context, i int) (*workerSlot, error) {
	for len(a.slots) <= i {
		n := len(a.slots)
		s := &workerSlot{id: fmt.Sprintf("%s-%s-%d", a.appID, a.instanceID, n)}
		var err error
		if s.rd, err = newReader(a.b, a.cfg.FetchMaxRecords); err != nil {
			return nil, fmt.Errorf("worker %d: consumer: %w", n, err)
		}
		if s.restore, err = newReader(a.b, a.cfg.FetchMaxRecords); err != nil {
			return nil, errors.Join(fmt.Errorf("worker %d: restore consumer: %w", n, err), s.rd.close())
		}
		a.slots = append(a.slots, s)
		s.fenced = true // no committer yet
	}
	s := a.slots[i]
	if s.fenced {
		if s.com != nil {
			if err := s.com.Close(); err != nil {
				a.log.Debug("closing a fenced committer failed", "committer", s.id, "error", err)
			}
			s.com = nil
		}
		open := a.b.NewCommitter
		if a.cfg.Guarantee == AtLeastOnce {
			open = a.b.NewAtLeastOnceCommitter
		}
		com, err := open(ctx, s.id)
		if err != nil {
			return nil, fmt.Errorf("worker %d: committer %s: %w", i, s.id, err)
		}
		s.com, s.fenced = com, false
	}
	return s, nil
}

// closeSlots closes the consumers and committers of every slot.
func (a *App) closeSlots() error {
	var errs []error
	for _, s := range a.slots {
		errs = append(errs, s.rd.close(), s.restore.close())
		if s.com != nil {
			errs = append(errs, s.com.Close())
		}
	}
	a.slots = nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close consumers and committers: %w", err)
	}
	return nil
}

// instanceFile is the file in the state directory that keeps the
// instance id the directory's app instance was given.
const instanceFile = "DUALITY-INSTANCE-ID"

// resolveInstanceID sets a.instanceID: Config.InstanceID when set; else
// the id kept in the state directory (created there, random, on the
// first run) when StateDir is set; else a random id for this run.
// static says the id was given (Config.InstanceID), so that it names the
// group member statically. As in Kafka Streams, where group.instance.id
// is only ever configured, an id kept in the state directory names the
// committers but not the member: a static member does not leave the group
// when it stops, so a run on a new state directory would wait out the
// session timeout of the one before.
func (a *App) resolveInstanceID() (static bool, err error) {
	if a.cfg.InstanceIDSet {
		a.instanceID = a.cfg.InstanceID
		return true, nil
	}
	if !a.cfg.StateDirSet {
		a.instanceID = randomID()
		return false, nil
	}
	path := filepath.Join(a.cfg.StateDir, instanceFile)
	b, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if validInstanceID(id) == nil {
			a.instanceID = id
			return false, nil
		}
		a.log.Warn("instance id file holds no valid id: writing a new one", "path", path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("read instance id: %w", err)
	}
	id := randomID()
	if err := os.MkdirAll(a.cfg.StateDir, 0o755); err != nil {
		return false, fmt.Errorf("write instance id: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o644); err != nil {
		return false, fmt.Errorf("write instance id: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return false, fmt.Errorf("write instance id: %w", err)
	}
	a.instanceID = id
	return false, nil
}

// randomID returns 16 random hex digits.
func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// validInstanceID checks an instance id: it is part of the committers'
// ids and of the group member's identity, so it must be non-empty and
// made of ASCII letters, digits, '.', '_' and '-', at most 200 of them.
func validInstanceID(id string) error {
	if id == "" || len(id) > 200 {
		return fmt.Errorf("%w: instance id %q: must have 1 to 200 characters", ErrInvalidConfig, id)
	}
	for _, c := range id {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return fmt.Errorf("%w: instance id %q: only ASCII letters, digits, '.', '_' and '-' are allowed", ErrInvalidConfig, id)
		}
	}
	return nil
}
