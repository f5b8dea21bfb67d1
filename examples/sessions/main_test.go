package main

import (
	"cmp"
	"fmt"
	"io"
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

// expected computes the final sessions from the simulated views without
// the framework: per user, views sorted by event time, split where two
// views are more than the gap apart. The run goes to the end of the
// input, so every session is final.
func expected(views []PageView) []Session {
	byUser := map[string][]time.Time{}
	for _, v := range views {
		byUser[v.User] = append(byUser[v.User], v.At)
	}
	var out []Session
	for user, ats := range byUser {
		slices.SortFunc(ats, time.Time.Compare)
		s := Session{User: user, Start: ats[0], End: ats[0], Pages: 1}
		flush := func() {
			s.LengthMs = s.End.Sub(s.Start).Milliseconds()
			out = append(out, s)
		}
		for _, at := range ats[1:] {
			if at.Sub(s.End) > gap {
				flush()
				s = Session{User: user, Start: at, End: at}
			}
			s.End = at
			s.Pages++
		}
		flush()
	}
	return out
}

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
	want := expected(views)
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
}

// TestAppFailureExits: when the app fails, the command prints the error
// and exits 1.
// The app fails on a page view seen before 1970, whose event time the
// default error policy does not skip.
func TestAppFailureExits(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, run(t.Context(), []string{"-users", "20", "-partitions", "2", "-dir", dir}, io.Discard))
	b, err := embedded.Open(dir)
	require.NoError(t, err)
	v, err := codec.JSON[PageView]().Append(nil, PageView{User: "user-old", Path: "/", At: time.UnixMilli(-5)})
	require.NoError(t, err)
	require.NoError(t, b.Produce(t.Context(), []broker.Record{{Topic: "page-views", Partition: broker.PartitionByKey,
		Key: []byte("user-old"), Value: v, Timestamp: time.Now()}}))
	require.NoError(t, b.Close())

	res := exampletest.Run(t, time.Minute, "-users", "1", "-partitions", "2", "-dir", dir)
	require.Equal(t, 1, res.ExitCode, "stdout:\n%s\nstderr:\n%s", res.Stdout, res.Stderr)
	require.Contains(t, res.Stderr, "sessions: ")
	require.Contains(t, res.Stderr, "invalid record timestamp")
}
