package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
)

// consumePollWait is how long one Poll waits for records; a follow
// loop re-polls, so it bounds only how late a Ctrl-C is noticed when
// the broker ignores it.
const consumePollWait = time.Second

// consumeOptions are the flags of consume.
type consumeOptions struct {
	partition  int32
	from       string
	follow     bool
	max        int
	quiet      bool
	keyCodec   string
	valueCodec string
}

func (c *cli) consumeCommand() *cobra.Command {
	var o consumeOptions
	cmd := &cobra.Command{
		Use:   "consume TOPIC",
		Short: "Print a topic's records as JSON lines",
		Long: `consume prints the records of TOPIC (all its partitions, or --partition)
as JSON lines, one record a line:

  {"topic":"orders","partition":0,"offset":7,"timestamp":"2026-03-01T12:00:00.123Z",
   "key":"alice","value":{"total":42},"headers":[{"key":"source","value":"web"}]}

Keys and values are decoded with --key-codec and --value-codec, as the app's
codecs encode them: string, bytes (shown as base64), int64, json, msgpack
(shown as JSON). A null value is a tombstone. A key or value the codec
cannot decode is shown as "key_error"/"value_error" with its bytes in
"key_base64"/"value_base64", and consumption goes on.

--from says where to start in each partition: beginning (the default), end,
an offset (with --partition, unless the topic has one partition), -N (the
last N records of each partition), a time (RFC 3339, such as
2026-03-01T12:00:00Z) or a duration ago (-1h30m): the first record at or
after that time.

Without --follow consume stops at the partitions' ends as of its start;
with --follow (on a Kafka cluster) it waits for new records until
interrupted (Ctrl-C) or --max records were printed. Records of transactions not yet committed
are never shown.

A record of a dead-letter topic (duality.DeadLetterOnError) also gets a
"dead_letter" object decoded from its duality.* headers:

  "dead_letter":{"error":"decode value: codec: invalid encoding: int64 needs 8 bytes, got 3",
   "step":"parse-order","topic":"orders","partition":2,"offset":41,"task":"0_2","app":"orders-app"}

duality replay writes such lines back to the topics they were read from.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return c.consume(cmd.Context(), args[0], o) },
	}
	f := cmd.Flags()
	f.Int32VarP(&o.partition, "partition", "p", -1, "read only this partition; -1: all")
	f.StringVar(&o.from, "from", "beginning", "where to start: beginning, end, OFFSET, -N, a time (RFC 3339) or -DURATION")
	f.BoolVarP(&o.follow, "follow", "F", false, "keep waiting for new records")
	f.IntVarP(&o.max, "max", "n", 0, "stop after this many records (0: no limit)")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "do not report the count of records printed on standard error")
	f.StringVar(&o.keyCodec, "key-codec", "string", "codec of keys: "+codecHelp)
	f.StringVar(&o.valueCodec, "value-codec", "string", "codec of values: "+codecHelp)
	return cmd
}

// startPoint is a parsed --from.
type startPoint struct {
	kind   string // "beginning", "end", "offset", "last", "time"
	offset int64  // offset, or the count of "last"
	time   time.Time
}

func parseFrom(s string, now time.Time) (startPoint, error) {
	switch s {
	case "beginning", "earliest":
		return startPoint{kind: "beginning"}, nil
	case "end", "latest":
		return startPoint{kind: "end"}, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return startPoint{kind: "last", offset: -n}, nil
		}
		return startPoint{kind: "offset", offset: n}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return startPoint{kind: "time", time: t}, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d < 0 {
		return startPoint{kind: "time", time: now.Add(d)}, nil
	}
	return startPoint{}, usagef("--from %q: use beginning, end, an offset, -N, a time (RFC 3339) or a negative duration (-1h)", s)
}

func (c *cli) consume(ctx context.Context, topic string, o consumeOptions) error {
	keyCodec, err := lookupCodec("key-codec", o.keyCodec)
	if err != nil {
		return err
	}
	valueCodec, err := lookupCodec("value-codec", o.valueCodec)
	if err != nil {
		return err
	}
	from, err := parseFrom(o.from, time.Now())
	if err != nil {
		return err
	}
	if o.max < 0 {
		return usagef("--max %d: must not be negative", o.max)
	}
	if o.follow && c.dir != "" {
		return usagef("--follow needs --brokers: an embedded data directory is open in one process at a time, so nothing can write to it while duality reads it")
	}
	if o.partition < -1 {
		return usagef("--partition %d: partitions are numbered from 0", o.partition)
	}
	return c.withBroker(ctx, existing, func(b broker.Broker) error {
		info, err := b.DescribeTopic(ctx, topic)
		if err != nil {
			return err
		}
		n := info.Config.Partitions
		var parts []int32
		switch {
		case o.partition >= n:
			return fmt.Errorf("--partition %d: topic %s has partitions 0 to %d", o.partition, topic, n-1)
		case o.partition >= 0:
			parts = []int32{o.partition}
		case from.kind == "offset" && n > 1:
			return usagef("--from %d: an offset names a position in one partition: add --partition (topic %s has %d)", from.offset, topic, n)
		default:
			for p := range n {
				parts = append(parts, p)
			}
		}
		positions := make(map[broker.TopicPartition]int64, len(parts))
		ends := make(map[broker.TopicPartition]int64, len(parts))
		for _, p := range parts {
			tp := broker.TopicPartition{Topic: topic, Partition: p}
			offs, err := b.ListOffsets(ctx, topic, p)
			if err != nil {
				return err
			}
			pos, err := startOffset(ctx, b, tp, offs, from)
			if err != nil {
				return err
			}
			positions[tp] = pos
			if o.follow || pos < offs.Latest {
				ends[tp] = offs.Latest
			}
		}
		work := progressWork{what: "consume " + topic}
		if !o.follow {
			for tp, end := range ends {
				work.total += end - positions[tp] // an upper bound: transaction markers take offsets
			}
			if o.max > 0 {
				work.total = min(work.total, int64(o.max))
			}
		}
		p := c.newProgress(o.quiet, true, work)
		printed, err := c.read(ctx, b, positions, ends, o, keyCodec, valueCodec, p)
		if err != nil {
			p.Fail()
			return err
		}
		p.Done(fmt.Sprintf("consumed %s from %s", records(printed), topic))
		return nil
	})
}

// startOffset resolves --from for one partition holding offs.
func startOffset(ctx context.Context, b broker.Broker, tp broker.TopicPartition, offs broker.Offsets, from startPoint) (int64, error) {
	switch from.kind {
	case "beginning":
		return offs.Earliest, nil
	case "end":
		return offs.Latest, nil
	case "last":
		return max(offs.Earliest, offs.Latest-from.offset), nil
	case "time":
		return b.OffsetForTime(ctx, tp.Topic, tp.Partition, from.time)
	}
	if from.offset < offs.Earliest || from.offset > offs.Latest {
		return 0, fmt.Errorf("--from %d: partition %d of %s holds offsets %d to %d", from.offset, tp.Partition, tp.Topic, offs.Earliest, offs.Latest-1)
	}
	return from.offset, nil
}

// read polls the partitions from positions and prints their records.
// Without o.follow it stops when every partition in ends is read up to
// its end there; a partition not in ends has nothing to read.
func (c *cli) read(ctx context.Context, b broker.Broker, positions, ends map[broker.TopicPartition]int64,
	o consumeOptions, keyCodec, valueCodec *valueCodec, p progress) (printed int, err error) {
	if len(ends) == 0 {
		return 0, nil
	}
	cons, err := b.NewConsumer(broker.ConsumerOptions{})
	if err != nil {
		return printed, err
	}
	defer cons.Close()
	assign := make(map[broker.TopicPartition]int64, len(ends))
	for tp := range ends {
		assign[tp] = positions[tp]
	}
	cons.Assign(assign)
	out := bufio.NewWriter(c.stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	shown := 0 // printed and counted on p
	for len(ends) > 0 {
		polled, err := cons.Poll(ctx, consumePollWait)
		if err != nil {
			if o.follow && errors.Is(err, context.Canceled) && ctx.Err() != nil {
				return printed, nil // interrupted: the way a follow ends
			}
			return printed, err
		}
		for _, r := range polled.Records {
			tp := broker.TopicPartition{Topic: r.Topic, Partition: r.Partition}
			end, ok := ends[tp]
			if !ok || !o.follow && r.Offset >= end {
				continue
			}
			if err := enc.Encode(newRecordJSON(&r, keyCodec, valueCodec)); err != nil {
				return printed, err
			}
			printed++
			if o.max > 0 && printed >= o.max {
				p.Add(printed - shown)
				return printed, out.Flush()
			}
			if !o.follow && r.Offset+1 >= end {
				delete(ends, tp)
				cons.Unassign(tp)
			}
		}
		if !o.follow {
			for tp, at := range polled.Ends {
				if end, ok := ends[tp]; ok && at >= end {
					delete(ends, tp)
					cons.Unassign(tp)
				}
			}
		}
		p.Add(printed - shown)
		shown = printed
		if err := out.Flush(); err != nil {
			return printed, err
		}
	}
	return printed, nil
}

// recordJSON is one line of consume's output.
type recordJSON struct {
	Topic       string          `json:"topic"`
	Partition   int32           `json:"partition"`
	Offset      int64           `json:"offset"`
	Timestamp   string          `json:"timestamp"`
	Key         json.RawMessage `json:"key"`
	KeyError    string          `json:"key_error,omitempty"`
	KeyBase64   string          `json:"key_base64,omitempty"`
	Value       json.RawMessage `json:"value"`
	ValueError  string          `json:"value_error,omitempty"`
	ValueBase64 string          `json:"value_base64,omitempty"`
	Headers     []headerJSON    `json:"headers,omitempty"`
	// DeadLetter is what the dead-letter headers say, for a record of
	// a dead-letter topic.
	DeadLetter *deadLetterJSON `json:"dead_letter,omitempty"`
}

// deadLetterJSON shows the headers of a dead letter
// (duality.DeadLetterOnError): the error, the step, and where the record
// was read. Invalid says what is wrong with headers that do not parse.
type deadLetterJSON struct {
	Error     string `json:"error"`
	Step      string `json:"step,omitempty"`
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Task      string `json:"task,omitempty"`
	App       string `json:"app,omitempty"`
	Invalid   string `json:"invalid,omitempty"`
}

// headerJSON is a header; a value that is not UTF-8 text is shown as
// base64 in ValueBase64 instead.
type headerJSON struct {
	Key         string  `json:"key"`
	Value       *string `json:"value"`
	ValueBase64 string  `json:"value_base64,omitempty"`
}

var jsonNull = json.RawMessage("null")

func newRecordJSON(r *broker.Record, keyCodec, valueCodec *valueCodec) recordJSON {
	out := recordJSON{
		Topic:     r.Topic,
		Partition: r.Partition,
		Offset:    r.Offset,
		Timestamp: r.Timestamp.UTC().Format(time.RFC3339Nano),
	}
	out.Key, out.KeyError, out.KeyBase64 = render(r.Key, keyCodec)
	out.Value, out.ValueError, out.ValueBase64 = render(r.Value, valueCodec)
	for _, h := range r.Headers {
		hj := headerJSON{Key: h.Key}
		switch {
		case h.Value == nil:
		case utf8.Valid(h.Value):
			s := string(h.Value)
			hj.Value = &s
		default:
			hj.ValueBase64 = base64.StdEncoding.EncodeToString(h.Value)
		}
		out.Headers = append(out.Headers, hj)
	}
	if dl, _, err := duality.ParseDeadLetter(r.Headers); !errors.Is(err, duality.ErrNotDeadLetter) {
		out.DeadLetter = &deadLetterJSON{Error: dl.Error, Step: dl.Step, Topic: dl.Topic, Partition: dl.Partition,
			Offset: dl.Offset, Task: dl.Task, App: dl.App}
		if err != nil {
			out.DeadLetter.Invalid = err.Error()
		}
	}
	return out
}

// render decodes b with vc: its JSON, or null with the error and b in
// base64.
func render(b []byte, vc *valueCodec) (json.RawMessage, string, string) {
	if b == nil {
		return jsonNull, "", ""
	}
	j, err := vc.toJSON(b)
	if err != nil {
		return jsonNull, fmt.Sprintf("%s codec: %v", vc.name, err), base64.StdEncoding.EncodeToString(b)
	}
	return j, "", ""
}
