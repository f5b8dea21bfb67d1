package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/fnv"
	"path/filepath"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
	"github.com/duality-streams/duality/broker/kafka"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/window"
)

// sizes are the sizes of a run's input.
type sizes struct {
	Records     int `json:"records"`      // input records of W1, W2, W4 and W5
	Keys        int `json:"keys"`         // distinct keys of the input (and of W4's table)
	RestoreKeys int `json:"restore_keys"` // keys of the table W3 restores
	Partitions  int `json:"partitions"`   // partitions of every topic
}

func (s sizes) validate() error {
	var errs []error
	if s.Partitions < 1 {
		errs = append(errs, errors.New("partitions must be at least 1"))
	}
	if s.Records < 1 || s.Keys < 1 || s.RestoreKeys < 1 {
		errs = append(errs, errors.New("records, keys and restore keys must be at least 1"))
	}
	if s.Keys%scramble == 0 || s.RestoreKeys%scramble == 0 {
		errs = append(errs, fmt.Errorf("key counts must not be multiples of %d", scramble))
	}
	return errors.Join(errs...)
}

// The workloads. Every one runs on pre-generated input that the run
// writes to the broker before it starts the clock.
const (
	// W1: stateless, records whose value is not a multiple of 3 mapped to
	// 2v+1 and written to an output topic.
	W1 = "W1"
	// W2: a count per key of the input, kept in a table (store and
	// changelog) and nothing else.
	W2 = "W2"
	// W3: the table of W2's shape restored from a changelog of
	// RestoreKeys keys into empty local state.
	W3 = "W3"
	// W4: every input record joined with the value of its key in a table
	// read from a topic (1000v + table value), written to an output topic.
	W4 = "W4"
	// W5: a count per key per one-minute tumbling window (Duality only:
	// goka has no windows).
	W5 = "W5"
)

var workloads = []string{W1, W2, W3, W4, W5}

// Topics and names. Each run has a broker of its own, so the names are
// fixed.
const (
	inputTopic  = "input"
	outputTopic = "output"
	tableTopic  = "table" // W4's table
	storeName   = "counts"
)

// scramble spreads consecutive records over the keys in a scrambled order
// (prime; it divides none of the key counts allowed).
const scramble = 7919

// base is the timestamp of input record 0; record i is i ms later.
var base = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// windowSize is W5's tumbling window.
const windowSize = time.Minute

func key(i, keys int) []byte { return fmt.Appendf(nil, "k%07d", (i%keys)*scramble%keys) }

func int64Bytes(v int64) []byte {
	b, _ := codec.Int64().Append(make([]byte, 0, 8), v) // cannot fail
	return b
}

// inputRecord is input record i: key(i), value i, timestamp base + i ms.
func inputRecord(topic string, i, keys int) broker.Record {
	return broker.Record{Topic: topic, Partition: broker.PartitionByKey, Key: key(i, keys),
		Value: int64Bytes(int64(i)), Timestamp: base.Add(time.Duration(i) * time.Millisecond)}
}

// tableValue is the value of key j of W4's table and of W3's changelog.
func tableValue(j int) int64 { return int64(j%977 + 1) }

// tableRecord is record j of a table topic of keys keys (W3's changelog,
// W4's table): key(j), value tableValue(j), timestamped an hour before
// the input so that a runtime that picks records in timestamp order loads
// the table before it joins the stream.
func tableRecord(topic string, j, keys int) broker.Record {
	return broker.Record{Topic: topic, Partition: broker.PartitionByKey, Key: key(j, keys),
		Value: int64Bytes(tableValue(j)), Timestamp: base.Add(-time.Hour)}
}

// produce appends records 0..n-1 of gen to b in batches.
func produce(ctx context.Context, b broker.Broker, n int, gen func(i int) broker.Record) error {
	const batch = 5000
	recs := make([]broker.Record, 0, batch)
	for i := range n {
		recs = append(recs, gen(i))
		if len(recs) == batch || i == n-1 {
			if err := b.Produce(ctx, recs); err != nil {
				return fmt.Errorf("produce the input: %w", err)
			}
			recs = recs[:0]
		}
	}
	return nil
}

// checksum sums a hash of each (key, value) pair, so it is independent of
// the order in which records are read; Pairs counts them.
type checksum struct {
	Sum   uint64 `json:"sum"`
	Pairs int64  `json:"pairs"`
}

func (c *checksum) add(k, v []byte) {
	h := fnv.New64a()
	h.Write(k)
	h.Write([]byte{0})
	h.Write(v)
	c.Sum += h.Sum64()
	c.Pairs++
}

func (c checksum) String() string { return fmt.Sprintf("%016x/%d", c.Sum, c.Pairs) }

// streamChecksum is the checksum of every record of recs.
func streamChecksum(recs []broker.Record) checksum {
	var c checksum
	for _, r := range recs {
		c.add(r.Key, r.Value)
	}
	return c
}

// tableChecksum is the checksum of the table recs make when read as
// upserts: the newest value per key, tombstones deleting.
func tableChecksum(recs []broker.Record) checksum {
	t := map[string][]byte{}
	for _, r := range recs {
		if r.Value == nil {
			delete(t, string(r.Key))
			continue
		}
		t[string(r.Key)] = r.Value
	}
	var c checksum
	for k, v := range t {
		c.add([]byte(k), v)
	}
	return c
}

// model computes the checksum of workload w's result in plain Go: what
// every system must produce.
func model(w string, s sizes) (checksum, error) {
	var c checksum
	switch w {
	case W1:
		for i := range s.Records {
			if v := int64(i); v%3 != 0 {
				c.add(key(i, s.Keys), int64Bytes(2*v+1))
			}
		}
	case W2:
		counts := map[string]int64{}
		for i := range s.Records {
			counts[string(key(i, s.Keys))]++
		}
		for k, n := range counts {
			c.add([]byte(k), int64Bytes(n))
		}
	case W3:
		for j := range s.RestoreKeys {
			c.add(key(j, s.RestoreKeys), int64Bytes(tableValue(j)))
		}
	case W4:
		tbl := map[string]int64{}
		for j := range s.Keys {
			tbl[string(key(j, s.Keys))] = tableValue(j)
		}
		for i := range s.Records {
			k := key(i, s.Keys)
			c.add(k, int64Bytes(1000*int64(i)+tbl[string(k)]))
		}
	case W5:
		wc := window.WindowedCodec(codec.String())
		counts := map[string]int64{}
		for i := range s.Records {
			ts := base.Add(time.Duration(i) * time.Millisecond)
			start := ts.Truncate(windowSize)
			wk, err := wc.Append(nil, window.Windowed[string]{Key: string(key(i, s.Keys)), Start: start, End: start.Add(windowSize)})
			if err != nil {
				return checksum{}, err
			}
			counts[string(wk)]++
		}
		for k, n := range counts {
			c.add([]byte(k), int64Bytes(n))
		}
	default:
		return checksum{}, fmt.Errorf("unknown workload %q", w)
	}
	return c, nil
}

// cluster is where a run's topics live: the embedded broker in a
// directory, or an in-process kfake cluster reached through Duality's
// Kafka backend (whose client also writes the input and reads the
// results of goka's runs).
type cluster struct {
	b     broker.Broker
	seeds []string // the kfake cluster's addresses; nil for the embedded broker
	close func() error
}

// kfakeGroups makes group joins on the in-process cluster quick, as the
// project's Kafka tests and examples do.
var kfakeGroups = kafka.WithClientOptions(
	kgo.SessionTimeout(10*time.Second),
	kgo.HeartbeatInterval(50*time.Millisecond),
	kgo.RebalanceTimeout(10*time.Second),
)

func openCluster(ctx context.Context, backend, dir string) (*cluster, error) {
	switch backend {
	case "embedded":
		b, err := embedded.Open(filepath.Join(dir, "broker"), embedded.WithCleanupInterval(-1))
		if err != nil {
			return nil, err
		}
		return &cluster{b: b, close: b.Close}, nil
	case "kafka":
		c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.GroupMinSessionTimeout(100*time.Millisecond))
		if err != nil {
			return nil, fmt.Errorf("start kfake: %w", err)
		}
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		b, err := kafka.New(cctx, c.ListenAddrs(), kfakeGroups)
		if err != nil {
			c.Close()
			return nil, err
		}
		return &cluster{b: b, seeds: c.ListenAddrs(), close: func() error {
			err := b.Close()
			c.Close()
			return err
		}}, nil
	}
	return nil, fmt.Errorf("unknown backend %q: want embedded or kafka", backend)
}

// setup creates the topics of workload w (but the ones the systems
// create themselves: changelogs, goka's group table) and writes its
// input. table names W3's changelog, whose name depends on the system.
func setup(ctx context.Context, b broker.Broker, w string, s sizes, table string) error {
	parts := broker.TopicConfig{Partitions: int32(s.Partitions)}
	for _, t := range []string{inputTopic, outputTopic} {
		if err := b.CreateTopic(ctx, t, parts); err != nil {
			return err
		}
	}
	switch w {
	case W3:
		if err := b.CreateTopic(ctx, table, broker.TopicConfig{Partitions: int32(s.Partitions), Cleanup: broker.CleanupCompact}); err != nil {
			return err
		}
		return produce(ctx, b, s.RestoreKeys, func(j int) broker.Record { return tableRecord(table, j, s.RestoreKeys) })
	case W4:
		if err := b.CreateTopic(ctx, tableTopic, broker.TopicConfig{Partitions: int32(s.Partitions), Cleanup: broker.CleanupCompact}); err != nil {
			return err
		}
		if err := produce(ctx, b, s.Keys, func(j int) broker.Record { return tableRecord(tableTopic, j, s.Keys) }); err != nil {
			return err
		}
	}
	return produce(ctx, b, s.Records, func(i int) broker.Record { return inputRecord(inputTopic, i, s.Keys) })
}

// endOffsets returns the sum of topic's end offsets.
func endOffsets(ctx context.Context, b broker.Broker, topic string, partitions int) (int64, error) {
	var sum int64
	for p := range int32(partitions) {
		offs, err := b.ListOffsets(ctx, topic, p)
		if err != nil {
			return 0, fmt.Errorf("end offsets of %s: %w", topic, err)
		}
		sum += offs.Latest
	}
	return sum, nil
}

// pollEvery is how often a run checks whether the work is done.
const pollEvery = 10 * time.Millisecond

// waitUntil calls done every pollEvery until it reports true or fails, or
// stopped (the system's Run returning) delivers.
func waitUntil(ctx context.Context, stopped <-chan error, done func() (bool, error)) error {
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		ok, err := done()
		if err != nil || ok {
			return err
		}
		select {
		case err := <-stopped:
			return fmt.Errorf("stopped before the work was done: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// murmur2 is Kafka's default partitioner's hash (the Java client's
// Utils.murmur2), which Duality's backends use for broker.PartitionByKey.
func murmur2(data []byte) uint32 {
	const (
		seed = 0x9747b28c
		m    = 0x5bd1e995
		r    = 24
	)
	n := len(data)
	h := uint32(seed) ^ uint32(n)
	for i := 0; i+4 <= n; i += 4 {
		k := binary.LittleEndian.Uint32(data[i:])
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := data[n&^3:]
	switch len(tail) {
	case 3:
		h ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(tail[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

// kafkaHash is a hash.Hash32 whose Sum32 is murmur2 with the high bit
// cleared: sarama's hash partitioner, which goka's emitters and group
// tables use, then puts a key where broker.KeyPartition does, so goka's
// table writes land in the partition its input came from (goka's
// default FNV-1a would not) and both systems read identical partitions.
type kafkaHash struct{ buf []byte }

func newKafkaHash() hash.Hash32 { return &kafkaHash{} }

func (h *kafkaHash) Write(p []byte) (int, error) { h.buf = append(h.buf, p...); return len(p), nil }
func (h *kafkaHash) Sum32() uint32               { return murmur2(h.buf) & 0x7fffffff }
func (h *kafkaHash) Sum(b []byte) []byte         { return binary.BigEndian.AppendUint32(b, h.Sum32()) }
func (h *kafkaHash) Reset()                      { h.buf = h.buf[:0] }
func (h *kafkaHash) Size() int                   { return 4 }
func (h *kafkaHash) BlockSize() int              { return 1 }
