package table_test

// Semantic scripts: readable records-in, table-and-records-out tests of the
// table package, run with github.com/cockroachdb/datadriven through
// streamtest. Each file testdata/scripts/<name>.txt is one script; run them
// with
//
//	go test ./table -run TestScripts
//	go test ./table -run TestScripts/count -rewrite   # rewrite expectations
//
// A script starts with a topology command and then pipes records and
// checks tables and outputs. Commands:
//
//	topology name=<name> [partitions=<n>]
//	    Builds the registered topology <name> (see scriptTopologies) and
//	    starts a streamtest driver with app id "app" and <n> partitions
//	    per topic (default 1). Prints nothing.
//
//	describe
//	    Prints the topology's Describe output.
//
//	pipe topic=<topic>
//	<key> <value>
//	...
//	    Pipes one record per input line into <topic>, in order, each
//	    processed to the end before the next. The key is the first field,
//	    the value the rest of the line (so keys have no spaces; `""` is
//	    the empty string in string fields). "<nil>" as the value pipes a
//	    tombstone (a nil value), "<nil>" as the key a record without a
//	    key. Prints nothing, or "error: ..." for a failed record (the
//	    later lines are not piped).
//
//	table store=<store>
//	    Prints the store's rows, one "<key> <value>" line each, sorted by
//	    key (all partitions), or "<empty>".
//
//	output topic=<topic> [partitions]
//	    Prints the records written to <topic> since the last output of
//	    it, one "<key> <value>" line each ("<nil>" for a tombstone), in
//	    the order of the input records that caused them (pipe gives each
//	    input record its own timestamp, one millisecond after the
//	    previous one, and outputs keep it), then by partition and offset;
//	    with partitions, each line starts with "p<partition> ". Prints
//	    "<empty>" when there is none. The changelog of store s is the
//	    topic "app-s-changelog"; its records are written at the commit
//	    after each input record.
//
// Topologies are Go code registered in scriptTopologies by name, with the
// text formats of the topics and stores the script uses. To add one (for
// example the foreign-key join), add an entry from an init function in
// another _test.go file of package table_test:
//
//	func init() {
//		scriptTopologies["fk-join"] = scriptTopology{
//			build:  func(b *stream.Builder) { ... },
//			topics: map[string]kvText{"orders": {strText, jsonText[order]()}, ...},
//			stores: map[string]kvText{...},
//		}
//	}
//
// and a script testdata/scripts/fk-join.txt starting with
// "topology name=fk-join".

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
)

// text converts one part of a record between its script text and its
// encoding.
type text struct {
	parse  func(string) ([]byte, error)
	format func([]byte) (string, error)
}

// kvText is the text form of a topic's or a store's keys and values.
type kvText struct{ key, value text }

// textOf returns the text form of values of codec c: parse reads the
// script text, show writes it.
func textOf[T any](c codec.Codec[T], parse func(string) (T, error), show func(T) string) text {
	return text{
		parse: func(s string) ([]byte, error) {
			v, err := parse(s)
			if err != nil {
				return nil, err
			}
			return c.Append(nil, v)
		},
		format: func(b []byte) (string, error) {
			v, err := c.Decode(b)
			if err != nil {
				return "", err
			}
			return show(v), nil
		},
	}
}

var (
	// strText is a string as it is, `""` for the empty string.
	strText = textOf(codec.String(),
		func(s string) (string, error) {
			if s == `""` {
				return "", nil
			}
			return s, nil
		},
		func(s string) string {
			if s == "" {
				return `""`
			}
			return s
		})
	// i64Text is a decimal int64.
	i64Text = textOf(codec.Int64(), func(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) },
		func(n int64) string { return strconv.FormatInt(n, 10) })
)

// jsonText is a value of codec.JSON[T] written as its JSON text.
func jsonText[T any]() text {
	c := codec.JSON[T]()
	return textOf(c, func(s string) (T, error) { return c.Decode([]byte(s)) },
		func(v T) string {
			b, err := c.Append(nil, v)
			if err != nil {
				return "<" + err.Error() + ">"
			}
			return string(b)
		})
}

// scriptTopology is a topology scripts can run: build adds its steps, and
// topics and stores give the text forms of what scripts pipe and read.
type scriptTopology struct {
	build  func(b *stream.Builder)
	topics map[string]kvText
	stores map[string]kvText
}

// scriptTopologies are the topologies of the scripts, by name; the
// topologies themselves are in script_topologies_test.go.
var scriptTopologies = map[string]scriptTopology{}

func TestScripts(t *testing.T) {
	datadriven.Walk(t, "testdata/scripts", func(t *testing.T, path string) {
		var s scriptRun
		defer s.close(t)
		datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
			return s.run(t, td)
		})
	})
}

// scriptRun is the state of one script.
type scriptRun struct {
	topo scriptTopology
	desc string
	d    *streamtest.Driver
	// read counts the records of each topic and partition that output
	// has printed.
	read map[string]map[int32]int
}

func (s *scriptRun) close(t *testing.T) {
	if s.d != nil {
		require.NoError(t, s.d.Close())
	}
}

func (s *scriptRun) run(t *testing.T, td *datadriven.TestData) string {
	if td.Cmd != "topology" && s.d == nil {
		td.Fatalf(t, "%s before topology", td.Cmd)
	}
	switch td.Cmd {
	case "topology":
		var name string
		td.ScanArgs(t, "name", &name)
		partitions := 1
		td.MaybeScanArgs(t, "partitions", &partitions)
		topo, ok := scriptTopologies[name]
		if !ok {
			td.Fatalf(t, "no topology %q", name)
		}
		b := stream.NewBuilder()
		topo.build(b)
		built, err := b.Build()
		require.NoError(t, err)
		s.close(t)
		d, err := streamtest.New(built, streamtest.AppID("app"), streamtest.DefaultPartitions(int32(partitions)))
		require.NoError(t, err)
		s.topo, s.desc, s.d, s.read = topo, built.Describe(), d, map[string]map[int32]int{}
		return ""

	case "describe":
		return s.desc

	case "pipe":
		var topic string
		td.ScanArgs(t, "topic", &topic)
		form := s.form(t, td, s.topo.topics, topic)
		for line := range strings.Lines(td.Input) {
			line = strings.TrimSpace(line)
			if line == "" {
				continue
			}
			k, v, _ := strings.Cut(line, " ")
			v = strings.TrimSpace(v)
			rec := broker.Record{Topic: topic, Partition: broker.PartitionByKey}
			var err error
			if k != "<nil>" {
				if rec.Key, err = form.key.parse(k); err != nil {
					td.Fatalf(t, "key %q: %v", k, err)
				}
			}
			if v != "<nil>" {
				if rec.Value, err = form.value.parse(v); err != nil {
					td.Fatalf(t, "value %q: %v", v, err)
				}
			}
			// One millisecond per input record: outputs carry the
			// timestamp of the record that caused them, and output
			// sorts by it.
			s.d.Advance(time.Millisecond)
			if err := s.d.PipeRaw(t.Context(), rec); err != nil {
				return fmt.Sprintf("error: %v\n", err)
			}
		}
		return ""

	case "table":
		var store string
		td.ScanArgs(t, "store", &store)
		form := s.form(t, td, s.topo.stores, store)
		parts, err := s.d.StorePartitions(store)
		require.NoError(t, err)
		var rows []string
		for p := range parts {
			all, errf := s.d.StoreAll(store, p)
			for k, v := range all {
				rows = append(rows, s.line(t, td, form, k, v))
			}
			require.NoError(t, errf())
		}
		slices.Sort(rows)
		return lines(rows)

	case "output":
		var topic string
		td.ScanArgs(t, "topic", &topic)
		form := s.form(t, td, s.topo.topics, topic)
		if s.read[topic] == nil {
			s.read[topic] = map[int32]int{}
		}
		seen := map[int32]int{}
		var recs []broker.Record
		for _, r := range s.d.Records(topic) {
			seen[r.Partition]++
			if seen[r.Partition] <= s.read[topic][r.Partition] {
				continue
			}
			s.read[topic][r.Partition]++
			recs = append(recs, r)
		}
		// In the order of the input records that caused them (each has
		// its own timestamp), then by partition and offset.
		slices.SortStableFunc(recs, func(a, b broker.Record) int { return a.Timestamp.Compare(b.Timestamp) })
		out := make([]string, 0, len(recs))
		for _, r := range recs {
			l := s.line(t, td, form, r.Key, r.Value)
			if td.HasArg("partitions") {
				l = fmt.Sprintf("p%d %s", r.Partition, l)
			}
			out = append(out, l)
		}
		return lines(out)
	}
	td.Fatalf(t, "unknown command %q", td.Cmd)
	return ""
}

// form returns the text form of name; changelog topics "app-<s>-changelog"
// take the form of store s.
func (s *scriptRun) form(t *testing.T, td *datadriven.TestData, forms map[string]kvText, name string) kvText {
	if f, ok := forms[name]; ok {
		return f
	}
	if store, ok := strings.CutPrefix(name, "app-"); ok {
		if store, ok = strings.CutSuffix(store, "-changelog"); ok {
			if f, ok := s.topo.stores[store]; ok {
				return f
			}
		}
	}
	td.Fatalf(t, "the topology declares no text form for %q", name)
	return kvText{}
}

// line formats one record or row: "<key> <value>", "<nil>" for an absent
// key or value.
func (s *scriptRun) line(t *testing.T, td *datadriven.TestData, form kvText, k, v []byte) string {
	ks, vs := "<nil>", "<nil>"
	var err error
	if k != nil {
		if ks, err = form.key.format(k); err != nil {
			td.Fatalf(t, "key %q: %v", k, err)
		}
	}
	if v != nil {
		if vs, err = form.value.format(v); err != nil {
			td.Fatalf(t, "value %q: %v", v, err)
		}
	}
	return ks + " " + vs
}

func lines(ls []string) string {
	if len(ls) == 0 {
		return "<empty>\n"
	}
	return strings.Join(ls, "\n") + "\n"
}
