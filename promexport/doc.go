// Package promexport exports an app's metrics to Prometheus: a
// prometheus.Collector ([New]) over the snapshots of [duality.App.Metrics]
// and [duality.App.TaskMetrics]. It is the one package of the module that
// imports prometheus/client_golang's registry and HTTP handler: a program
// that does not import it links neither it nor promhttp.
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(promexport.New(app))
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// # Names
//
// Every metric is named duality_..., counters end in _total, durations
// are in seconds (_seconds histograms, power-of-two buckets from about 1
// µs to 34 s), and every series has the label app (the app id). App-wide:
//
//   - duality_records_processed_total, duality_records_skipped_total,
//     duality_records_dead_lettered_total,
//     duality_items_skipped_total, duality_records_produced_total,
//     duality_changelog_records_total, duality_commits_total,
//     duality_cache_flushes_total, duality_enforced_processing_total,
//     duality_punctuations_total, duality_late_records_dropped_total,
//     duality_repartition_purges_total, duality_tasks_opened_total,
//     duality_assignments_total, duality_state_quarantines_total,
//     duality_standby_records_total, duality_probing_rebalances_total;
//     the gauges duality_tasks, duality_standby_tasks,
//     duality_warmup_tasks and duality_standby_lag.
//   - duality_commit_duration_seconds and duality_commit_records
//     (records per commit, buckets 1 to 2^20): histograms.
//
// Per task (label task, "<sub-topology>_<partition>"):
// duality_task_active (0 once the task moved to another instance, its
// counters staying, and while a task that moved here is restored in the
// background before it runs), duality_task_records_processed_total,
// duality_task_records_skipped_total, duality_task_records_produced_total,
// duality_task_records_dead_lettered_total,
// duality_task_late_records_dropped_total, duality_task_punctuations_total
// and the histogram duality_task_process_latency_seconds (one record in
// 16 measured: its _count is not a record count).
//
// Per input partition of a task (labels task, topic, partition):
// duality_partition_position, duality_partition_committed_offset,
// duality_partition_end_offset (both absent while unknown) and
// duality_partition_lag, the consumer lag in offsets.
//
// Per store partition of a task (labels task, store, partition):
// duality_store_cache_hits_total, duality_store_cache_misses_total
// (the hit ratio is hits / (hits + misses)), duality_store_restoring,
// duality_store_restored_records and
// duality_store_restore_target_offsets (the progress of the latest
// restoration, also of one in the background before the task runs here).
// Per store partition running on this instance (labels
// store, partition): duality_store_keys, its approximate number of keys
// (App.StoreSizes: each scrape reads the stores, up to a few MiB each).
//
// Per step of a task (labels task, step): duality_step_records_in_total,
// duality_step_records_out_total,
// duality_step_late_records_dropped_total and
// duality_step_records_dead_lettered_total (the input records
// dead-lettered because the step failed on them).
//
// # OpenTelemetry
//
// There is no OpenTelemetry exporter: OpenTelemetry's Prometheus bridge
// (go.opentelemetry.io/contrib/bridges/prometheus) reads a
// prometheus.Gatherer, such as the registry above, into an OpenTelemetry
// meter provider, so this collector serves OpenTelemetry users without
// the module depending on OpenTelemetry's SDK.
package promexport
