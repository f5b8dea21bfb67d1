package main

import (
	"cmp"
	"fmt"
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

func sortSessions(s []Session) {
	slices.SortFunc(s, func(a, b Session) int {
		return cmp.Or(strings.Compare(a.User, b.User), a.Start.Compare(b.Start))
	})
}

// TestRun runs the example and checks the sessions topic against the
// sessions computed directly from the simulated views: every final
// session exactly once, with its start, end and page count.
func TestRun(t *testing.T) {
	var out strings.Builder
	dir := t.TempDir()
	const users = 150
	require.NoError(t, run(t.Context(), []string{"-users", fmt.Sprint(users), "-partitions", "2", "-dir", dir}, &out))
	text := out.String()
	t.Log(text)

	b, err := embedded.Open(dir)
	require.NoError(t, err)
	defer func() { require.NoError(t, b.Close()) }()
	got, err := ReadSessions(t.Context(), b)
	require.NoError(t, err)
	views := Simulate(users, 1)
	want := ExpectedSessions(views)
	sortSessions(got)
	sortSessions(want)
	for i := range got {
		got[i].Start, got[i].End = got[i].Start.UTC(), got[i].End.UTC()
	}
	require.Equal(t, want, got)
	require.Greater(t, len(got), users, "users have several sessions")

	require.Regexp(t, fmt.Sprintf(`(?m)^%d page views by %d users processed`, len(views), users), text)
	require.Regexp(t, fmt.Sprintf(`(?m)^%d sessions final, 0 late views dropped$`, len(want)), text)
	// The run closed the day's last sessions too: every view is in one.
	require.Regexp(t, fmt.Sprintf(`(?m)^%d page views are in final sessions$`, len(views)), text)
	require.Contains(t, text, "every session matches the model computed without the framework")
}

// TestRerunSameDirFails runs the command twice with the same kept data
// directory. The first run closed the app's windows at the end of time;
// the second must not drop its views as late, print the first run's
// sessions and exit 0, as it did: it refuses the directory and exits 1.
func TestRerunSameDirFails(t *testing.T) {
	args := []string{"-users", "30", "-partitions", "2", "-dir", t.TempDir()}
	first := exampletest.Run(t, time.Minute, args...)
	require.Equal(t, 0, first.ExitCode, "stdout:\n%s\nstderr:\n%s", first.Stdout, first.Stderr)
	require.Contains(t, first.Stdout, " 0 late views dropped")

	second := exampletest.Run(t, time.Minute, args...)
	require.Equal(t, 1, second.ExitCode, "stdout:\n%s\nstderr:\n%s", second.Stdout, second.Stderr)
	require.Contains(t, second.Stderr, `sessions: topic "page-views" exists`)
	require.Contains(t, second.Stderr, "sessions needs a fresh data directory")
	require.Empty(t, second.Stdout, "no summary of the first run's sessions")
}

// TestCheck: the command's check fails on views dropped as late and on
// sessions that differ from the model, saying how.
func TestCheck(t *testing.T) {
	views := Simulate(20, 3)
	want := ExpectedSessions(views)
	require.NoError(t, check(views, want, 0))

	err := check(views, want, 7)
	require.ErrorContains(t, err, "7 views dropped as late, want none")

	short := slices.Clone(want[1:])
	err = check(views, short, 0)
	require.ErrorContains(t, err, fmt.Sprintf(`"sessions": %d records, want %d: 1 missing, 0 unexpected, 0 differ`, len(want)-1, len(want)))

	changed := slices.Clone(want)
	changed[0].Pages++
	twice := append(slices.Clone(want), want[0])
	err = check(views, changed, 0)
	require.ErrorContains(t, err, "0 missing, 0 unexpected, 1 differ")
	err = check(views, twice, 0)
	require.ErrorContains(t, err, "0 missing, 1 unexpected, 0 differ")
}

// TestAppFailureExits: when the app fails, the command prints the error
// and exits 1.
// sessions needs a fresh data directory, so no input record can be
// planted before it runs; the app fails instead as it starts, on its
// store's changelog topic left with another partition count.
func TestAppFailureExits(t *testing.T) {
	dir := t.TempDir()
	b, err := embedded.Open(dir)
	require.NoError(t, err)
	require.NoError(t, b.CreateTopic(t.Context(), appID+"-user-sessions-changelog", broker.TopicConfig{Partitions: 1}))
	require.NoError(t, b.Close())

	res := exampletest.Run(t, time.Minute, "-users", "20", "-partitions", "2", "-dir", dir)
	require.Equal(t, 1, res.ExitCode, "stdout:\n%s\nstderr:\n%s", res.Stdout, res.Stderr)
	require.Contains(t, res.Stderr, "sessions: ")
	require.Contains(t, res.Stderr, `topic "sessions-user-sessions-changelog" has 1 partitions, the topology needs 2`)
}

// TestKfake runs the example on an in-process kfake cluster (-kfake): the
// command checks every session against the model and exits 0 only if
// they match.
func TestKfake(t *testing.T) {
	res := exampletest.Run(t, 2*time.Minute, "-users", "150", "-partitions", "2", "-kfake")
	require.Equal(t, 0, res.ExitCode, "stdout:\n%s\nstderr:\n%s", res.Stdout, res.Stderr)
	require.Contains(t, res.Stdout, "topics on the in-process kfake cluster at 127.0.0.1:")
	require.Contains(t, res.Stdout, "every session matches the model computed without the framework")
}
