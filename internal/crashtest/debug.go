package crashtest

import (
	"fmt"
	"log/slog"
	"os"
)

// debugEnv is the environment variable that turns the debug output of
// crash tests on: CRASHDEBUG=1 shows the children's standard error as
// they run (not only when one fails), the apps' log at Info (see
// DebugLogger), the Kafka clients' log at Info and the progress each
// child reports as it changes; CRASHDEBUG=2 logs the apps at Debug.
const debugEnv = "CRASHDEBUG"

// debugLevel returns the CRASHDEBUG level: 0 (off), 1 or 2.
func debugLevel() int {
	switch os.Getenv(debugEnv) {
	case "", "0":
		return 0
	case "2":
		return 2
	}
	return 1
}

// DebugLogger returns, when CRASHDEBUG is set, a logger of a child's app
// that writes to the child's standard error, each line with the
// process id and env.Instance; nil otherwise (keep the app's default).
func DebugLogger(env *Env) *slog.Logger {
	level := debugLevel()
	if level == 0 {
		return nil
	}
	l := slog.LevelInfo
	if level > 1 {
		l = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})).
		With("pid", os.Getpid(), "instance", env.Instance)
}

// debugProgress writes a child's progress line to the standard error
// when CRASHDEBUG is set and it differs from the last one (*last).
func debugProgress(who string, pid int, line string, last *string) {
	if debugLevel() == 0 || line == *last {
		return
	}
	*last = line
	fmt.Fprintf(os.Stderr, "crashtest: %s (pid %d): %s\n", who, pid, line)
}
