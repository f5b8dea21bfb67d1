package promexport_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/promexport"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
)

// countApp runs a count of n records ("k<i%10>" keys) over one partition
// to the end and returns the app.
func countApp(t *testing.T, n int) *duality.App {
	t.Helper()
	b, err := embedded.Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	for _, topic := range []string{"clicks", "counts"} {
		require.NoError(t, b.CreateTopic(t.Context(), topic, broker.TopicConfig{Partitions: 1}))
	}
	recs := make([]broker.Record, n)
	for i := range recs {
		recs[i] = broker.Record{Topic: "clicks", Key: fmt.Appendf(nil, "k%d", i%10), Value: []byte("click")}
	}
	require.NoError(t, b.Produce(t.Context(), recs))
	sb := stream.NewBuilder()
	clicks := stream.From(sb, "clicks", codec.String(), codec.String(), stream.Named("clicks"))
	table.Count(stream.GroupByKey(clicks), "per-user", stream.Named("count")).
		ToStream().To("counts", stream.Named("out"))
	topo, err := sb.Build()
	require.NoError(t, err)
	app, err := duality.New("clickcount", topo, b, duality.CacheMaxBytes(0)) // every update emitted: counts do not depend on commit timing
	require.NoError(t, err)
	require.NoError(t, app.RunToEnd(t.Context()))
	return app
}

func TestCollector(t *testing.T) {
	app := countApp(t, 100)
	c := promexport.New(app)

	// The values that do not depend on timing, through testutil.
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(`
# HELP duality_records_processed_total Input records processed without error.
# TYPE duality_records_processed_total counter
duality_records_processed_total{app="clickcount"} 100
# HELP duality_task_records_processed_total Input records the task processed without error.
# TYPE duality_task_records_processed_total counter
duality_task_records_processed_total{app="clickcount",task="0_0"} 100
# HELP duality_step_records_in_total Records the step took (read, for a source).
# TYPE duality_step_records_in_total counter
duality_step_records_in_total{app="clickcount",step="clicks",task="0_0"} 100
duality_step_records_in_total{app="clickcount",step="count",task="0_0"} 100
duality_step_records_in_total{app="clickcount",step="out",task="0_0"} 100
# HELP duality_partition_lag Offsets the task is behind the partition's end: the consumer lag.
# TYPE duality_partition_lag gauge
duality_partition_lag{app="clickcount",partition="0",task="0_0",topic="clicks"} 0
# HELP duality_partition_position Offset of the next record the task processes.
# TYPE duality_partition_position gauge
duality_partition_position{app="clickcount",partition="0",task="0_0",topic="clicks"} 100
`), "duality_records_processed_total", "duality_task_records_processed_total",
		"duality_step_records_in_total", "duality_partition_lag", "duality_partition_position"))

	// Names and help follow Prometheus' conventions.
	problems, err := testutil.CollectAndLint(c)
	require.NoError(t, err)
	require.Empty(t, problems)

	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(c))
	require.Error(t, reg.Register(promexport.New(app)), "two collectors of one app collide")
}

// TestScrape serves the collector over HTTP as an app would and parses
// the text format a Prometheus server reads.
func TestScrape(t *testing.T) {
	app := countApp(t, 50)
	reg := prometheus.NewRegistry()
	reg.MustRegister(promexport.New(app))
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)

	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	require.NoError(t, err)

	m := app.Metrics()
	commits := fams["duality_commits_total"]
	require.NotNil(t, commits)
	require.Equal(t, dto.MetricType_COUNTER, commits.GetType())
	require.Equal(t, float64(m.Commits), commits.GetMetric()[0].GetCounter().GetValue())

	for name, typ := range map[string]dto.MetricType{
		"duality_commit_duration_seconds":      dto.MetricType_HISTOGRAM,
		"duality_commit_records":               dto.MetricType_HISTOGRAM,
		"duality_task_process_latency_seconds": dto.MetricType_HISTOGRAM,
		"duality_task_active":                  dto.MetricType_GAUGE,
		"duality_store_cache_hits_total":       dto.MetricType_COUNTER,
		"duality_store_cache_misses_total":     dto.MetricType_COUNTER,
		"duality_store_restoring":              dto.MetricType_GAUGE,
		"duality_partition_committed_offset":   dto.MetricType_GAUGE,
		"duality_partition_end_offset":         dto.MetricType_GAUGE,
		"duality_step_records_out_total":       dto.MetricType_COUNTER,
	} {
		f := fams[name]
		require.NotNil(t, f, name)
		require.Equal(t, typ, f.GetType(), name)
		for _, mt := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range mt.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			require.Equal(t, "clickcount", labels["app"], name)
		}
	}

	// The histograms are cumulative and their count is the commits'.
	h := fams["duality_commit_duration_seconds"].GetMetric()[0].GetHistogram()
	require.Equal(t, m.Commits, h.GetSampleCount())
	var prev uint64
	for _, bk := range h.GetBucket() {
		require.GreaterOrEqual(t, bk.GetCumulativeCount(), prev)
		prev = bk.GetCumulativeCount()
	}
	require.LessOrEqual(t, prev, h.GetSampleCount())
	require.InDelta(t, float64(m.CommitLatency.Sum)/1e9, h.GetSampleSum(), 1e-9)
	sizes := fams["duality_commit_records"].GetMetric()[0].GetHistogram()
	require.Equal(t, float64(m.RecordsProduced), sizes.GetSampleSum())

	hits := fams["duality_store_cache_hits_total"].GetMetric()[0].GetCounter().GetValue()
	misses := fams["duality_store_cache_misses_total"].GetMetric()[0].GetCounter().GetValue()
	require.Equal(t, 50.0, hits+misses, "the count reads its store once a record")
}

// TestCollectorDeadLetters: the dead letters per task and per step that
// failed. A step panics on the one poison record, on partition 1 of two.
func TestCollectorDeadLetters(t *testing.T) {
	b, err := embedded.Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	for _, topic := range []string{"orders", "checked"} {
		require.NoError(t, b.CreateTopic(t.Context(), topic, broker.TopicConfig{Partitions: 2}))
	}
	var recs []broker.Record
	for i := range 10 {
		recs = append(recs, broker.Record{Topic: "orders", Partition: int32(i % 2), Key: fmt.Appendf(nil, "o%d", i), Value: []byte("ok")})
	}
	recs = append(recs, broker.Record{Topic: "orders", Partition: 1, Key: []byte("o10"), Value: []byte("poison")})
	require.NoError(t, b.Produce(t.Context(), recs))
	sb := stream.NewBuilder()
	stream.From(sb, "orders", codec.String(), codec.String(), stream.Named("orders")).
		Peek(func(_, v string) {
			if v == "poison" {
				panic("poison order")
			}
		}, stream.Named("check")).
		To("checked", stream.Named("out"))
	topo, err := sb.Build()
	require.NoError(t, err)
	app, err := duality.New("orders", topo, b, duality.OnProcessingError(duality.DeadLetterOnError(nil)))
	require.NoError(t, err)
	require.NoError(t, app.RunToEnd(t.Context()))

	c := promexport.New(app)
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(`
# HELP duality_records_dead_lettered_total Input records sent to the dead-letter topic after a processing error (DeadLetterOnError).
# TYPE duality_records_dead_lettered_total counter
duality_records_dead_lettered_total{app="orders"} 1
# HELP duality_task_records_dead_lettered_total Input records of the task sent to the dead-letter topic after a processing error.
# TYPE duality_task_records_dead_lettered_total counter
duality_task_records_dead_lettered_total{app="orders",task="0_0"} 0
duality_task_records_dead_lettered_total{app="orders",task="0_1"} 1
# HELP duality_step_records_dead_lettered_total Input records sent to the dead-letter topic because the step failed on them.
# TYPE duality_step_records_dead_lettered_total counter
duality_step_records_dead_lettered_total{app="orders",step="check",task="0_0"} 0
duality_step_records_dead_lettered_total{app="orders",step="check",task="0_1"} 1
duality_step_records_dead_lettered_total{app="orders",step="orders",task="0_0"} 0
duality_step_records_dead_lettered_total{app="orders",step="orders",task="0_1"} 0
duality_step_records_dead_lettered_total{app="orders",step="out",task="0_0"} 0
duality_step_records_dead_lettered_total{app="orders",step="out",task="0_1"} 0
`), "duality_records_dead_lettered_total", "duality_task_records_dead_lettered_total", "duality_step_records_dead_lettered_total"))
	problems, err := testutil.CollectAndLint(c)
	require.NoError(t, err)
	require.Empty(t, problems)
}
