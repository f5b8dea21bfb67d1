package window

import "fmt"

// aggregateDetail is the line Describe prints below a windowed
// aggregation: its windows, the retention of its store and its emit
// strategy, e.g. "windows: tumbling(size 1m0s, grace 10s), retention
// 1m10s, emit: on window close".
func aggregateDetail(w Windows, cfg config) string {
	emit := "every update"
	switch {
	case cfg.final:
		emit = "on window close"
	case cfg.cache:
		emit = "newest update per window per commit"
	}
	return withStreamTime(fmt.Sprintf("windows: %s, retention %s, emit: %s", w, w.Retention(), emit), cfg)
}

// joinDetail is the line Describe prints below a stream-stream join: its
// windows, how long its store keeps records and when unmatched records
// are emitted, e.g. "windows: join(before 5s, after 5s, grace 1s),
// retention 11.001s, unmatched left records: on window close".
func joinDetail(w JoinWindows, kind joinKind, cfg config) string {
	s := fmt.Sprintf("windows: %s, retention %s", w, w.retention())
	switch kind {
	case leftJoin:
		s += ", unmatched left records: on window close"
	case outerJoin:
		s += ", unmatched records: on window close"
	}
	return withStreamTime(s, cfg)
}

// withStreamTime adds WithTaskStreamTime to a step's detail s.
func withStreamTime(s string, cfg config) string {
	if cfg.task {
		s += ", stream time: the task's"
	}
	return s
}
