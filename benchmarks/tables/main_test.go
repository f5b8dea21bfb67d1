package main

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestMain runs a case when the test binary is re-executed as a child by
// runCase, as the command does.
func TestMain(m *testing.M) {
	flag.Parse()
	if *child != "" {
		if err := runChild(); err != nil {
			fmt.Fprintln(os.Stderr, "tables:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestCases runs every kind of case on a small input in child processes
// and checks the figures they report: the input and restore counts, the
// changelog and output records read from the broker (each case also fails
// unless the app's metrics agree), and a peak RSS.
func TestCases(t *testing.T) {
	if testing.Short() {
		t.Skip("runs child processes with the embedded broker and Pebble")
	}
	const n, hot = 20_000, 100
	*restoreKeys = n
	var specs []spec
	specs = append(specs, countSpecs(hot, n)...)
	specs = append(specs, countSpecs(n, n)...)
	specs = append(specs, spec{name: "restore-pebble", args: []string{"-child=restore", "-case-state=pebble"}},
		spec{name: "restore-memory", args: []string{"-child=restore", "-case-state=memory"}})
	for _, s := range specs {
		t.Run(s.name, func(t *testing.T) {
			r, err := runCase(s, 0)
			require.NoError(t, err)
			require.Equal(t, int64(n), r.Records)
			require.Positive(t, r.Dur)
			require.Positive(t, r.HWM)
			switch s.name {
			case "restore-pebble", "restore-memory":
				require.Equal(t, int64(n), r.Log, "the restored changelog")
			case "count-100-keys-cache-on":
				// 200 updates per key: the cache merges most of them.
				require.Less(t, r.Log, int64(n/2))
				require.Equal(t, int64(n), r.Output, "every update is emitted")
			default: // cache off, or every key once
				require.Equal(t, int64(n), r.Log)
				require.Equal(t, int64(n), r.Output)
			}
		})
	}
}
