package runtime

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"unicode/utf8"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/dsl"
)

// The headers the runtime adds to a dead letter (Config.DeadLetter), all
// text: the error, the step, where the record was read, the task and the
// app. duality.DeadLetterErrorHeader and the others are these.
const (
	DeadLetterErrorHeader     = "duality.error"
	DeadLetterStepHeader      = "duality.step"
	DeadLetterTopicHeader     = "duality.topic"
	DeadLetterPartitionHeader = "duality.partition"
	DeadLetterOffsetHeader    = "duality.offset"
	DeadLetterTaskHeader      = "duality.task"
	DeadLetterAppHeader       = "duality.app"
)

// DeadLetterTopicSuffix makes the default dead-letter topic of an app:
// "<app id>-dlq".
const DeadLetterTopicSuffix = "dlq"

// maxDeadLetterError bounds the error text a dead letter carries: a
// longer one is cut, on a rune boundary, and marked as cut.
const maxDeadLetterError = 8 << 10

// ErrNotDeadLetter is matched by the error of [ParseDeadLetter] for
// headers without a [DeadLetterErrorHeader].
var ErrNotDeadLetter = errors.New("duality: not a dead letter: no " + DeadLetterErrorHeader + " header")

// DeadLetter is what the headers of a dead letter say about the failure
// of its record (duality.DeadLetter is this type). Parse them with
// [ParseDeadLetter].
type DeadLetter struct {
	// Error is the error's text (cut after 8 KiB).
	Error string
	// Step is the name of the step that failed, empty when the error
	// does not name one.
	Step string
	// Topic, Partition and Offset name the record the app read.
	Topic     string
	Partition int32
	Offset    int64
	// Task is the task that read it, in TaskID's String form ("0_1").
	Task string
	// App is the id of the app.
	App string
}

// isDeadLetterHeader reports whether key is one of the headers the
// runtime adds to a dead letter.
func isDeadLetterHeader(key string) bool {
	switch key {
	case DeadLetterErrorHeader, DeadLetterStepHeader, DeadLetterTopicHeader, DeadLetterPartitionHeader,
		DeadLetterOffsetHeader, DeadLetterTaskHeader, DeadLetterAppHeader:
		return true
	}
	return false
}

// ParseDeadLetter reads the dead-letter headers among headers, the
// headers of a record of a dead-letter topic. It returns what they say and
// the record's own headers: the others, in their order, as the record
// had them when the app read it. Headers without a [DeadLetterErrorHeader]
// give an error matching [ErrNotDeadLetter] (and all of them as the
// record's own); a partition or offset header that is not a decimal
// number gives an error naming it. The returned headers share their
// bytes with headers.
func ParseDeadLetter(headers []broker.Header) (DeadLetter, []broker.Header, error) {
	var dl DeadLetter
	var own []broker.Header
	found := false
	var errs []error
	for _, h := range headers {
		if !isDeadLetterHeader(h.Key) {
			own = append(own, h)
			continue
		}
		v := string(h.Value)
		switch h.Key {
		case DeadLetterErrorHeader:
			dl.Error, found = v, true
		case DeadLetterStepHeader:
			dl.Step = v
		case DeadLetterTopicHeader:
			dl.Topic = v
		case DeadLetterPartitionHeader:
			p, err := strconv.ParseInt(v, 10, 32)
			if err != nil || p < 0 {
				errs = append(errs, fmt.Errorf("duality: dead letter: header %s %q is not a partition", h.Key, v))
			}
			dl.Partition = int32(p)
		case DeadLetterOffsetHeader:
			o, err := strconv.ParseInt(v, 10, 64)
			if err != nil || o < 0 {
				errs = append(errs, fmt.Errorf("duality: dead letter: header %s %q is not an offset", h.Key, v))
			}
			dl.Offset = o
		case DeadLetterTaskHeader:
			dl.Task = v
		case DeadLetterAppHeader:
			dl.App = v
		}
	}
	if !found {
		return DeadLetter{}, headers, ErrNotDeadLetter
	}
	return dl, own, errors.Join(errs...)
}

// deadLetterName returns the dead-letter topic of cfg for the app
// appID: Config.DeadLetterTopic, or "<app id>-dlq"; "" without the
// dead-letter policy.
func deadLetterName(appID string, cfg *Config) string {
	switch {
	case !cfg.DeadLetter:
		return ""
	case cfg.DeadLetterTopic != "":
		return cfg.DeadLetterTopic
	}
	return internalName(appID, DeadLetterTopicSuffix)
}

// describe returns the step pe names (the one of the *dsl.NodeError it
// wraps; "" when none) and the error's text. When pe's error is the
// step's own, the text is its cause's: the step is said once, in its
// header.
func describe(pe *ProcessingError) (step, text string) {
	if ne, ok := pe.Err.(*dsl.NodeError); ok {
		return ne.Node, ne.Err.Error()
	}
	if ne, ok := errors.AsType[*dsl.NodeError](pe.Err); ok {
		return ne.Node, pe.Err.Error()
	}
	return "", pe.Err.Error()
}

// cutError returns s cut to at most maxDeadLetterError bytes, on a rune
// boundary, marked as cut.
func cutError(s string) string {
	if len(s) <= maxDeadLetterError {
		return s
	}
	const mark = " ... (cut)"
	n := maxDeadLetterError - len(mark)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + mark
}

// deadLetter replaces the output and state changes of rec, which t
// failed on with pe (the output from mark on), with rec's dead letter:
// rec's key, value, timestamp and headers (without dead-letter headers
// it may carry from an earlier failure), and the dead-letter headers,
// bound for the app's dead-letter topic in the partition of rec's
// partition modulo the topic's count. The worker's commit writes it with
// rec's offset. A dead letter larger than the broker's record limit is
// an error that stops the app: rec is not lost, and a restart meets it
// again.
func (w *worker) deadLetter(t *task, mark int, rec *broker.Record, pe *ProcessingError) error {
	a := w.app
	topic := a.deadLetter
	n := w.topics[topic]
	if n < 1 {
		return fmt.Errorf("%w; dead-letter topic %q: %w", pe, topic, broker.ErrUnknownTopic)
	}
	headers := make([]broker.Header, 0, len(rec.Headers)+7)
	for _, h := range rec.Headers {
		if !isDeadLetterHeader(h.Key) {
			headers = append(headers, h)
		}
	}
	text := func(k, v string) { headers = append(headers, broker.Header{Key: k, Value: []byte(v)}) }
	step, msg := describe(pe)
	text(DeadLetterErrorHeader, cutError(msg))
	if step != "" {
		text(DeadLetterStepHeader, step)
	}
	text(DeadLetterTopicHeader, rec.Topic)
	text(DeadLetterPartitionHeader, strconv.FormatInt(int64(rec.Partition), 10))
	text(DeadLetterOffsetHeader, strconv.FormatInt(rec.Offset, 10))
	text(DeadLetterTaskHeader, t.id.String())
	text(DeadLetterAppHeader, a.appID)
	dl := broker.Record{
		Topic:     topic,
		Partition: rec.Partition % n,
		Key:       rec.Key,
		Value:     rec.Value,
		Headers:   headers,
		Timestamp: rec.Timestamp,
	}
	if limit := a.maxRecordBytes; limit > 0 {
		if size := broker.RecordSize(&dl); size > limit {
			return fmt.Errorf("%w; its dead letter does not fit the broker: %w", pe,
				&broker.RecordTooLargeError{Topic: topic, Size: size, Max: limit})
		}
	}
	w.undo(t, mark)
	w.out = append(w.out, dl)
	w.owner = append(w.owner, t.idx)
	w.deadLettered++
	t.deadLettered(step)
	t.log.Warn("sending record to the dead-letter topic after processing error",
		slog.String("topic", pe.Topic), slog.Int("partition", int(pe.Partition)),
		slog.Int64("offset", pe.Offset), slog.String("dead_letter_topic", topic), slog.Any("error", pe.Err))
	if cb := a.cfg.OnSkip; cb != nil {
		cb(pe)
	}
	return nil
}
