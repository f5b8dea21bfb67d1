package embedded

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// Tuned Pebble settings; see the package documentation and
// BenchmarkAppend for the measurements behind them.
const (
	memTableSize          = 64 << 20
	blockCacheSize        = 64 << 20
	l0CompactionThreshold = 4
	l0StopWritesThreshold = 32
)

// pebbleOptions returns the Pebble options: tuned defaults, then the
// user's WithPebbleOptions functions, then the settings the broker relies on.
func (b *Broker) pebbleOptions() *pebble.Options {
	logger := pebbleLogger{b.log}
	o := &pebble.Options{
		FormatMajorVersion:    pebble.FormatNewest,
		MemTableSize:          memTableSize,
		CacheSize:             blockCacheSize,
		L0CompactionThreshold: l0CompactionThreshold,
		L0StopWritesThreshold: l0StopWritesThreshold,
		Logger:                logger,
		EventListener: &pebble.EventListener{
			// Pebble's default exits the process on a corrupt block. The
			// read that found it returns an error matching ErrCorrupt
			// anyway, so log it and carry on.
			DataCorruption: func(info pebble.DataCorruptionInfo) {
				b.log.Error("embedded: on-disk corruption", "path", info.Path, "error", info.Details)
			},
		},
	}
	o.EnsureDefaults()
	for _, f := range b.cfg.pebbleOpts {
		f(o)
	}
	o.FS = b.cfg.fs
	o.Logger = logger
	o.ReadOnly = false
	o.DisableWAL = false
	return o
}

// pebbleLogger sends Pebble's log lines to the broker's logger.
//
// Pebble calls Fatalf on errors it cannot continue from (a failed
// write-ahead log or manifest write) and expects it not to return. On a
// goroutine of the broker that recovers it (Open, the writer, the syncer;
// see recoverable), Fatalf panics with a fatalError that becomes an error:
// Open fails, or the writer refuses every later write. On any other
// goroutine (Pebble's background flushes and compactions) it prints the
// error to stderr and exits the process with status 70, as Pebble's own
// default logger does: the state is unknown, and a clear exit beats a
// panic in a goroutine nobody can recover.
type pebbleLogger struct{ log *slog.Logger }

// recoverable holds the ids of the goroutines currently inside a section
// that recovers fatalError panics.
var recoverable sync.Map // goroutine id -> struct{}

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

// enterRecoverable marks the current goroutine as recovering fatalError
// panics until the returned function is called.
func enterRecoverable() (exit func()) {
	id := goid()
	recoverable.Store(id, struct{}{})
	return func() { recoverable.Delete(id) }
}

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Info("pebble: " + fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error("pebble: " + fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Log(context.Background(), slog.LevelError+4, "pebble: fatal: "+msg)
	if _, ok := recoverable.Load(goid()); ok {
		panic(fatalError{msg})
	}
	fmt.Fprintf(os.Stderr, "embedded: fatal storage error: %s\n", msg)
	os.Exit(70)
}

type fatalError struct{ msg string }

// recoverFatal turns a fatalError panic into an error in *errp; any other
// panic continues.
func recoverFatal(errp *error) {
	r := recover()
	if r == nil {
		return
	}
	if f, ok := r.(fatalError); ok {
		*errp = fmt.Errorf("embedded: storage failed: %s", f.msg)
		return
	}
	panic(r)
}
