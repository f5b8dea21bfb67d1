package main

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/examples/internal/exampletest"
)

func TestMain(m *testing.M) { exampletest.Main(m, main) }

func sortMinutes(ms []Minute) {
	slices.SortFunc(ms, func(a, b Minute) int { return cmp.Or(cmp.Compare(a.Car, b.Car), a.Start.Compare(b.Start)) })
}

func sortAlerts(as []Alert) {
	slices.SortFunc(as, func(a, b Alert) int {
		return cmp.Or(cmp.Compare(a.Car, b.Car), a.Minute.Compare(b.Minute), cmp.Compare(a.Kind, b.Kind))
	})
}

// TestRun runs the example and checks the hot path's minutes and alerts
// against a direct computation (every final minute exactly once), and the
// cold path's files against the minutes.
func TestRun(t *testing.T) {
	var out strings.Builder
	dir := t.TempDir()
	cold := filepath.Join(t.TempDir(), "cold")
	const cars, minutes = 20, 12
	require.NoError(t, run(t.Context(), []string{"-cars", fmt.Sprint(cars), "-minutes", fmt.Sprint(minutes), "-partitions", "2", "-dir", dir, "-out", cold}, &out))
	text := out.String()
	t.Log(text)

	b, err := embedded.Open(filepath.Join(dir, "log"))
	require.NoError(t, err)
	defer func() { require.NoError(t, b.Close()) }()
	gotMins, err := ReadTopic[Minute](t.Context(), b, "car-minutes")
	require.NoError(t, err)
	gotAlerts, err := ReadTopic[Alert](t.Context(), b, "car-alerts")
	require.NoError(t, err)
	readings := Simulate(cars, minutes, 1)
	wantMins, wantAlerts := ExpectedMinutes(readings)
	require.Len(t, wantMins, cars*minutes, "every minute of every car is final")
	sortMinutes(gotMins)
	sortMinutes(wantMins)
	sortAlerts(gotAlerts)
	sortAlerts(wantAlerts)
	require.Len(t, gotMins, len(wantMins))
	for i := range wantMins {
		g, w := gotMins[i], wantMins[i]
		require.Equal(t, w.Car, g.Car)
		require.True(t, w.Start.Equal(g.Start), "%v %v", w.Start, g.Start)
		require.Equal(t, w.Readings, g.Readings)
		require.InDelta(t, w.AvgSpeedKmh, g.AvgSpeedKmh, 1e-9)
		require.InDelta(t, w.AvgTempC, g.AvgTempC, 1e-9)
		require.Equal(t, w.MinTempC, g.MinTempC)
		require.Equal(t, w.MinFuelPct, g.MinFuelPct)
	}
	require.Len(t, gotAlerts, len(wantAlerts))
	for i := range wantAlerts {
		require.Equal(t, wantAlerts[i].Kind, gotAlerts[i].Kind)
		require.Equal(t, wantAlerts[i].Car, gotAlerts[i].Car)
		require.True(t, wantAlerts[i].Minute.Equal(gotAlerts[i].Minute))
	}
	kinds := map[string]int{}
	for _, a := range wantAlerts {
		kinds[a.Kind]++
	}
	require.Positive(t, kinds["overheat"])
	require.Positive(t, kinds["low-fuel"])
	require.Contains(t, text, fmt.Sprintf("%d readings of %d cars processed", len(readings), cars))
	require.Contains(t, text, fmt.Sprintf("%d car-minutes final", len(wantMins)))
	require.Contains(t, text, ", 0 late readings dropped")

	// The cold path holds every final minute once, in hourly files.
	files, err := filepath.Glob(filepath.Join(cold, "car-minutes-*.jsonl"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	lines := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		lines += strings.Count(string(data), "\n")
	}
	require.Equal(t, len(wantMins), lines)
	require.Contains(t, text, "every car-minute and alert matches the model computed without the framework")
}

// TestRerunSameDirFails runs the command twice with the same kept data
// directory. The first run closed the app's windows at the end of time;
// the second must not drop its readings as late, print the first run's
// minutes and exit 0, as it did: it refuses the directory and exits 1.
func TestRerunSameDirFails(t *testing.T) {
	args := []string{"-cars", "3", "-minutes", "3", "-partitions", "2", "-dir", t.TempDir()}
	first := exampletest.Run(t, time.Minute, args...)
	require.Equal(t, 0, first.ExitCode, "stdout:\n%s\nstderr:\n%s", first.Stdout, first.Stderr)
	require.Contains(t, first.Stdout, ", 0 late readings dropped")

	second := exampletest.Run(t, time.Minute, args...)
	require.Equal(t, 1, second.ExitCode, "stdout:\n%s\nstderr:\n%s", second.Stdout, second.Stderr)
	require.Contains(t, second.Stderr, `connectedcars: topic "car-readings" exists`)
	require.Contains(t, second.Stderr, "connectedcars needs a fresh data directory")
	require.Empty(t, second.Stdout, "no summary of the first run's minutes")
}

// TestColdPathReusedOut runs the command twice with fresh data
// directories and the same -out: the second run's drive is shorter, and
// the file of the hour only the first run had is removed, so the
// directory holds the second run's minutes only.
func TestColdPathReusedOut(t *testing.T) {
	cold := t.TempDir()
	var out strings.Builder
	require.NoError(t, run(t.Context(), []string{"-cars", "2", "-minutes", "70", "-partitions", "2", "-dir", t.TempDir(), "-out", cold}, &out))
	require.Contains(t, out.String(), "cold path: 2 JSON lines files in "+cold+"\n")

	out.Reset()
	require.NoError(t, run(t.Context(), []string{"-cars", "2", "-minutes", "5", "-partitions", "2", "-dir", t.TempDir(), "-out", cold}, &out))
	require.Contains(t, out.String(), "cold path: 1 JSON lines files in "+cold+" (1 files of other hours removed)\n")
	files, err := filepath.Glob(filepath.Join(cold, "car-minutes-*.jsonl"))
	require.NoError(t, err)
	require.Equal(t, []string{filepath.Join(cold, "car-minutes-2026-11-23T08.jsonl")}, files)
	data, err := os.ReadFile(files[0])
	require.NoError(t, err)
	require.Equal(t, 2*5, strings.Count(string(data), "\n"), "the second run's minutes only")
}

// TestCheck: the command's check fails on readings dropped as late and on
// minutes or alerts that differ from the model, saying how.
func TestCheck(t *testing.T) {
	readings := Simulate(4, 6, 2)
	mins, alerts := ExpectedMinutes(readings)
	require.NotEmpty(t, alerts)
	require.NoError(t, check(readings, mins, alerts, 0))

	require.ErrorContains(t, check(readings, mins, alerts, 5), "5 readings dropped as late, want none")

	err := check(readings, mins[1:], alerts, 0)
	require.ErrorContains(t, err, fmt.Sprintf(`"car-minutes": %d records, want %d: 1 missing, 0 unexpected, 0 differ`, len(mins)-1, len(mins)))

	changed := slices.Clone(mins)
	changed[0].AvgSpeedKmh += 0.5
	require.ErrorContains(t, check(readings, changed, alerts, 0), "0 missing, 0 unexpected, 1 differ")

	twice := append(slices.Clone(alerts), alerts[0])
	require.ErrorContains(t, check(readings, mins, twice, 0),
		fmt.Sprintf(`"car-alerts": %d records, want %d: 0 missing, 1 unexpected, 0 differ`, len(alerts)+1, len(alerts)))
}

// TestAppFailureExits: when the app fails, the command prints the error
// and exits 1.
// connectedcars needs a fresh data directory, so no input record can be
// planted before it runs; the app fails instead as it starts, on its
// store's changelog topic left with another partition count.
func TestAppFailureExits(t *testing.T) {
	dir := t.TempDir()
	b, err := embedded.Open(filepath.Join(dir, "log"))
	require.NoError(t, err)
	require.NoError(t, b.CreateTopic(t.Context(), appID+"-car-minute-aggregates-changelog", broker.TopicConfig{Partitions: 1}))
	require.NoError(t, b.Close())

	res := exampletest.Run(t, time.Minute, "-cars", "2", "-minutes", "2", "-partitions", "2", "-dir", dir)
	require.Equal(t, 1, res.ExitCode, "stdout:\n%s\nstderr:\n%s", res.Stdout, res.Stderr)
	require.Contains(t, res.Stderr, "connectedcars: ")
	require.Contains(t, res.Stderr, `topic "connectedcars-car-minute-aggregates-changelog" has 1 partitions, the topology needs 2`)
}

// TestKfake runs the example on an in-process kfake cluster (-kfake): the
// command checks every car-minute and alert against the model and exits 0
// only if they match.
func TestKfake(t *testing.T) {
	res := exampletest.Run(t, 2*time.Minute, "-cars", "20", "-minutes", "12", "-partitions", "2", "-kfake", "-dir", t.TempDir())
	require.Equal(t, 0, res.ExitCode, "stdout:\n%s\nstderr:\n%s", res.Stdout, res.Stderr)
	require.Contains(t, res.Stdout, "topics on the in-process kfake cluster at 127.0.0.1:")
	require.Contains(t, res.Stdout, "every car-minute and alert matches the model computed without the framework")
}
