package embedded

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/duality-streams/duality/broker"
)

// Key prefixes: one byte per kind of key, so each kind is one contiguous
// key range.
const (
	prefixMeta      = 'm' // m<name>: database metadata
	prefixTopic     = 't' // t<topic name>: topicValue
	prefixPartition = 'p' // p<topic id><partition>: partitionValue
	prefixRecords   = 'r' // r<topic id><partition><base offset>: logfmt batch
	prefixOffsets   = 'o' // o<topic id><partition><group>: next offset
	prefixChunks    = 'c' // c<topic id><partition><base offset><index>: a chunk of a large batch (chunks.go)
)

var (
	keyFormat      = []byte("mformat")
	keyNextTopicID = []byte("mnext-topic-id")
	// chainPrefix starts the write chain's keys, mw<be64 sequence number>
	// (see acked.go); chainEnd bounds them.
	chainPrefix = []byte("mw")
	chainEnd    = []byte("mx")
)

// chainKey is the write chain's key of batch seq.
func chainKey(seq uint64) []byte { return binary.BigEndian.AppendUint64([]byte("mw"), seq) }

// formatVersion is the layout version stored under keyFormat.
const formatVersion = 1

// partKey builds prefix + topic id + partition, the common start of
// partition, record and offset keys.
func partKey(dst []byte, prefix byte, id uint64, p int32) []byte {
	dst = append(dst, prefix)
	dst = binary.BigEndian.AppendUint64(dst, id)
	return binary.BigEndian.AppendUint32(dst, uint32(p))
}

func topicKey(name string) []byte { return append([]byte{prefixTopic}, name...) }

func partitionKey(id uint64, p int32) []byte { return partKey(nil, prefixPartition, id, p) }

// recordKey is the key of the batch at base offset off.
func recordKey(dst []byte, id uint64, p int32, off int64) []byte {
	return binary.BigEndian.AppendUint64(partKey(dst, prefixRecords, id, p), uint64(off))
}

const recordKeyLen = 1 + 8 + 4 + 8

// recordKeyOffset returns the base offset of a record key.
func recordKeyOffset(k []byte) (int64, bool) {
	if len(k) != recordKeyLen {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(k[13:])), true
}

func offsetKey(id uint64, p int32, group string) []byte {
	return append(partKey(nil, prefixOffsets, id, p), group...)
}

// topicSpan returns [start, end) covering every key of kind prefix of topic
// id.
func topicSpan(prefix byte, id uint64) (start, end []byte) {
	start = binary.BigEndian.AppendUint64([]byte{prefix}, id)
	end = binary.BigEndian.AppendUint64([]byte{prefix}, id+1)
	return start, end
}

// topicValue is the stored form of a topic: id and config.
type topicValue struct {
	id  uint64
	cfg broker.TopicConfig
}

const topicValueLen = 1 + 8 + 4 + 1 + 8 + 8 + 8

func (v topicValue) encode() []byte {
	b := make([]byte, 0, topicValueLen)
	b = append(b, 1)
	b = binary.BigEndian.AppendUint64(b, v.id)
	b = binary.BigEndian.AppendUint32(b, uint32(v.cfg.Partitions))
	b = append(b, byte(v.cfg.Cleanup))
	b = binary.BigEndian.AppendUint64(b, uint64(v.cfg.RetentionTime))
	b = binary.BigEndian.AppendUint64(b, uint64(v.cfg.RetentionBytes))
	b = binary.BigEndian.AppendUint64(b, uint64(v.cfg.DeleteRetention))
	return b
}

func decodeTopicValue(b []byte) (topicValue, error) {
	if len(b) != topicValueLen || b[0] != 1 {
		return topicValue{}, fmt.Errorf("%w: topic metadata of %d bytes", broker.ErrCorrupt, len(b))
	}
	v := topicValue{id: binary.BigEndian.Uint64(b[1:])}
	v.cfg.Partitions = int32(binary.BigEndian.Uint32(b[9:]))
	v.cfg.Cleanup = broker.CleanupPolicy(b[13])
	v.cfg.RetentionTime = time.Duration(binary.BigEndian.Uint64(b[14:]))
	v.cfg.RetentionBytes = int64(binary.BigEndian.Uint64(b[22:]))
	v.cfg.DeleteRetention = time.Duration(binary.BigEndian.Uint64(b[30:]))
	if v.cfg.Partitions < 1 || !v.cfg.Cleanup.Valid() {
		return topicValue{}, fmt.Errorf("%w: topic metadata with %d partitions, cleanup %d", broker.ErrCorrupt, v.cfg.Partitions, b[13])
	}
	return v, nil
}

// partitionValue is the stored state of a partition, written in the same
// Pebble batch as every change to its records.
type partitionValue struct {
	logStart int64 // first offset that may still hold a record
	next     int64 // offset of the next record appended
	bytes    int64 // sum of the sizes of the stored batches
}

const partitionValueLen = 1 + 8 + 8 + 8

func (v partitionValue) appendTo(b []byte) []byte {
	b = append(b, 1)
	b = binary.BigEndian.AppendUint64(b, uint64(v.logStart))
	b = binary.BigEndian.AppendUint64(b, uint64(v.next))
	return binary.BigEndian.AppendUint64(b, uint64(v.bytes))
}

func decodePartitionValue(b []byte) (partitionValue, error) {
	if len(b) != partitionValueLen || b[0] != 1 {
		return partitionValue{}, fmt.Errorf("%w: partition metadata of %d bytes", broker.ErrCorrupt, len(b))
	}
	v := partitionValue{
		logStart: int64(binary.BigEndian.Uint64(b[1:])),
		next:     int64(binary.BigEndian.Uint64(b[9:])),
		bytes:    int64(binary.BigEndian.Uint64(b[17:])),
	}
	if v.logStart < 0 || v.next < v.logStart || v.bytes < 0 {
		return partitionValue{}, fmt.Errorf("%w: partition metadata log start %d, next %d, bytes %d", broker.ErrCorrupt, v.logStart, v.next, v.bytes)
	}
	return v, nil
}
