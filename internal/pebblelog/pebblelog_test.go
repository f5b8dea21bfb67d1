package pebblelog

import (
	"log/slog"
	"os"
	"syscall"
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

// A fatal error's cause still matches errors.Is: the broker and the store
// turn a failed log write for lack of space into their ErrDiskFull by it.
func TestFatalfKeepsTheCause(t *testing.T) {
	l := Logger{Log: slog.New(slog.DiscardHandler), Name: "test"}
	cause := &os.PathError{Op: "write", Path: "000004.log", Err: syscall.ENOSPC}
	run := func() (err error) {
		defer Enter()()
		defer func() {
			if r := recover(); r != nil {
				err = FromPanic(r, "test: storage failed")
			}
		}()
		l.Fatalf("pebble: fatal commit error: %v", cause)
		return nil
	}
	err := run()
	require.EqualError(t, err, "test: storage failed: pebble: fatal commit error: write 000004.log: no space left on device")
	require.ErrorIs(t, err, syscall.ENOSPC)
}
