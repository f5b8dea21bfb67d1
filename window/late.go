package window

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/duality-streams/duality/stream"
)

// lateLogInterval is the least time between two Warn lines of one step
// about the records it dropped as late.
const lateLogInterval = 10 * time.Second

// lateLog reports the records a windowed step (aggregation or join) drops
// as late, at Warn, at most once per lateLogInterval of the app's clock
// for the step over all its tasks, each line with the number of records
// dropped since the previous line. Late records are silent data loss
// otherwise: a windowed step behind a repartition topic whose writers
// work through a backlog can drop a large share of its input to a grace
// period that is too short, and only a log line at Warn makes that
// visible. It is safe for concurrent use by the step's tasks.
type lateLog struct {
	// next is when (unix ns by the app's clock) the next line may be
	// written; 0: at the next drop.
	next atomic.Int64
	// dropped and worst are the records dropped since the last line and
	// the largest lateness (ms) among them.
	dropped, worst atomic.Int64
}

// drop counts one record dropped as late and writes a line when one is
// due. lateness is stream time minus the record's timestamp (ms); grace is
// the step's grace period (ms); now is the app's clock. Between two
// lines it allocates nothing unless Debug is on: a backlog can make a
// large share of the records late.
func (l *lateLog) drop(ctx context.Context, logger *slog.Logger, now time.Time, rc *stream.RecordContext, ts, st, grace int64) {
	l.dropped.Add(1)
	lateness := st - ts
	for w := l.worst.Load(); lateness > w && !l.worst.CompareAndSwap(w, lateness); w = l.worst.Load() {
	}
	if logger.Enabled(ctx, slog.LevelDebug) {
		logger.DebugContext(ctx, "dropped a late record: its windows are closed",
			"topic", rc.Topic, "partition", rc.Partition, "offset", rc.Offset,
			"timestamp", ts, "stream_time", st)
	}
	t := now.UnixNano()
	next := l.next.Load()
	if (next != 0 && t < next) || !l.next.CompareAndSwap(next, t+int64(lateLogInterval)) {
		return
	}
	logger.WarnContext(ctx, "dropped late records: their windows had closed (see the window package docs on grace)",
		"dropped", l.dropped.Swap(0),
		"lateness", time.Duration(l.worst.Swap(0))*time.Millisecond,
		"grace", time.Duration(grace)*time.Millisecond,
		"topic", rc.Topic, "partition", rc.Partition, "offset", rc.Offset)
}
