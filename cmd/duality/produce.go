package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/duality-streams/duality/broker"
)

// Produce batching: records go to the broker in calls of at most this
// many records or bytes, so memory stays bounded whatever the input.
const (
	produceBatchRecords = 1000
	produceBatchBytes   = 4 << 20
	maxLineBytes        = 64 << 20
)

// produceOptions are the flags of produce.
type produceOptions struct {
	partition  int32
	format     string
	separator  string
	keyCodec   string
	valueCodec string
	headers    []string
	quiet      bool
}

func (c *cli) produceCommand() *cobra.Command {
	var o produceOptions
	cmd := &cobra.Command{
		Use:   "produce TOPIC",
		Short: "Produce records read from standard input, one a line",
		Long: `produce reads records from standard input, one a line, and appends them
to TOPIC: to the partition of their key (Kafka's murmur2 partitioner),
or to --partition.

Formats (--format):
  kv     key<separator>value; the separator is a tab unless --separator
  value  the whole line is the value, without a key
  json   an object {"key": ..., "value": ..., "headers": ..., "timestamp": ...,
         "partition": ...}; every field may be left out. A null or missing
         value is a tombstone. headers is an object {"name": "value"} or an
         array [{"key": "name", "value": "value"}] (order and repeats kept);
         timestamp is RFC 3339 text or Unix milliseconds (default: now).

Keys and values are encoded with --key-codec and --value-codec as the app's
codecs encode them: string, bytes (base64 input), int64, json, msgpack (JSON
input). Blank lines are skipped, except with --format value.

Records go out in batches; a line that cannot be read stops the command
with its line number, after the records of the lines before it were
produced and before any after it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return c.produce(cmd.Context(), args[0], o) },
	}
	f := cmd.Flags()
	f.Int32VarP(&o.partition, "partition", "p", broker.PartitionByKey, "partition to write to; -1: the key's partition")
	f.StringVarP(&o.format, "format", "f", "kv", "input format: kv, value or json")
	f.StringVar(&o.separator, "separator", "\t", "separator of key and value (--format kv)")
	f.StringVar(&o.keyCodec, "key-codec", "string", "codec of keys: "+codecHelp)
	f.StringVar(&o.valueCodec, "value-codec", "string", "codec of values: "+codecHelp)
	f.StringArrayVarP(&o.headers, "header", "H", nil, "header name=value added to every record (repeatable)")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "do not report the count of records produced on standard error")
	return cmd
}

// lineParser turns one input line into a record.
type lineParser func(line []byte) (broker.Record, error)

func (c *cli) produce(ctx context.Context, topic string, o produceOptions) error {
	keyCodec, err := lookupCodec("key-codec", o.keyCodec)
	if err != nil {
		return err
	}
	valueCodec, err := lookupCodec("value-codec", o.valueCodec)
	if err != nil {
		return err
	}
	var headers []broker.Header
	for _, h := range o.headers {
		name, value, ok := strings.Cut(h, "=")
		if !ok || name == "" {
			return usagef("--header %q: use name=value", h)
		}
		headers = append(headers, broker.Header{Key: name, Value: []byte(value)})
	}
	if o.partition < 0 && o.partition != broker.PartitionByKey {
		return usagef("--partition %d: partitions are numbered from 0", o.partition)
	}
	var parse lineParser
	switch o.format {
	case "kv":
		if o.separator == "" {
			return usagef("--separator: must not be empty")
		}
		sep := []byte(o.separator)
		parse = func(line []byte) (broker.Record, error) {
			k, v, ok := bytes.Cut(line, sep)
			if !ok {
				return broker.Record{}, fmt.Errorf("no separator %q between key and value (use --format value for lines without keys)", o.separator)
			}
			key, err := keyCodec.fromText(string(k))
			if err != nil {
				return broker.Record{}, fmt.Errorf("key: %w", err)
			}
			value, err := valueCodec.fromText(string(v))
			if err != nil {
				return broker.Record{}, fmt.Errorf("value: %w", err)
			}
			return broker.Record{Key: key, Value: value, Partition: broker.PartitionByKey}, nil
		}
	case "value":
		parse = func(line []byte) (broker.Record, error) {
			value, err := valueCodec.fromText(string(line))
			if err != nil {
				return broker.Record{}, fmt.Errorf("value: %w", err)
			}
			return broker.Record{Value: value, Partition: broker.PartitionByKey}, nil
		}
	case "json":
		parse = func(line []byte) (broker.Record, error) { return parseJSONLine(line, keyCodec, valueCodec) }
	default:
		return usagef("--format %q: use kv, value or json", o.format)
	}

	return c.withBroker(ctx, existing, func(b broker.Broker) error {
		info, err := b.DescribeTopic(ctx, topic)
		if err != nil {
			return err
		}
		if o.partition >= info.Config.Partitions {
			return fmt.Errorf("--partition %d: topic %s has partitions 0 to %d", o.partition, topic, info.Config.Partitions-1)
		}
		in := &countingReader{r: c.stdin}
		work := progressWork{what: "produce " + topic, bytes: func() int64 { return in.n }}
		if f, ok := c.stdin.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
				work.totalBytes = st.Size() // a file of known size: the bar has a total
			}
		}
		p := c.newProgress(o.quiet, false, work)
		n, err := produceLines(ctx, b, in, topic, info.Config.Partitions, o, headers, parse, p)
		if err != nil {
			p.Fail()
			return err // it says how many records were produced
		}
		p.Done(fmt.Sprintf("produced %s to %s", records(n), topic))
		return nil
	})
}

// produceLines reads lines from in, parses them and produces them in
// batches. It returns how many records were produced.
func produceLines(ctx context.Context, b broker.Broker, in io.Reader, topic string, partitions int32,
	o produceOptions, headers []broker.Header, parse lineParser, p progress) (int, error) {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), maxLineBytes)
	var (
		batch     []broker.Record
		batchSize int
		produced  int
		lineNo    int
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := b.Produce(ctx, batch); err != nil {
			return fmt.Errorf("produce the records of lines up to %d: %w (%s before them produced; these may or may not have been)", lineNo, err, records(produced))
		}
		produced += len(batch)
		p.Add(len(batch))
		batch, batchSize = batch[:0], 0
		return nil
	}
	for sc.Scan() {
		lineNo++
		line := bytes.TrimSuffix(sc.Bytes(), []byte("\r"))
		if o.format != "value" && len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		r, err := parse(line)
		if r.Partition == broker.PartitionByKey {
			r.Partition = o.partition // a line's own partition wins
		}
		if err == nil && r.Partition >= partitions {
			err = fmt.Errorf("partition %d: topic %s has partitions 0 to %d", r.Partition, topic, partitions-1)
		}
		if err != nil {
			if ferr := flush(); ferr != nil {
				return produced, ferr
			}
			return produced, fmt.Errorf("line %d: %w; %s before it produced, none after it", lineNo, err, records(produced))
		}
		r.Topic = topic
		r.Headers = append(r.Headers, headers...)
		batch = append(batch, r)
		batchSize += broker.RecordSize(&r)
		if len(batch) >= produceBatchRecords || batchSize >= produceBatchBytes {
			if err := flush(); err != nil {
				return produced, err
			}
		}
	}
	if err := flush(); err != nil {
		return produced, err
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("longer than %d bytes", maxLineBytes)
		}
		return produced, fmt.Errorf("read line %d: %w; %s before it produced", lineNo+1, err, records(produced))
	}
	return produced, nil
}

// jsonLine is one line of --format json.
type jsonLine struct {
	Key       json.RawMessage `json:"key"`
	Value     json.RawMessage `json:"value"`
	Headers   json.RawMessage `json:"headers"`
	Timestamp json.RawMessage `json:"timestamp"`
	Partition *int32          `json:"partition"`
}

func isNull(raw json.RawMessage) bool { return len(raw) == 0 || string(raw) == "null" }

func parseJSONLine(line []byte, keyCodec, valueCodec *valueCodec) (broker.Record, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var l jsonLine
	if err := dec.Decode(&l); err != nil {
		return broker.Record{}, fmt.Errorf("not a JSON object with key, value, headers, timestamp and partition: %w", err)
	}
	if dec.More() {
		return broker.Record{}, errors.New("more than one JSON value on the line")
	}
	r := broker.Record{Partition: broker.PartitionByKey}
	var err error
	if !isNull(l.Key) {
		if r.Key, err = keyCodec.fromJSON(l.Key); err != nil {
			return r, fmt.Errorf("key: %w", err)
		}
	}
	if !isNull(l.Value) {
		if r.Value, err = valueCodec.fromJSON(l.Value); err != nil {
			return r, fmt.Errorf("value: %w", err)
		}
	}
	if r.Headers, err = parseHeaders(l.Headers); err != nil {
		return r, err
	}
	if r.Timestamp, err = parseTimestamp(l.Timestamp); err != nil {
		return r, err
	}
	if l.Partition != nil {
		if *l.Partition < 0 {
			return r, fmt.Errorf("partition %d: partitions are numbered from 0", *l.Partition)
		}
		r.Partition = *l.Partition
	}
	return r, nil
}

func parseHeaders(raw json.RawMessage) ([]broker.Header, error) {
	if isNull(raw) {
		return nil, nil
	}
	var list []struct {
		Key   string  `json:"key"`
		Value *string `json:"value"`
	}
	if err := json.Unmarshal(raw, &list); err == nil {
		hs := make([]broker.Header, len(list))
		for i, h := range list {
			hs[i].Key = h.Key
			if h.Value != nil {
				hs[i].Value = []byte(*h.Value)
			}
		}
		return hs, nil
	}
	var m map[string]*string
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf(`headers: want {"name": "value", ...} or [{"key": "name", "value": "value"}, ...], got %s`, truncate(raw))
	}
	hs := make([]broker.Header, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		h := broker.Header{Key: k}
		if v := m[k]; v != nil {
			h.Value = []byte(*v)
		}
		hs = append(hs, h)
	}
	return hs, nil
}

func parseTimestamp(raw json.RawMessage) (time.Time, error) {
	if isNull(raw) {
		return time.Time{}, nil
	}
	var ms int64
	if err := json.Unmarshal(raw, &ms); err == nil {
		if ms < 0 {
			return time.Time{}, fmt.Errorf("timestamp %d: must not be negative", ms)
		}
		return time.UnixMilli(ms), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		ts, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return time.Time{}, fmt.Errorf("timestamp %q: want RFC 3339 (2006-01-02T15:04:05Z) or Unix milliseconds", s)
		}
		if ts.UnixMilli() < 0 {
			return time.Time{}, fmt.Errorf("timestamp %q: before 1970", s)
		}
		return ts, nil
	}
	return time.Time{}, fmt.Errorf("timestamp %s: want RFC 3339 text or Unix milliseconds", truncate(raw))
}

// records says "1 record" or "n records".
func records(n int) string {
	if n == 1 {
		return "1 record"
	}
	return fmt.Sprintf("%d records", n)
}
