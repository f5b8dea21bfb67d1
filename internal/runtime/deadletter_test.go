package runtime

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/internal/dsl"
)

// TestCutError: a long error text is cut to the bound on a rune
// boundary and marked; a short one is kept.
func TestCutError(t *testing.T) {
	require.Equal(t, "short", cutError("short"))
	exact := strings.Repeat("a", maxDeadLetterError)
	require.Equal(t, exact, cutError(exact))
	for _, long := range []string{strings.Repeat("a", 3*maxDeadLetterError), strings.Repeat("é", maxDeadLetterError), strings.Repeat("€x", maxDeadLetterError)} {
		got := cutError(long)
		require.LessOrEqual(t, len(got), maxDeadLetterError)
		require.Greater(t, len(got), maxDeadLetterError-16)
		require.True(t, utf8.ValidString(got))
		require.True(t, strings.HasSuffix(got, " ... (cut)"))
		require.True(t, strings.HasPrefix(long, strings.TrimSuffix(got, " ... (cut)")))
	}
}

// TestDescribe: the step and the text of an error: a step's own error
// says its cause (the step is in its header), a wrapped one says all.
func TestDescribe(t *testing.T) {
	cause := errors.New("boom")
	ne := &dsl.NodeError{Node: "parse", Err: cause}
	for _, c := range []struct {
		err        error
		step, text string
	}{
		{ne, "parse", "boom"},
		{fmt.Errorf("wrapped: %w", ne), "parse", `wrapped: step "parse": boom`},
		{cause, "", "boom"},
	} {
		step, text := describe(&ProcessingError{Err: c.err})
		require.Equal(t, c.step, step)
		require.Equal(t, c.text, text)
	}
}
