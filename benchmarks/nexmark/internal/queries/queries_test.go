package queries

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/benchmarks/nexmark/internal/gen"
)

// testEvents events at 500 events/s of event time: 20 s, two tumbling
// windows of 10 s and more hopping ones.
const testEvents = 10_000

var testGen = gen.Config{Seed: 7, Rate: 500}

// TestQueries runs every query to the end of a small input on the
// embedded broker and compares its final output with the reference.
func TestQueries(t *testing.T) {
	g, err := gen.New(testGen)
	require.NoError(t, err)
	for _, q := range All() {
		t.Run(q.Name, func(t *testing.T) {
			res, err := Run(t.Context(), q, RunConfig{Dir: t.TempDir(), Gen: testGen, Events: testEvents, Partitions: 2})
			require.NoError(t, err)
			require.Zero(t, res.Late, "late records")
			require.NotEmpty(t, res.Rows, "the reference has no rows either if this fails with equal outputs: make the input larger")
			require.NoError(t, Check(q, g, testEvents, res.Rows))
			t.Logf("%s: %d output records, %d rows, %v", q.Name, res.Outputs, len(res.Rows), res.Wall)
		})
	}
}

// TestPlain runs the plain-Go ceiling of every query that has one over
// the same small input on more partitions than workers, and checks its
// output against the reference as the query's is: the ceiling does the
// query's work.
func TestPlain(t *testing.T) {
	g, err := gen.New(testGen)
	require.NoError(t, err)
	var ran []string
	for _, q := range All() {
		if q.Plain == nil {
			continue
		}
		ran = append(ran, q.Name)
		t.Run(q.Name, func(t *testing.T) {
			res, err := RunPlain(t.Context(), q, RunConfig{Dir: t.TempDir(), Gen: testGen, Events: testEvents, Partitions: 3, Workers: 2})
			require.NoError(t, err)
			require.NotEmpty(t, res.Rows)
			require.NoError(t, Check(q, g, testEvents, res.Rows))
			require.Positive(t, res.Wall)
		})
	}
	require.Equal(t, []string{"q0", "q1", "q2"}, ran, "the stateless queries have a ceiling")
	_, err = RunPlain(t.Context(), q5(), RunConfig{Dir: t.TempDir(), Gen: testGen, Events: 10})
	require.ErrorContains(t, err, "no plain-Go ceiling")
}

// TestCheckFindsDifferences: a row changed, dropped or repeated fails the
// check.
func TestCheckFindsDifferences(t *testing.T) {
	g, err := gen.New(testGen)
	require.NoError(t, err)
	q := q2()
	rows := q.Reference(g, g.Events(0, testEvents, 1))
	require.NotEmpty(t, rows)
	require.NoError(t, Check(q, g, testEvents, rows))
	changed := append([]any{}, rows...)
	r := changed[0].(Q2Row)
	r.Price++
	changed[0] = r
	require.ErrorContains(t, Check(q, g, testEvents, changed), "1 missing")
	require.Error(t, Check(q, g, testEvents, rows[1:]))
	require.Error(t, Check(q, g, testEvents, append(rows, rows[0])))
}
