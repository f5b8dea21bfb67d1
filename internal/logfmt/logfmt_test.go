package logfmt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
)

func sampleRecords() []broker.Record {
	ts := time.UnixMilli(1_700_000_000_123)
	return []broker.Record{
		{Key: []byte("k1"), Value: []byte("v1"), Timestamp: ts, Offset: 10},
		{Key: nil, Value: []byte{}, Timestamp: ts.Add(-time.Second), Offset: 11},
		{Key: []byte{}, Value: nil, Timestamp: ts.Add(time.Hour), Offset: 14,
			Headers: []broker.Header{{Key: "h", Value: []byte("x")}, {Key: "", Value: nil}, {Key: "e", Value: []byte{}}}},
	}
}

func TestRoundTrip(t *testing.T) {
	in := sampleRecords()
	b, err := AppendBatch([]byte("prefix"), 10, in)
	require.NoError(t, err)
	require.Equal(t, "prefix", string(b[:6]))
	b = b[6:]

	out, h, err := Decode(nil, b)
	require.NoError(t, err)
	require.Equal(t, Header{
		BaseOffset: 10, LastOffsetDelta: 4, Count: 3,
		FirstTimestamp: in[0].Timestamp.UnixMilli(), MaxTimestamp: in[2].Timestamp.UnixMilli(),
	}, h)
	require.Len(t, out, 3)
	for i := range in {
		require.Equal(t, in[i].Key, out[i].Key, "record %d key", i)
		require.Equal(t, in[i].Value, out[i].Value, "record %d value", i)
		require.Equal(t, in[i].Headers, out[i].Headers, "record %d headers", i)
		require.True(t, in[i].Timestamp.Equal(out[i].Timestamp), "record %d timestamp", i)
		require.Equal(t, in[i].Offset, out[i].Offset)
	}
	// nil and empty stay distinct.
	require.Nil(t, out[0+1].Key)
	require.NotNil(t, out[1].Value)
	require.NotNil(t, out[2].Key)
	require.Nil(t, out[2].Value)
	require.Nil(t, out[2].Headers[1].Value)
	require.NotNil(t, out[2].Headers[2].Value)

	// Appending to a decoded slice must not clobber the next record.
	_ = append(out[0].Key, 'Z', 'Z', 'Z', 'Z')
	require.Equal(t, []byte("v1"), out[0].Value)

	again, err := AppendBatch(nil, 10, out)
	require.NoError(t, err)
	require.Equal(t, b, again)
	require.Equal(t, len(b), BatchSize(10, out))
}

func TestBatchSize(t *testing.T) {
	big := make([]byte, 300)
	recs := []broker.Record{
		{Key: big[:200], Value: big, Timestamp: time.UnixMilli(1 << 40), Offset: 5},
		{Timestamp: time.UnixMilli(-5), Offset: 5 + 1<<20, Headers: []broker.Header{{Key: string(big[:130]), Value: big[:129]}}},
	}
	b, err := AppendBatch(nil, 5, recs)
	require.NoError(t, err)
	require.Equal(t, len(b), BatchSize(5, recs))
}

func TestAppendBatchErrors(t *testing.T) {
	_, err := AppendBatch(nil, 0, nil)
	require.Error(t, err)
	recs := sampleRecords()
	recs[1].Offset = recs[0].Offset
	out, err := AppendBatch([]byte("x"), 10, recs)
	require.Error(t, err)
	require.Equal(t, []byte("x"), out, "dst is restored on error")
	_, err = AppendBatch(nil, 0, []broker.Record{{Offset: 1 << 33, Timestamp: time.UnixMilli(0)}})
	require.Error(t, err)
}

func TestCorruption(t *testing.T) {
	good, err := AppendBatch(nil, 10, sampleRecords())
	require.NoError(t, err)
	// Every single flipped byte and every truncation is detected.
	for i := range good {
		bad := bytes.Clone(good)
		bad[i] ^= 0x5a
		_, _, err := Decode(nil, bad)
		require.ErrorIs(t, err, broker.ErrCorrupt, "flip at %d", i)
	}
	for n := range len(good) {
		_, _, err := Decode(nil, good[:n])
		require.ErrorIs(t, err, broker.ErrCorrupt, "truncated to %d", n)
	}
}

func TestReaderStopsEarly(t *testing.T) {
	b, err := AppendBatch(nil, 10, sampleRecords())
	require.NoError(t, err)
	r, err := NewReader(b)
	require.NoError(t, err)
	var rec broker.Record
	ok, err := r.Next(&rec)
	require.True(t, ok)
	require.NoError(t, err)
	require.Equal(t, int64(10), rec.Offset)
	require.Equal(t, int64(14), r.Header().LastOffset())
}

func FuzzDecodeBatch(f *testing.F) {
	good, err := AppendBatch(nil, 10, sampleRecords())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:HeaderLen])
	one, _ := AppendBatch(nil, 0, []broker.Record{{Value: []byte("v"), Timestamp: time.UnixMilli(5)}})
	f.Add(one)
	check := func(t *testing.T, b []byte) {
		recs, h, err := Decode(nil, b)
		if err != nil {
			require.ErrorIs(t, err, broker.ErrCorrupt)
			return
		}
		again, err := AppendBatch(nil, h.BaseOffset, recs)
		require.NoError(t, err)
		require.Equal(t, b, again, "a valid batch re-encodes to the same bytes")
		require.Equal(t, len(b), BatchSize(h.BaseOffset, recs))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		check(t, b)
		// The CRC makes random inputs fail early; also check the input
		// with a correct version and CRC so the fuzzer explores the
		// record parser.
		if len(b) >= HeaderLen {
			fixed := bytes.Clone(b)
			fixed[offVersion] = Version
			binary.BigEndian.PutUint32(fixed[offCRC:], crc32.Checksum(fixed[offBase:], castagnoli))
			check(t, fixed)
		}
	})
}

// TestWriteBatch checks that WriteBatch writes AppendBatch's bytes, in
// pieces of any size, and that next's error ends it.
func TestWriteBatch(t *testing.T) {
	recs := sampleRecords()
	recs = append(recs, broker.Record{Key: []byte("big"), Value: bytes.Repeat([]byte("0123456789"), 1000),
		Timestamp: recs[0].Timestamp, Offset: 20})
	want, err := AppendBatch(nil, 10, recs)
	require.NoError(t, err)
	for _, piece := range []int{1, 2, 7, 64, 4096, len(want)} {
		var pieces [][]byte
		h, n, err := WriteBatch(10, recs, func() ([]byte, error) {
			pieces = append(pieces, make([]byte, piece))
			return pieces[len(pieces)-1], nil
		})
		require.NoError(t, err, "piece %d", piece)
		require.Equal(t, len(want), n)
		got := append([]byte(nil), h[:]...)
		for i, p := range pieces {
			if i < len(pieces)-1 {
				require.Len(t, p, piece) // filled completely
			}
			got = append(got, p...)
		}
		require.Equal(t, want, got[:n], "piece %d", piece)

		// Checksum checks the same pieces without joining them.
		sum, err := NewChecksum(h[:])
		require.NoError(t, err)
		for i, p := range pieces {
			if i == len(pieces)-1 {
				p = p[:n-HeaderLen-i*piece]
			}
			sum.Add(p)
		}
		require.NoError(t, sum.Check(), "piece %d", piece)
		require.Equal(t, uint32(len(recs)), sum.Header().Count)
		sum, err = NewChecksum(h[:])
		require.NoError(t, err)
		sum.Add(want[HeaderLen : n-1])
		require.ErrorIs(t, sum.Check(), broker.ErrCorrupt, "a byte short")
		last := n - HeaderLen - (len(pieces)-1)*piece // bytes in the last piece
		require.True(t, last > 0 && last <= piece, "piece %d: asked for a piece it did not need", piece)
	}

	stop := errors.New("stop")
	_, _, err = WriteBatch(10, recs, func() ([]byte, error) { return nil, stop })
	require.ErrorIs(t, err, stop)
	_, _, err = WriteBatch(10, nil, func() ([]byte, error) { return make([]byte, 8), nil })
	require.Error(t, err)
	_, _, err = WriteBatch(10, []broker.Record{{Offset: 11}, {Offset: 11}}, func() ([]byte, error) { return make([]byte, 8), nil })
	require.Error(t, err)
}

// TestAppendRecords checks that AppendRecords writes AppendBatch's bytes
// for copies of the selected records at consecutive offsets, zero
// timestamps standing for now, and that RecordsSize is their length.
func TestAppendRecords(t *testing.T) {
	recs := sampleRecords()
	recs = append(recs, broker.Record{Key: []byte("zero"), Value: []byte("ts")}) // no timestamp
	now := recs[0].Timestamp.Add(time.Minute)
	for _, idx := range [][]int{nil, {3, 1}, {2}, {3}, {0, 3, 2, 1}} {
		var copies []broker.Record
		if idx == nil {
			copies = append(copies, recs...)
		} else {
			for _, i := range idx {
				copies = append(copies, recs[i])
			}
		}
		for i := range copies {
			copies[i].Offset = 100 + int64(i)
			if copies[i].Timestamp.IsZero() {
				copies[i].Timestamp = now
			}
		}
		want, err := AppendBatch([]byte("prefix"), 100, copies)
		require.NoError(t, err)
		size := RecordsSize(recs, idx, now.UnixMilli())
		require.Equal(t, len(want)-len("prefix"), size, "idx %v", idx)
		got, err := AppendRecords([]byte("prefix"), 100, recs, idx, now.UnixMilli(), size)
		require.NoError(t, err)
		require.Equal(t, want, got, "idx %v", idx)

		_, err = AppendRecords(nil, 100, recs, idx, now.UnixMilli(), size-1)
		require.Error(t, err, "a wrong size is an error")
	}
	_, err := AppendRecords(nil, 0, recs, []int{}, 0, HeaderLen)
	require.Error(t, err, "no records")
	_, err = AppendRecords(nil, 0, nil, nil, 0, HeaderLen)
	require.Error(t, err, "no records")
}

// TestRecordsFit checks that RecordsFit takes the longest run of records
// from the first whose RecordsSize is within the limit, at least one, and
// returns that size.
func TestRecordsFit(t *testing.T) {
	recs := sampleRecords()
	recs = append(recs, broker.Record{Key: []byte("zero"), Value: []byte("ts")}) // no timestamp
	now := recs[0].Timestamp.Add(time.Minute).UnixMilli()
	for _, idx := range [][]int{nil, {3, 1}, {2}, {0, 3, 2, 1}} {
		total := len(recs)
		if idx != nil {
			total = len(idx)
		}
		prefix := func(k int) ([]broker.Record, []int) {
			if idx == nil {
				return recs[:k], nil
			}
			return recs, idx[:k]
		}
		for limit := 0; limit <= RecordsSize(recs, idx, now)+1; limit++ {
			n, size := RecordsFit(recs, idx, now, limit)
			r, i := prefix(n)
			require.Equal(t, RecordsSize(r, i, now), size, "idx %v limit %d", idx, limit)
			require.GreaterOrEqual(t, n, 1)
			require.True(t, size <= limit || n == 1, "idx %v limit %d: %d records, %d bytes", idx, limit, n, size)
			if n < total {
				r, i := prefix(n + 1)
				require.Greater(t, RecordsSize(r, i, now), limit, "idx %v limit %d: one more fits", idx, limit)
			}
		}
	}
}
