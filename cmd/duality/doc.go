// Command duality inspects and feeds the log of a Duality app: an
// embedded data directory or a Kafka cluster.
//
//	go install github.com/duality-streams/duality/cmd/duality@latest
//
//	duality --dir DIR COMMAND ...               # the directory the app gives embedded.Open
//	duality --brokers host:port,... COMMAND ... # a Kafka cluster, through broker/kafka
//
// # Commands
//
//	topics list                    topics with partitions, cleanup policy and retention
//	topics create TOPIC            -p partitions, --cleanup, --retention, --retention-bytes,
//	                               --delete-retention; with --dir it may create the directory
//	topics describe TOPIC...       configuration and each partition's start and end offsets
//	topics delete TOPIC...         all named topics must exist, or none is deleted
//	produce TOPIC                  records from standard input, one a line
//	consume TOPIC                  records as JSON lines
//	replay                         dead letters (consume's lines) back to their topics
//	mirror [TOPIC...]              copy topics to another log (--to-dir or --to-brokers)
//	groups list                    consumer groups with members or committed offsets
//	groups describe GROUP          members, and per partition committed offset, end and lag
//	describe APP                   the app's topology, as text or (--format mermaid) a Mermaid flowchart
//
// describe reads what every app publishes when it starts, to the
// compacted topic APP-topology of its log: the command does not link the
// app. The list and describe subcommands of topics and groups take -o
// json for scripts. duality COMMAND --help
// describes every flag.
//
// # Producing
//
// produce reads key<TAB>value lines (--format kv, --separator to change
// the tab), whole lines as values (--format value) or JSON objects
// (--format json):
//
//	{"key": "alice", "value": {"total": 42}, "headers": {"source": "web"},
//	 "timestamp": "2026-03-01T12:00:00Z", "partition": 0}
//
// Every field may be left out; a null value is a tombstone. Records go to
// their key's partition (Kafka's murmur2 partitioner, as the app's sinks)
// unless the line or --partition names one. --key-codec and --value-codec
// encode keys and values as package codec does: string, bytes (base64
// input), int64, json, msgpack (JSON input). A line that cannot be read
// stops the command with its line number: the lines before it are
// produced, none after it.
//
// # Consuming
//
// consume prints one JSON object a record, with its topic, partition,
// offset, timestamp, key, value and headers, keys and values decoded with
// --key-codec and --value-codec (the same names; bytes are shown as
// base64, msgpack as JSON). A key or value the codec cannot decode is
// shown with its error and its bytes, and consumption goes on.
//
//	duality --dir data consume word-counts --value-codec int64 --from -10
//
// --from chooses the start in each partition: beginning (the default),
// end, an offset (with --partition), -N (the last N records), a time in
// RFC 3339 or a negative duration (-1h: an hour ago). consume stops at
// the ends the partitions had when it started, or after --max records;
// with --follow (on Kafka) it waits for new ones until interrupted.
//
// # Dead letters
//
// consume shows a record of a dead-letter topic (an app's under
// duality.DeadLetterOnError) with a "dead_letter" object decoded from its
// duality.* headers: error, step, and the topic, partition and offset the
// record was read from. replay reads such lines from standard input,
// edited or not, and writes each record back to that topic and partition
// (--to and --by-key write elsewhere) with its key, value, timestamp and
// own headers, the duality.* ones removed. A key or value left null whose
// line has "value_base64" (consume could not decode it) is written as
// those bytes; give replay the codecs consume was given.
//
//	duality --dir data consume orders-app-dlq --value-codec json > dead.jsonl
//	jq -c '.value.amount |= tonumber' dead.jsonl | duality --dir data replay --value-codec json
//
// # Mirroring
//
// mirror copies topics from the log --dir or --brokers names (the source)
// to the log --to-dir or --to-brokers names (the destination): an
// embedded data directory to a Kafka cluster and back, or between two of
// a kind; Kafka's MirrorMaker for Duality's logs.
//
//	duality --dir /var/lib/orders/log mirror --all --to-brokers kafka-1:9092
//	duality --brokers a:9092 mirror --pattern 'orders-.*' --to-brokers b:9092 --follow
//
// It copies the TOPICs named, those whose whole name matches --pattern, or
// --all of them but Kafka's internal ones ("__" names), each to the
// destination topic of the same name (after --prefix, if given). A
// missing destination topic is created with the source's partition count
// and cleanup settings; an existing one with fewer partitions than the
// source is refused before anything is created or copied. Records keep
// their partition, key, value (tombstones too), timestamp and headers, in
// order per partition; offsets are the destination's own. Records the
// source deleted before the mirror reached them (retention, DeleteRecords)
// are skipped, and mirror says which offsets.
//
// The copy is exactly once and resumable: each transaction on the
// destination (an atomic commit of the embedded log, a Kafka transaction)
// holds a batch of records and, as the committed offsets of consumer group
// --progress-group (default duality-mirror) on the destination topics,
// the next source offset of each partition. A mirror killed at any
// instant resumes there when started again; starting one fences a running
// one of the same --progress-group. Without --follow mirror stops at the
// source's ends as of its start; with --follow (the source on Kafka) it
// copies new records until interrupted. --groups copies consumer groups'
// committed offsets too (an app's progress), translated to the
// destination's offsets, so that an app moved to the destination resumes
// where it stopped.
//
// # Embedded data directories
//
// A data directory is open in one process at a time. While an app runs on
// it, duality refuses it with an error that names the app's process
// (embedded.ErrLocked); stop the app first. The same holds the other way:
// an app cannot open the directory while duality has it open. duality
// refuses a directory that does not exist or is not a data directory
// (except topics create, which may create one), so a typo does not leave
// an empty log behind. It runs no retention or compaction of its own.
//
// # Exit codes
//
// 0 on success, 1 when the command failed (an unknown topic, an unreadable
// or locked directory, a cluster that does not answer), 2 for a mistake in
// the command line (an unknown command or flag, a bad flag value, a
// missing argument). Errors are one line on standard error; produce,
// consume, replay and mirror report the count of records there too (-q
// silences it), as a progress bar when standard error is a terminal, so
// standard output carries only data.
package main
