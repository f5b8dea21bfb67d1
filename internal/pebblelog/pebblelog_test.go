package pebblelog

import (
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFatalfInsideARecoveringSection(t *testing.T) {
	l := Logger{Log: slog.New(slog.DiscardHandler), Name: "test"}
	run := func() (err error) {
		defer Enter()()
		defer func() {
			if r := recover(); r != nil {
				err = FromPanic(r, "test: storage failed")
			}
		}()
		l.Fatalf("wal write: %s", "injected")
		return nil
	}
	require.EqualError(t, run(), "test: storage failed: wal write: injected")
	_, marked := recovering.Load(goid())
	require.False(t, marked, "the section ends with its exit function")

	require.PanicsWithValue(t, "other", func() { _ = FromPanic("other", "x") }, "other panics go on")
}
