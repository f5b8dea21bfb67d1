package main

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/examples/internal/exampletest"
)

func TestMain(m *testing.M) { exampletest.Main(m, main) }

// expected computes the final car-minutes and alerts from the simulated
// readings without the framework: readings summed per car and minute in
// arrival order. The run goes to the end of the input, so every minute is
// final.
func expected(readings []Reading) ([]Minute, []Alert) {
	type key struct {
		car   string
		start time.Time
	}
	accs := map[key]*Minute{}
	for _, r := range readings {
		k := key{r.Car, r.At.Truncate(time.Minute)}
		m := accs[k]
		if m == nil {
			m = &Minute{Car: r.Car, Start: k.start, MinTempC: math.Inf(1), MinFuelPct: math.Inf(1)}
			accs[k] = m
		}
		m.Readings++
		m.AvgSpeedKmh += r.SpeedKmh
		m.AvgTempC += r.EngineTempC
		m.MinTempC = min(m.MinTempC, r.EngineTempC)
		m.MinFuelPct = min(m.MinFuelPct, r.FuelPct)
	}
	var mins []Minute
	var alerts []Alert
	for _, m := range accs {
		m.AvgSpeedKmh /= float64(m.Readings)
		m.AvgTempC /= float64(m.Readings)
		mins = append(mins, *m)
		if m.MinTempC > overheatC {
			alerts = append(alerts, Alert{Car: m.Car, Minute: m.Start, Kind: "overheat", Value: m.MinTempC})
		}
		if m.MinFuelPct < lowFuelPct {
			alerts = append(alerts, Alert{Car: m.Car, Minute: m.Start, Kind: "low-fuel", Value: m.MinFuelPct})
		}
	}
	return mins, alerts
}

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
	wantMins, wantAlerts := expected(readings)
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
}

// TestAppFailureExits: when the app fails, the command prints the error
// and exits 1.
// The app fails on a reading measured before 1970, whose event time the
// default error policy does not skip.
func TestAppFailureExits(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, run(t.Context(), []string{"-cars", "2", "-minutes", "2", "-partitions", "2", "-dir", dir}, io.Discard))
	b, err := embedded.Open(filepath.Join(dir, "log"))
	require.NoError(t, err)
	v, err := codec.JSON[Reading]().Append(nil, Reading{Car: "car-old", At: time.UnixMilli(-5), SpeedKmh: 50, FuelPct: 50, EngineTempC: 90})
	require.NoError(t, err)
	require.NoError(t, b.Produce(t.Context(), []broker.Record{{Topic: "car-readings", Partition: broker.PartitionByKey,
		Key: []byte("car-old"), Value: v, Timestamp: time.Now()}}))
	require.NoError(t, b.Close())

	res := exampletest.Run(t, time.Minute, "-cars", "1", "-minutes", "1", "-partitions", "2", "-dir", dir)
	require.Equal(t, 1, res.ExitCode, "stdout:\n%s\nstderr:\n%s", res.Stdout, res.Stderr)
	require.Contains(t, res.Stderr, "connectedcars: ")
	require.Contains(t, res.Stderr, "invalid record timestamp")
}
