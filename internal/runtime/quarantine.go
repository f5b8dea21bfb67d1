package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/topology"
	"github.com/duality-streams/duality/store"
)

// This file holds the healing of corrupt local state (Kafka Streams'
// task-corrupted handling). The changelogs are the source of truth and
// the Pebble state a copy of them, so state that fails to open, or a read
// or write of it that fails with corruption (store.ErrCorrupt), is moved
// aside (store.QuarantinePebble, kept for inspection) and rebuilt from the
// changelogs, and the app goes on.
//
// The stores of all tasks and the global stores share one Pebble database
// (see store.PebbleDB), and the database is the unit of integrity: a
// damaged sstable or manifest may hold any store's keys, and compactions
// of a damaged file fail whichever store reads it. So the whole database
// is quarantined and every task (and global store) of the instance
// restores, rather than one task's keys being dropped in a database that
// stays damaged. Corruption is rare and a restore is what a new instance
// does anyway; the hot path stays as it was (one database, one WAL, one
// block cache), with no check on the success path of a read or write.

// corruptState is the failure of a task whose local state is corrupt: a
// read or write of one of its stores, or of a global store it reads,
// failed with an error matching store.ErrCorrupt. It ends the unit of
// work that met it, whatever the processor did with the error (see
// task.itemFailure), and the app heals the state (App.heal).
type corruptState struct {
	task  topology.TaskID
	store string
	err   error
}

func (e *corruptState) Error() string {
	return fmt.Sprintf("task %s: local state of store %s is corrupt: %v", e.task, e.store, e.err)
}

// Unwrap returns the store's error, which matches store.ErrCorrupt.
func (e *corruptState) Unwrap() error { return e.err }

// noteCorrupt records err, an error of a read or write of the store
// named name, when it reports corrupt local state. The first one counts.
func (t *task) noteCorrupt(name string, err error) {
	if t.corrupt == nil && errors.Is(err, store.ErrCorrupt) {
		t.corrupt = &corruptState{task: t.id, store: name, err: err}
	}
}

// healable reports whether err, a worker's or the global stores' failure,
// comes from corrupt local state that rebuilding heals: the state is in
// Pebble (memory does not corrupt) and err matches store.ErrCorrupt.
func (a *App) healable(err error) bool {
	return a.cfg.StateDirSet && errors.Is(err, store.ErrCorrupt)
}

// stateOptions returns the options of the app's Pebble state.
func (a *App) stateOptions() []store.Option {
	return append([]store.Option{store.WithLogger(a.log)}, a.cfg.StateOptions...)
}

// openPebble opens the app's Pebble state; state that fails to open as
// corrupt is quarantined and opened empty.
func (a *App) openPebble() (*store.PebbleDB, error) {
	db, err := store.OpenPebble(a.cfg.StateDir, a.stateOptions()...)
	if !errors.Is(err, store.ErrCorrupt) {
		return db, err
	}
	if qerr := a.quarantine(err); qerr != nil {
		return nil, qerr
	}
	return store.OpenPebble(a.cfg.StateDir, a.stateOptions()...)
}

// quarantine moves the app's closed Pebble state aside, logs it at Error
// with cause (the corruption found) and counts it. The next open starts
// from an empty state, which the restores rebuild from the changelogs.
func (a *App) quarantine(cause error) error {
	path, err := store.QuarantinePebble(a.cfg.StateDir, a.cfg.StateOptions...)
	if err != nil {
		return fmt.Errorf("quarantine corrupt state (%v): %w", cause, err)
	}
	a.m.quarantines.Add(1)
	a.healCommits, a.healed = a.m.commits.Load(), true
	attrs := []any{slog.String("quarantine", path), slog.Any("error", cause)}
	if cs, ok := errors.AsType[*corruptState](cause); ok {
		attrs = append(attrs, slog.String("task", cs.task.String()), slog.String("store", cs.store))
	}
	a.log.Error("local state is corrupt: moved it aside, restoring every store from its changelog", attrs...)
	return nil
}

// heal rebuilds the corrupt local state that cause (a worker's or the
// global stores' failure, healable, or the database's report) reports,
// and resumes processing: it
// stops gen (nil: none yet), whose workers drop their uncommitted work
// instead of committing it, stops the global stores, closes the state and
// quarantines it, then opens an empty state, bootstraps the global stores
// and starts the tasks of gen's assignment again, which restore their
// stores from the changelogs and resume from the committed offsets. It
// returns the new generation (nil when gen was nil).
//
// State found corrupt again before any commit since the previous
// quarantine points at the disk or at memory rather than at a one-off
// damage: heal then returns cause instead of quarantining again.
func (a *App) heal(ctx context.Context, m broker.Membership, gen *generation, topics map[string]int32, cause error) (*generation, error) {
	var asg broker.Assignment
	if gen != nil {
		asg = gen.asg
		// The stopped workers' errors are their commits' and their
		// stores'; state errors among them are the corruption healed.
		err := gen.stop(stopReason{heal: true})
		if err != nil && !errors.Is(err, store.ErrCorrupt) {
			return nil, errors.Join(cause, err)
		}
		if _, ok := errors.AsType[*corruptState](cause); !ok && err != nil {
			// Pebble's report came first; the task that met the
			// corruption says which store.
			if _, ok := errors.AsType[*corruptState](err); ok {
				cause = err
			}
		}
	}
	if a.healed && a.m.commits.Load() == a.healCommits {
		return nil, fmt.Errorf("local state corrupt again before any commit since it was rebuilt (the previous copy is under %s): %w",
			filepath.Join(a.cfg.StateDir, store.QuarantineDir), cause)
	}
	if err := a.stopGlobals(); err != nil {
		a.log.Warn("closing the global stores of corrupt state failed", slog.Any("error", err))
	}
	a.iq.gate.close() // waits for the queries reading the state
	a.pebble.Store(nil)
	a.copies.reset(nil)
	if err := a.db.Close(); err != nil {
		a.log.Warn("closing corrupt state failed", slog.Any("error", err))
	}
	if err := a.quarantine(cause); err != nil {
		return nil, err
	}
	db, err := store.OpenPebble(a.cfg.StateDir, a.stateOptions()...)
	if err != nil {
		return nil, fmt.Errorf("open state after quarantine: %w", err)
	}
	a.db = db
	a.pebble.Store(db)
	a.copies.reset(db)
	a.iq.gate.reopen()
	if len(a.plan.globals) > 0 {
		if err := a.startGlobals(ctx, topics); err != nil {
			return nil, err
		}
	}
	if gen == nil {
		return nil, nil
	}
	return a.start(ctx, m, asg, topics)
}
