package broker_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/duality-streams/duality/broker"
)

// franzPartition is the partition franz-go's default key partitioner picks
// for a non-nil key among n partitions.
func franzPartition(key []byte, n int32) int32 {
	p := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	return int32(p.Partition(&kgo.Record{Key: key}, int(n)))
}

func TestKeyPartitionMatchesFranzGo(t *testing.T) {
	rng := rand.New(rand.NewPCG(20261123, 1))
	keys := [][]byte{{}, {0}, {0xff}, []byte("a"), []byte("ab"), []byte("abc"), []byte("abcd"), []byte("abcde")}
	for range 500 {
		k := make([]byte, rng.IntN(70)) // every tail length, some empty
		for i := range k {
			k[i] = byte(rng.Uint32())
		}
		keys = append(keys, k)
	}
	counts := []int32{1000, 4096, math.MaxInt32}
	for n := int32(1); n <= 64; n++ {
		counts = append(counts, n)
	}
	for _, n := range counts {
		for _, k := range keys {
			got := broker.KeyPartition(k, n)
			require.Equalf(t, franzPartition(k, n), got, "key %x, %d partitions", k, n)
			require.True(t, got >= 0 && got < n)
		}
	}
}

// TestKeyPartitionKafkaVectors checks murmur2 against the hashes in Apache
// Kafka's UtilsTest.testMurmur2 (signed Java ints), through KeyPartition:
// with n = MaxInt32 the partition is the hash with its high bit cleared
// (none of these hashes is 0x7fffffff, which would map to 0).
func TestKeyPartitionKafkaVectors(t *testing.T) {
	for _, tc := range []struct {
		key  string
		hash int32
	}{
		{"21", -973932308},
		{"foobar", -790332482},
		{"a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"abc", 479470107},
	} {
		t.Run(tc.key, func(t *testing.T) {
			positive := int32(uint32(tc.hash) & 0x7fffffff)
			require.Equal(t, positive, broker.KeyPartition([]byte(tc.key), math.MaxInt32))
			for _, n := range []int32{1, 3, 12, 64, 1000} {
				require.Equal(t, positive%n, broker.KeyPartition([]byte(tc.key), n), "%d partitions", n)
			}
		})
	}
}

// TestKeyPartitionFixed pins a few placements, computed from the hashes of
// the Kafka vectors above, so a change is visible in review.
func TestKeyPartitionFixed(t *testing.T) {
	for _, tc := range []struct {
		key  string
		n    int32
		want int32
	}{
		{"21", 12, 0},                      // 1173551340 % 12
		{"foobar", 10, 6},                  // 1357151166 % 10
		{"abc", 3, 0},                      // 479470107 % 3
		{"abc", 64, 27},                    // 479470107 % 64
		{"anything", 1, 0},                 // one partition
		{"a-little-bit-long-string", 7, 1}, // 1161502112 % 7
	} {
		require.Equal(t, tc.want, broker.KeyPartition([]byte(tc.key), tc.n), "key %q, %d partitions", tc.key, tc.n)
	}
}

// TestKeyPartitionEmptyKey checks that an empty key is hashed like any
// other key (franz-go hashes every non-nil key) and that nil hashes the
// same way when KeyPartition is called directly.
func TestKeyPartitionEmptyKey(t *testing.T) {
	for n := int32(1); n <= 64; n++ {
		require.Equal(t, franzPartition([]byte{}, n), broker.KeyPartition([]byte{}, n))
		require.Equal(t, broker.KeyPartition([]byte{}, n), broker.KeyPartition(nil, n))
	}
}

func FuzzKeyPartition(f *testing.F) {
	f.Add([]byte{}, uint16(1))
	f.Add([]byte("foobar"), uint16(7))
	f.Add([]byte("a-little-bit-longer-string"), uint16(64))
	f.Fuzz(func(t *testing.T, key []byte, n uint16) {
		if n == 0 {
			n = 1
		}
		require.Equal(t, franzPartition(key, int32(n)), broker.KeyPartition(key, int32(n)))
	})
}
