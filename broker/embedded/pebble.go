package embedded

import (
	"context"
	"fmt"
	"log/slog"

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
	o := &pebble.Options{
		FormatMajorVersion:    pebble.FormatNewest,
		MemTableSize:          memTableSize,
		CacheSize:             blockCacheSize,
		L0CompactionThreshold: l0CompactionThreshold,
		L0StopWritesThreshold: l0StopWritesThreshold,
	}
	o.EnsureDefaults()
	for _, f := range b.cfg.pebbleOpts {
		f(o)
	}
	o.FS = b.cfg.fs
	o.Logger = pebbleLogger{b.log}
	o.ReadOnly = false
	o.DisableWAL = false
	return o
}

// pebbleLogger sends Pebble's log lines to the broker's logger. Pebble calls
// Fatalf on errors it cannot continue from (a failed write-ahead log write);
// instead of exiting the process, Fatalf panics with a fatalError that the
// writer recovers and turns into an error that fails every later write.
type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Info("pebble: " + fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error("pebble: " + fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Log(context.Background(), slog.LevelError+4, "pebble: fatal: "+msg)
	panic(fatalError{msg})
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
