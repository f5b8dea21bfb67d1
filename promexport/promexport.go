package promexport

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/duality-streams/duality"
)

// Collector is a prometheus.Collector over the metrics of one app: each
// Collect takes a snapshot ([duality.App.Metrics] and
// [duality.App.TaskMetrics]) and turns it into constant metrics, so a
// scrape costs what the snapshot costs and the app's hot path nothing.
// Every metric has the label app (the app id); see the package
// documentation for the names. A Collector is safe for concurrent use.
type Collector struct {
	app *duality.App
	id  string
}

// New returns a Collector of app's metrics. Register it with a
// prometheus.Registerer; registering the collectors of two apps with the
// same id in one registry fails (their series would collide).
func New(app *duality.App) *Collector {
	return &Collector{app: app, id: app.ID()}
}

// desc is one metric the collector exports, and its type (unused for
// histograms).
type desc struct {
	d *prometheus.Desc
	t prometheus.ValueType
}

func newDesc(name, help string, t prometheus.ValueType, labels ...string) desc {
	return desc{d: prometheus.NewDesc(name, help, append([]string{"app"}, labels...), nil), t: t}
}

var (
	counter = prometheus.CounterValue
	gauge   = prometheus.GaugeValue

	// App-wide.
	recordsProcessed   = newDesc("duality_records_processed_total", "Input records processed without error.", counter)
	recordsSkipped     = newDesc("duality_records_skipped_total", "Input records skipped after a processing error (SkipOnError).", counter)
	recordsDeadLetter  = newDesc("duality_records_dead_lettered_total", "Input records sent to the dead-letter topic after a processing error (DeadLetterOnError).", counter)
	itemsSkipped       = newDesc("duality_items_skipped_total", "Items emitted by steps on their own that failed and were skipped (SkipOnError).", counter)
	recordsProduced    = newDesc("duality_records_produced_total", "Records appended by successful commits, changelog records included.", counter)
	changelogRecords   = newDesc("duality_changelog_records_total", "Changelog records appended by successful commits.", counter)
	commits            = newDesc("duality_commits_total", "Successful commits.", counter)
	cacheFlushes       = newDesc("duality_cache_flushes_total", "Commits made early because the record caches were full.", counter)
	enforcedProcessing = newDesc("duality_enforced_processing_total", "Records processed after waiting MaxTaskIdle for a lagging partition.", counter)
	punctuations       = newDesc("duality_punctuations_total", "Punctuator calls that succeeded.", counter)
	lateDropped        = newDesc("duality_late_records_dropped_total", "Records windowed steps dropped as late.", counter)
	purges             = newDesc("duality_repartition_purges_total", "Purges of internal topics' partitions up to their committed offset.", counter)
	tasks              = newDesc("duality_tasks", "Tasks of the current assignment.", gauge)
	tasksOpened        = newDesc("duality_tasks_opened_total", "Times a task was opened (restored, created, started).", counter)
	assignments        = newDesc("duality_assignments_total", "Group assignments received.", counter)
	quarantines        = newDesc("duality_state_quarantines_total", "Times the local state was found corrupt and rebuilt.", counter)
	standbyTasks       = newDesc("duality_standby_tasks", "Standby tasks of the current assignment.", gauge)
	warmupTasks        = newDesc("duality_warmup_tasks", "Warm-up replicas of the current assignment.", gauge)
	standbyRecords     = newDesc("duality_standby_records_total", "Changelog records applied to standby and warm-up copies.", counter)
	standbyLag         = newDesc("duality_standby_lag", "Changelog offsets the standby and warm-up copies are behind.", gauge)
	probes             = newDesc("duality_probing_rebalances_total", "Rebalances asked for to move warmed-up tasks.", counter)
	commitLatency      = newDesc("duality_commit_duration_seconds", "Durations of the successful commits.", prometheus.UntypedValue)
	commitRecords      = newDesc("duality_commit_records", "Records appended by each successful commit.", prometheus.UntypedValue)

	// Per task.
	taskActive    = newDesc("duality_task_active", "1 when the task runs on this instance now, 0 when it moved away.", gauge, "task")
	taskProcessed = newDesc("duality_task_records_processed_total", "Input records the task processed without error.", counter, "task")
	taskSkipped   = newDesc("duality_task_records_skipped_total", "Input records and punctuations of the task skipped after an error.", counter, "task")
	taskProduced  = newDesc("duality_task_records_produced_total", "Output records of the task appended by successful commits (changelog records not included).", counter, "task")
	taskDead      = newDesc("duality_task_records_dead_lettered_total", "Input records of the task sent to the dead-letter topic after a processing error.", counter, "task")
	taskLate      = newDesc("duality_task_late_records_dropped_total", "Records the task's windowed steps dropped as late.", counter, "task")
	taskPuncts    = newDesc("duality_task_punctuations_total", "Punctuator calls of the task that succeeded.", counter, "task")
	taskLatency   = newDesc("duality_task_process_latency_seconds", "Time the task's steps took for one input record (one record in 16 measured).", prometheus.UntypedValue, "task")

	// Per input partition of a task.
	partPosition  = newDesc("duality_partition_position", "Offset of the next record the task processes.", gauge, "task", "topic", "partition")
	partCommitted = newDesc("duality_partition_committed_offset", "Offset this instance last committed (absent before its first commit).", gauge, "task", "topic", "partition")
	partEnd       = newDesc("duality_partition_end_offset", "End offset of the partition as last known (absent while unknown).", gauge, "task", "topic", "partition")
	partLag       = newDesc("duality_partition_lag", "Offsets the task is behind the partition's end: the consumer lag.", gauge, "task", "topic", "partition")

	// Per store partition of a task.
	storeHits      = newDesc("duality_store_cache_hits_total", "Store reads the task's uncommitted writes (the record cache) answered.", counter, "task", "store", "partition")
	storeMisses    = newDesc("duality_store_cache_misses_total", "Store reads that read the store.", counter, "task", "store", "partition")
	storeRestoring = newDesc("duality_store_restoring", "1 while the store partition is being restored from its changelog.", gauge, "task", "store", "partition")
	storeRestored  = newDesc("duality_store_restored_records", "Changelog records the latest restoration applied so far.", gauge, "task", "store", "partition")
	storeToRestore = newDesc("duality_store_restore_target_offsets", "Changelog offsets the latest restoration had to read.", gauge, "task", "store", "partition")
	storeKeys      = newDesc("duality_store_keys", "Approximate number of keys of the store partition (exact below 4 MiB on disk).", gauge, "store", "partition")

	// Per step of a task.
	stepIn   = newDesc("duality_step_records_in_total", "Records the step took (read, for a source).", counter, "task", "step")
	stepOut  = newDesc("duality_step_records_out_total", "Records the step passed on to its children (written, for a sink).", counter, "task", "step")
	stepLate = newDesc("duality_step_late_records_dropped_total", "Records the step dropped as late.", counter, "task", "step")
	stepDead = newDesc("duality_step_records_dead_lettered_total", "Input records sent to the dead-letter topic because the step failed on them.", counter, "task", "step")

	all = []desc{recordsProcessed, recordsSkipped, recordsDeadLetter, itemsSkipped, recordsProduced, changelogRecords, commits,
		cacheFlushes, enforcedProcessing, punctuations, lateDropped, purges, tasks, tasksOpened, assignments,
		quarantines, standbyTasks, warmupTasks, standbyRecords, standbyLag, probes, commitLatency, commitRecords,
		taskActive, taskProcessed, taskSkipped, taskProduced, taskDead, taskLate, taskPuncts, taskLatency,
		partPosition, partCommitted, partEnd, partLag,
		storeHits, storeMisses, storeRestoring, storeRestored, storeToRestore, storeKeys,
		stepIn, stepOut, stepLate, stepDead}
)

// Bucket bounds of the exported histograms, as indexes of
// duality.Histogram's power-of-two buckets: durations from 2^10 ns (about
// 1 µs) to 2^35 ns (about 34 s), commit sizes from 1 to 2^20 records.
const (
	firstSecondsBucket, lastSecondsBucket = 10, 35
	firstRecordsBucket, lastRecordsBucket = 0, 20
)

// Describe sends the descriptions of every metric the collector exports.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range all {
		ch <- d.d
	}
}

// Collect takes a snapshot of the app's metrics and sends them. The store
// sizes (duality_store_keys, see duality.App.StoreSizes) read the stores
// of the running tasks, up to a few MiB each.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	m := c.app.Metrics()
	// A label value that is not valid UTF-8 (a step named so) makes an
	// invalid metric, which the registry reports, rather than a panic.
	send := func(d desc, v float64, labels ...string) {
		m, err := prometheus.NewConstMetric(d.d, d.t, v, append([]string{c.id}, labels...)...)
		if err != nil {
			m = prometheus.NewInvalidMetric(d.d, err)
		}
		ch <- m
	}
	for _, v := range []struct {
		d desc
		v float64
	}{
		{recordsProcessed, float64(m.RecordsProcessed)}, {recordsSkipped, float64(m.RecordsSkipped)},
		{recordsDeadLetter, float64(m.RecordsDeadLettered)},
		{itemsSkipped, float64(m.ItemsSkipped)}, {recordsProduced, float64(m.RecordsProduced)},
		{changelogRecords, float64(m.ChangelogRecords)}, {commits, float64(m.Commits)},
		{cacheFlushes, float64(m.CacheFlushes)}, {enforcedProcessing, float64(m.EnforcedProcessing)},
		{punctuations, float64(m.Punctuations)}, {lateDropped, float64(m.LateRecordsDropped)},
		{purges, float64(m.RepartitionPurges)}, {tasks, float64(m.Tasks)}, {tasksOpened, float64(m.TasksOpened)},
		{assignments, float64(m.Assignments)}, {quarantines, float64(m.StateQuarantines)},
		{standbyTasks, float64(m.StandbyTasks)}, {warmupTasks, float64(m.WarmupTasks)},
		{standbyRecords, float64(m.StandbyRecords)}, {standbyLag, float64(m.StandbyLag)},
		{probes, float64(m.ProbingRebalances)},
	} {
		send(v.d, v.v)
	}
	ch <- histogram(commitLatency, &m.CommitLatency, 1e-9, firstSecondsBucket, lastSecondsBucket, c.id)
	ch <- histogram(commitRecords, &m.CommitRecords, 1, firstRecordsBucket, lastRecordsBucket, c.id)

	for _, t := range c.app.TaskMetrics() {
		task := t.Task.String()
		active := 0.0
		if t.Active {
			active = 1
		}
		send(taskActive, active, task)
		send(taskProcessed, float64(t.RecordsProcessed), task)
		send(taskSkipped, float64(t.RecordsSkipped), task)
		send(taskProduced, float64(t.RecordsProduced), task)
		send(taskDead, float64(t.RecordsDeadLettered), task)
		send(taskLate, float64(t.LateRecordsDropped), task)
		send(taskPuncts, float64(t.Punctuations), task)
		ch <- histogram(taskLatency, &t.ProcessLatency, 1e-9, firstSecondsBucket, lastSecondsBucket, c.id, task)
		for _, p := range t.Partitions {
			part := strconv.Itoa(int(p.Partition))
			send(partPosition, float64(p.Position), task, p.Topic, part)
			if p.Committed >= 0 {
				send(partCommitted, float64(p.Committed), task, p.Topic, part)
			}
			if p.End >= 0 {
				send(partEnd, float64(p.End), task, p.Topic, part)
			}
			send(partLag, float64(p.Lag), task, p.Topic, part)
		}
		for _, s := range t.Stores {
			part := strconv.Itoa(int(s.Partition))
			restoring := 0.0
			if s.Restoring {
				restoring = 1
			}
			send(storeHits, float64(s.CacheHits), task, s.Store, part)
			send(storeMisses, float64(s.CacheMisses), task, s.Store, part)
			send(storeRestoring, restoring, task, s.Store, part)
			send(storeRestored, float64(s.Restored), task, s.Store, part)
			send(storeToRestore, float64(s.RestoreTotal), task, s.Store, part)
		}
		for _, s := range t.Steps {
			send(stepIn, float64(s.RecordsIn), task, s.Step)
			send(stepOut, float64(s.RecordsOut), task, s.Step)
			send(stepLate, float64(s.LateRecordsDropped), task, s.Step)
			send(stepDead, float64(s.RecordsDeadLettered), task, s.Step)
		}
	}
	for _, s := range c.app.StoreSizes() {
		send(storeKeys, float64(s.Keys), s.Store, strconv.Itoa(int(s.Partition)))
	}
}

// histogram returns h as a constant Prometheus histogram with the bounds
// of buckets first to last, scaled by unit (1e-9: nanoseconds to
// seconds). The observations above the last bound count in +Inf only.
func histogram(d desc, h *duality.Histogram, unit float64, first, last int, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, last-first+1)
	var cum uint64
	for i := 0; i <= last; i++ {
		cum += h.Buckets[i]
		if i >= first {
			buckets[float64(h.UpperBound(i))*unit] = cum
		}
	}
	m, err := prometheus.NewConstHistogram(d.d, h.Count, float64(h.Sum)*unit, buckets, labels...)
	if err != nil {
		return prometheus.NewInvalidMetric(d.d, err)
	}
	return m
}
