package logfmt

import (
	"fmt"
	"testing"
	"time"

	"github.com/duality-streams/duality/broker"
)

// benchBatch returns n records shaped like the goka benchmark's W1 input
// (an 8-byte key and value, timestamps 1 ms apart) at offsets from 0.
func benchBatch(n int) []broker.Record {
	recs := make([]broker.Record, n)
	ts := time.UnixMilli(1_700_000_000_000)
	for i := range recs {
		recs[i] = broker.Record{Key: fmt.Appendf(nil, "k%07d", i%10000), Value: make([]byte, 8),
			Timestamp: ts.Add(time.Duration(i) * time.Millisecond), Offset: int64(i)}
	}
	return recs
}

// BenchmarkAppendBatch measures encoding a batch of 1000 small records,
// per record.
func BenchmarkAppendBatch(b *testing.B) {
	recs := benchBatch(1000)
	buf := make([]byte, 0, BatchSize(0, recs))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = AppendBatch(buf[:0], 0, recs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
}

// BenchmarkReader measures decoding a batch of 1000 small records, CRC
// check included, per record.
func BenchmarkReader(b *testing.B) {
	recs := benchBatch(1000)
	data, err := AppendBatch(nil, 0, recs)
	if err != nil {
		b.Fatal(err)
	}
	var r Reader
	var rec broker.Record
	b.ReportAllocs()
	for b.Loop() {
		if err := r.Reset(data); err != nil {
			b.Fatal(err)
		}
		for {
			ok, err := r.Next(&rec)
			if err != nil {
				b.Fatal(err)
			}
			if !ok {
				break
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
}
