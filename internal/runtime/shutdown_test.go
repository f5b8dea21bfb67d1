package runtime

import (
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// shutdownGoroutines returns the stacks of the goroutines timing a
// shutdown (newShutdown).
func shutdownGoroutines() []string {
	var sb strings.Builder
	_ = pprof.Lookup("goroutine").WriteTo(&sb, 2)
	var found []string
	for g := range strings.SplitSeq(sb.String(), "\n\n") {
		if strings.Contains(g, "internal/runtime.newShutdown") {
			found = append(found, g)
		}
	}
	return found
}

// TestStepFailureEndsShutdown: a Step that fails before it has a Stepper
// to close (missing topics, state that cannot be opened) ends the
// shutdown it started: no goroutine of it is left.
func TestStepFailureEndsShutdown(t *testing.T) {
	notDir := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(notDir, nil, 0o600))
	for _, tc := range []struct {
		name string
		cfg  func(*Config)
		want string
	}{
		{"missing topics", func(*Config) {}, "missing topics absent"},
		{"state cannot be opened", func(c *Config) { c.StateDir, c.StateDirSet = notDir, true }, "open state"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := memBroker(t, map[string]int32{"in": 1, "out": 1})
			sources := []string{"in"}
			if tc.name == "missing topics" {
				sources = append(sources, "absent")
			}
			topo := counterTopology(sources...)
			cfg := DefaultConfig()
			tc.cfg(&cfg)
			for range 10 {
				a, err := New("app", topo, b, cfg)
				require.NoError(t, err)
				_, _, err = a.Step(t.Context())
				require.ErrorContains(t, err, tc.want)
				require.Equal(t, 1, strings.Count(err.Error(), `duality: app "app"`), err.Error())
			}
			// The goroutine has exited or only has its deferred close
			// left. Bound: 5 s of yielding, no sleeping.
			deadline := time.Now().Add(5 * time.Second)
			for left := shutdownGoroutines(); len(left) > 0; left = shutdownGoroutines() {
				require.True(t, time.Now().Before(deadline), "%d shutdown goroutines left after Step failed:\n%s",
					len(left), strings.Join(left, "\n\n"))
				runtime.Gosched()
			}
		})
	}
}
