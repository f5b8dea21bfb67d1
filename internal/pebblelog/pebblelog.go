// Package pebblelog adapts Pebble's logger to log/slog and gives Pebble's
// fatal errors a policy, for every package that opens a Pebble database
// (broker/embedded, store).
//
// Pebble calls Fatalf on errors it cannot continue from (a failed
// write-ahead log or manifest write: its commit pipeline is broken) and
// expects it not to return. On a goroutine inside a section marked with
// [Enter], Fatalf panics with a [Fatal] that the section turns into an
// error ([FromPanic]). Anywhere else (Pebble's background flushes and
// compactions, callers that could recover and keep a broken database
// running) it prints the error to stderr and exits the process with status
// 70, as Pebble's default logger does: the state is unknown, and a clear
// exit beats a panic nobody can handle.
package pebblelog

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
)

// ExitCode is the status the process exits with on a fatal storage error
// outside a recovering section.
const ExitCode = 70

// Logger sends Pebble's log lines to Log. Name prefixes the message printed
// before a fatal exit ("embedded", "store").
type Logger struct {
	Log  *slog.Logger
	Name string
}

// Infof logs at Info.
func (l Logger) Infof(format string, args ...any) {
	l.Log.Info("pebble: " + fmt.Sprintf(format, args...))
}

// Errorf logs at Error.
func (l Logger) Errorf(format string, args ...any) {
	l.Log.Error("pebble: " + fmt.Sprintf(format, args...))
}

// Fatalf logs above Error, then panics with a Fatal inside a section marked
// with Enter, or exits the process with ExitCode.
func (l Logger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.Log.Log(context.Background(), slog.LevelError+4, "pebble: fatal: "+msg)
	if _, ok := recovering.Load(goid()); ok {
		f := Fatal{Msg: msg}
		for _, a := range args {
			if err, ok := a.(error); ok {
				f.Err = err // e.g. the ENOSPC of a failed log write
				break
			}
		}
		panic(f)
	}
	fmt.Fprintf(os.Stderr, "%s: fatal storage error: %s\n", l.Name, msg)
	os.Exit(ExitCode)
}

// Fatal is the panic value of Logger.Fatalf inside a recovering section.
// Msg is Pebble's message; Err is the first error among its arguments
// (nil if none), so that the cause still matches errors.Is, e.g.
// syscall.ENOSPC.
type Fatal struct {
	Msg string
	Err error
}

// Error returns an error with Msg as its text that unwraps to Err.
func (f Fatal) Error() error { return fatalError(f) }

type fatalError Fatal

func (e fatalError) Error() string { return e.Msg }
func (e fatalError) Unwrap() error { return e.Err }

// recovering holds the ids of the goroutines inside a recovering section.
var recovering sync.Map // goroutine id -> struct{}

// Enter marks the current goroutine as recovering Fatal panics until the
// returned function is called.
func Enter() (exit func()) {
	id := goid()
	recovering.Store(id, struct{}{})
	return func() { recovering.Delete(id) }
}

// FromPanic returns the error for a recovered Fatal, prefixed with prefix
// ("embedded: storage failed"); it panics again with any other value. Call
// it with the value of recover() in a deferred function (recover works
// only there).
func FromPanic(r any, prefix string) error {
	if f, ok := r.(Fatal); ok {
		return fmt.Errorf("%s: %w", prefix, f.Error())
	}
	panic(r)
}

// goid returns the current goroutine's id. It parses runtime.Stack, which
// is slow, so it is only used on the rare paths around Fatalf.
func goid() uint64 {
	var buf [32]byte
	n := runtime.Stack(buf[:], false)
	s := strings.TrimPrefix(string(buf[:n]), "goroutine ")
	if i := strings.IndexByte(s, ' '); i > 0 {
		s = s[:i]
	}
	id, _ := strconv.ParseUint(s, 10, 64)
	return id
}
