package runtime

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/duality-streams/duality/store"
)

// Metrics is a snapshot of an app's counters since New
// (duality.Metrics is this type). The counters cover the whole app (all
// workers, all generations).
type Metrics struct {
	// RecordsProcessed counts input records processed without error,
	// including those whose output a later failure or fencing discarded.
	RecordsProcessed uint64
	// RecordsSkipped counts input records skipped under duality.SkipOnError.
	RecordsSkipped uint64
	// ItemsSkipped counts the items that steps emit as units of their own
	// (a change held by table.EmitPerCommit, an update held by
	// window.CacheUpdates, a window's final result, a join's unmatched
	// record) skipped under duality.SkipOnError because a step downstream
	// failed on them. The record, punctuation or flush that emitted them
	// went on: it is counted as processed, not skipped.
	ItemsSkipped uint64
	// RecordsDeadLettered counts input records sent to the dead-letter
	// topic under duality.DeadLetterOnError (not counted as processed or
	// skipped). Like RecordsProcessed it counts attempts: a record
	// processed again after a failure or restart counts again (its
	// dead letter is committed once under exactly-once).
	RecordsDeadLettered uint64
	// RecordsProduced counts output records appended by successful commits,
	// including the changelog records of state stores.
	RecordsProduced uint64
	// ChangelogRecords counts the changelog records of state stores among
	// RecordsProduced. With the record cache on (see
	// duality.CacheMaxBytes) a commit logs one record per key written
	// since the previous commit; without, one per write.
	ChangelogRecords uint64
	// CacheFlushes counts the commits a worker made early because the
	// record caches of its tasks' stores held more than its share of
	// duality.CacheMaxBytes.
	CacheFlushes uint64
	// EnforcedProcessing counts the records a task processed while one
	// of its partitions had records not fetched yet, after waiting
	// duality.MaxTaskIdle for them (possibly out of timestamp order).
	EnforcedProcessing uint64
	// Punctuations counts the punctuator calls that succeeded (see
	// stream.ProcessorContext.Schedule).
	Punctuations uint64
	// LateRecordsDropped counts the records that windowed steps (package
	// window's aggregations and stream-stream joins) dropped as late:
	// their windows had closed, stream time having passed them by more
	// than the grace period. Like window.Stats it counts attempts: a
	// record processed again after a failure or restart counts again.
	LateRecordsDropped uint64
	// RepartitionPurges counts the partitions of internal topics
	// (repartition, foreign-key subscription and response topics) purged
	// up to their committed offset (see duality.RepartitionPurgeInterval):
	// one per successful DeleteRecords call.
	RepartitionPurges uint64
	// Commits counts successful broker commits.
	Commits uint64
	// LastCommitDuration is how long the latest successful commit took.
	LastCommitDuration time.Duration
	// Tasks is the number of tasks of the current assignment (0 when the
	// app is not running).
	Tasks int
	// TasksOpened counts the times a task was opened: its stores
	// restored from their changelogs as far as the local state lags
	// (see duality.OnRestore), its processor created, its input fetched
	// from the committed offsets. Every assignment opens the tasks that
	// move to this instance; a cooperative rebalance (the next
	// generation's assignment) keeps the tasks that stay running, so it
	// opens no other. After a skipped generation, a lost assignment, a
	// commit fenced by the rebalance or in a bounded run, the tasks
	// kept are opened again too.
	TasksOpened uint64
	// Assignments counts the group assignments the app has received.
	Assignments uint64
	// StateQuarantines counts the times the app found its local state
	// (duality.StateDir) corrupt, when opening it or on a read or write
	// of a store, moved it aside into the state directory's quarantine
	// directory and rebuilt every store from its changelog.
	StateQuarantines uint64
	// StandbyTasks is the number of standby tasks of the current
	// assignment (see duality.NumStandbyReplicas): tasks active on other
	// instances whose stores this one keeps warm copies of.
	StandbyTasks int
	// StandbyRecords counts the changelog records the standby tasks
	// applied to their copies.
	StandbyRecords uint64
	// StandbyLag is how many changelog offsets the standby tasks' copies
	// are behind the changelogs' ends, as last known: the end a fetch
	// found, or a listing, made at most every 10 s while a copy is behind
	// (0 without standby tasks). It bounds what a restore reads when a
	// task moves here.
	StandbyLag int64
	// WarmupTasks is the number of warm-up replicas of the current
	// assignment (see duality.MaxWarmupReplicas): tasks that balance
	// wants to move here, whose stores this instance copies from their
	// changelogs, as a standby does, until they have caught up and a
	// probing rebalance moves them. StandbyRecords and StandbyLag count
	// them too.
	WarmupTasks int
	// ProbingRebalances counts the rebalances this instance asked for to
	// move the tasks it warmed up (see duality.ProbingRebalanceInterval).
	ProbingRebalances uint64
	// ProcessLatency is the distribution of the time, in nanoseconds,
	// the steps took for one input record, over every task (see
	// TaskMetrics.ProcessLatency: one record in ProcessLatencySample is
	// measured).
	ProcessLatency Histogram
	// CommitLatency is the distribution of the durations, in
	// nanoseconds, of the successful commits, and CommitRecords that of
	// the records they appended (output and changelog).
	CommitLatency, CommitRecords Histogram
}

type metrics struct {
	processed, skipped, produced, commits, rebalances atomic.Uint64
	changelog, cacheFlushes, enforced, punctuations   atomic.Uint64
	late, purges, itemsSkipped, quarantines           atomic.Uint64
	deadLettered                                      atomic.Uint64
	standbyRecords, probes                            atomic.Uint64
	lastCommit                                        atomic.Int64
	tasks, standbyTasks, standbyLag, warmupTasks      atomic.Int64
	tasksOpened                                       atomic.Uint64
}

// Metrics returns a snapshot of the app's counters. It is cheap and safe
// for concurrent use. Workers publish their record counts after every
// fetched batch, so the counts lag processing by at most one batch.
func (a *App) Metrics() Metrics {
	m := a.counters()
	m.ProcessLatency = a.obs.processLatency()
	a.obs.commitLatency.load(&m.CommitLatency)
	a.obs.commitRecords.load(&m.CommitRecords)
	return m
}

// counters returns the flat counters of Metrics.
func (a *App) counters() Metrics {
	return Metrics{
		RecordsProcessed:   a.m.processed.Load(),
		RecordsSkipped:     a.m.skipped.Load(),
		ItemsSkipped:       a.m.itemsSkipped.Load(),
		RecordsProduced:    a.m.produced.Load(),
		ChangelogRecords:   a.m.changelog.Load(),
		CacheFlushes:       a.m.cacheFlushes.Load(),
		EnforcedProcessing: a.m.enforced.Load(),
		Punctuations:       a.m.punctuations.Load(),
		LateRecordsDropped: a.m.late.Load(),
		RepartitionPurges:  a.m.purges.Load(),
		Commits:            a.m.commits.Load(),
		LastCommitDuration: time.Duration(a.m.lastCommit.Load()),
		Tasks:              int(a.m.tasks.Load()),
		TasksOpened:        a.m.tasksOpened.Load(),
		Assignments:        a.m.rebalances.Load(),
		StateQuarantines:   a.m.quarantines.Load(),
		StandbyTasks:       int(a.m.standbyTasks.Load()),
		StandbyRecords:     a.m.standbyRecords.Load(),
		StandbyLag:         a.m.standbyLag.Load(),
		WarmupTasks:        int(a.m.warmupTasks.Load()),
		ProbingRebalances:  a.m.probes.Load(),

		RecordsDeadLettered: a.m.deadLettered.Load(),
	}
}

// StateMetrics returns the metrics of the app's Pebble state database
// (Config.StateDir) while Run runs: its stores, its size on disk, and what
// Pebble holds in memory (memtables, block cache) and in its write-ahead
// log. Without a StateDir, before Run opens the database and after it
// closes it (also while a corrupt state is rebuilt), it returns an error
// matching ErrStoreNotReady. It is safe for concurrent use; it takes
// Pebble's lock briefly.
func (a *App) StateMetrics() (store.Metrics, error) {
	notOpen := func() (store.Metrics, error) {
		return store.Metrics{}, fmt.Errorf("%w: state metrics: no Pebble state open (StateDir not set, or the app not running)", ErrStoreNotReady)
	}
	if !a.iq.gate.enter() {
		return notOpen()
	}
	defer a.iq.gate.leave()
	db := a.pebble.Load()
	if db == nil {
		return notOpen()
	}
	return db.Metrics()
}

func (w *worker) flushMetrics() {
	if w.processed > 0 {
		w.app.m.processed.Add(w.processed)
		w.processed = 0
	}
	if w.skipped > 0 {
		w.app.m.skipped.Add(w.skipped)
		w.skipped = 0
	}
	if w.itemsSkipped > 0 {
		w.app.m.itemsSkipped.Add(w.itemsSkipped)
		w.itemsSkipped = 0
	}
	if w.deadLettered > 0 {
		w.app.m.deadLettered.Add(w.deadLettered)
		w.deadLettered = 0
	}
	if w.enforced > 0 {
		w.app.m.enforced.Add(w.enforced)
		w.enforced = 0
	}
	if w.punctuated > 0 {
		w.app.m.punctuations.Add(w.punctuated)
		w.punctuated = 0
	}
	for _, t := range w.tasks {
		t.publish()
	}
}
