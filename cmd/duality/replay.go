package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
)

// replayOptions are the flags of replay.
type replayOptions struct {
	to         string
	byKey      bool
	keyCodec   string
	valueCodec string
	quiet      bool
}

func (c *cli) replayCommand() *cobra.Command {
	var o replayOptions
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Write dead letters, as consume prints them, back to the topics they were read from",
		Long: `replay reads records from standard input in the JSON lines consume prints,
typically of an app's dead-letter topic (duality.DeadLetterOnError), fixed
or not, and writes each back to the topic and partition its dead-letter
headers name (duality.topic, duality.partition): with its key, value,
timestamp and its own headers, without the dead-letter headers.

  duality --brokers k:9092 consume orders-app-dlq --value-codec json > dead.jsonl
  jq -c 'select(.dead_letter.step == "parse-order") | .value.amount |= tonumber' dead.jsonl |
    duality --brokers k:9092 replay --value-codec json

Give replay the codecs you gave consume. A key or value that is not null
is encoded with its codec; a null one whose line has "value_base64" (consume
could not decode it) is written as those bytes, unchanged; otherwise it is
null (a tombstone). With --key-codec bytes and --value-codec bytes the
bytes round-trip exactly whatever they hold. The timestamp is the line's:
a record that failed for its timestamp (before 1970) is refused until the
line is fixed.

--to writes every record to another topic (also records that are not dead
letters, which otherwise are refused); --by-key sends records to their key's
partition instead of the one they were read from. On an embedded data
directory consume and replay cannot run at once (one process at a time):
consume into a file, then replay it. A line that cannot be read stops the
command with its line number, after the records of the lines before it
were written and before any after it. Replaying a dead letter twice writes
it twice: choose the lines (jq, --from and --max of consume) you replay.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return c.replay(cmd.Context(), o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.to, "to", "", "write every record to this topic instead of the one its headers name")
	f.BoolVar(&o.byKey, "by-key", false, "write records to their key's partition, not the one they were read from")
	f.StringVar(&o.keyCodec, "key-codec", "string", "codec of keys: "+codecHelp)
	f.StringVar(&o.valueCodec, "value-codec", "string", "codec of values: "+codecHelp)
	f.BoolVarP(&o.quiet, "quiet", "q", false, "do not report the count of records written on standard error")
	return cmd
}

func (c *cli) replay(ctx context.Context, o replayOptions) error {
	keyCodec, err := lookupCodec("key-codec", o.keyCodec)
	if err != nil {
		return err
	}
	valueCodec, err := lookupCodec("value-codec", o.valueCodec)
	if err != nil {
		return err
	}
	if o.to != "" {
		if err := broker.ValidateTopicName(o.to); err != nil {
			return usagef("--to %q: %v", o.to, err)
		}
	}
	return c.withBroker(ctx, existing, func(b broker.Broker) error {
		in := &countingReader{r: c.stdin}
		work := progressWork{what: "replay", bytes: func() int64 { return in.n }}
		if f, ok := c.stdin.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
				work.totalBytes = st.Size() // a file of known size: the bar has a total
			}
		}
		r := &replayer{b: b, o: o, keyCodec: keyCodec, valueCodec: valueCodec, partitions: map[string]int32{}, written: map[string]int{},
			p: c.newProgress(o.quiet, false, work)}
		if err := r.run(ctx, in); err != nil {
			r.p.Fail()
			return err // it says how many records were written
		}
		r.p.Done(r.summary())
		return nil
	})
}

// replayer writes the records of replay's input lines in batches.
type replayer struct {
	b                    broker.Broker
	o                    replayOptions
	keyCodec, valueCodec *valueCodec
	// partitions are the partition counts of the topics written to.
	partitions map[string]int32
	batch      []broker.Record
	batchSize  int
	// produced counts the records written, written them per topic.
	produced int
	written  map[string]int
	// p follows the records written.
	p progress
}

// run reads the lines of in and writes their records.
func (r *replayer) run(ctx context.Context, in io.Reader) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), maxLineBytes)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		rec, err := r.parse(ctx, line)
		if err != nil {
			if ferr := r.flush(ctx, lineNo); ferr != nil {
				return ferr
			}
			return fmt.Errorf("line %d: %w; %s before it written, none after it", lineNo, err, records(r.produced))
		}
		r.batch = append(r.batch, rec)
		r.batchSize += broker.RecordSize(&rec)
		if len(r.batch) >= produceBatchRecords || r.batchSize >= produceBatchBytes {
			if err := r.flush(ctx, lineNo); err != nil {
				return err
			}
		}
	}
	if err := r.flush(ctx, lineNo); err != nil {
		return err
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("longer than %d bytes", maxLineBytes)
		}
		return fmt.Errorf("read line %d: %w; %s before it written", lineNo+1, err, records(r.produced))
	}
	return nil
}

// flush writes the batch; lineNo is the last line read, for the error.
func (r *replayer) flush(ctx context.Context, lineNo int) error {
	if len(r.batch) == 0 {
		return nil
	}
	if err := r.b.Produce(ctx, r.batch); err != nil {
		return fmt.Errorf("write the records of lines up to %d: %w (%s before them written; these may or may not have been)", lineNo, err, records(r.produced))
	}
	r.produced += len(r.batch)
	r.p.Add(len(r.batch))
	for i := range r.batch {
		r.written[r.batch[i].Topic]++
	}
	clear(r.batch)
	r.batch, r.batchSize = r.batch[:0], 0
	return nil
}

// summary says what was written: "replayed 3 records: orders 2, payments 1".
func (r *replayer) summary() string {
	var parts []string
	for _, topic := range slices.Sorted(maps.Keys(r.written)) {
		parts = append(parts, fmt.Sprintf("%s %d", topic, r.written[topic]))
	}
	if len(parts) == 0 {
		return "replayed 0 records"
	}
	return fmt.Sprintf("replayed %s: %s", records(r.produced), strings.Join(parts, ", "))
}

// replayLine is one line of consume's output, as replay reads it.
type replayLine struct {
	Topic       string          `json:"topic"`
	Partition   int32           `json:"partition"`
	Offset      int64           `json:"offset"`
	Timestamp   json.RawMessage `json:"timestamp"`
	Key         json.RawMessage `json:"key"`
	KeyError    string          `json:"key_error"`
	KeyBase64   *string         `json:"key_base64"`
	Value       json.RawMessage `json:"value"`
	ValueError  string          `json:"value_error"`
	ValueBase64 *string         `json:"value_base64"`
	Headers     []headerJSON    `json:"headers"`
	DeadLetter  json.RawMessage `json:"dead_letter"`
}

// parse turns a line into the record to write.
func (r *replayer) parse(ctx context.Context, line []byte) (broker.Record, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var l replayLine
	if err := dec.Decode(&l); err != nil {
		return broker.Record{}, fmt.Errorf("not a line of duality consume: %w", err)
	}
	if dec.More() {
		return broker.Record{}, errors.New("more than one JSON value on the line")
	}
	var headers []broker.Header
	for _, h := range l.Headers {
		bh := broker.Header{Key: h.Key}
		switch {
		case h.Value != nil:
			bh.Value = []byte(*h.Value)
		case h.ValueBase64 != "":
			v, err := base64.StdEncoding.DecodeString(h.ValueBase64)
			if err != nil {
				return broker.Record{}, fmt.Errorf("header %s: value_base64: %w", h.Key, err)
			}
			bh.Value = v
		}
		headers = append(headers, bh)
	}
	dl, own, err := duality.ParseDeadLetter(headers)
	dead := err == nil
	switch {
	case errors.Is(err, duality.ErrNotDeadLetter):
		if r.o.to == "" {
			return broker.Record{}, fmt.Errorf("record %s/%d@%d is not a dead letter (no %s header): give --to to write it somewhere",
				l.Topic, l.Partition, l.Offset, duality.DeadLetterErrorHeader)
		}
	case err != nil:
		return broker.Record{}, err
	case dl.Topic == "" && r.o.to == "":
		return broker.Record{}, fmt.Errorf("dead letter %s/%d@%d names no topic (%s): give --to", l.Topic, l.Partition, l.Offset, duality.DeadLetterTopicHeader)
	}
	rec := broker.Record{Topic: dl.Topic, Partition: dl.Partition, Headers: own}
	if r.o.to != "" {
		rec.Topic = r.o.to
	}
	if r.o.byKey || !dead {
		rec.Partition = broker.PartitionByKey
	}
	if rec.Key, err = replayBytes(l.Key, l.KeyBase64, l.KeyError, r.keyCodec, "key"); err != nil {
		return broker.Record{}, err
	}
	if rec.Value, err = replayBytes(l.Value, l.ValueBase64, l.ValueError, r.valueCodec, "value"); err != nil {
		return broker.Record{}, err
	}
	if isNull(l.Timestamp) {
		return broker.Record{}, errors.New("no timestamp: replay keeps the record's own")
	}
	if rec.Timestamp, err = parseTimestamp(l.Timestamp); err != nil {
		return broker.Record{}, err
	}
	n, ok := r.partitions[rec.Topic]
	if !ok {
		info, err := r.b.DescribeTopic(ctx, rec.Topic)
		if err != nil {
			return broker.Record{}, err
		}
		n = info.Config.Partitions
		r.partitions[rec.Topic] = n
	}
	if rec.Partition >= n {
		return broker.Record{}, fmt.Errorf("partition %d: topic %s has partitions 0 to %d (use --by-key)", rec.Partition, rec.Topic, n-1)
	}
	return rec, nil
}

// replayBytes returns the bytes of a key or value (what) of a line: raw
// encoded with vc when not null, else the bytes of b64 (what consume
// printed for bytes its codec could not decode), else nil. A line whose
// bytes consume could not decode nor print is refused with the error
// consume gave (decodeErr).
func replayBytes(raw json.RawMessage, b64 *string, decodeErr string, vc *valueCodec, what string) ([]byte, error) {
	switch {
	case !isNull(raw):
		b, err := vc.fromJSON(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		return b, nil
	case b64 != nil:
		b, err := base64.StdEncoding.DecodeString(*b64)
		if err != nil {
			return nil, fmt.Errorf("%s_base64: %w", what, err)
		}
		return b, nil
	case decodeErr != "":
		return nil, fmt.Errorf("%s: null with %s_error %q and no %s_base64", what, what, decodeErr, what)
	}
	return nil, nil
}
