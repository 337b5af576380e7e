package topic

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestPartitionerIsJavaMurmur2 checks the partitioner against murmur2 values
// from Apache Kafka's own tests (org.apache.kafka.common.utils.UtilsTest):
// partition = toPositive(murmur2(key)) % partitions, toPositive(h) = h & 0x7fffffff.
func TestPartitionerIsJavaMurmur2(t *testing.T) {
	vectors := map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc": 479470107,
	}
	p := Partitioner().ForTopic("t")
	for key, murmur := range vectors {
		for _, n := range []int{1, 3, 12, 100} {
			want := int(int32(murmur)&0x7fffffff) % n
			if got := p.Partition(&kgo.Record{Key: []byte(key)}, n); got != want {
				t.Errorf("key %q over %d partitions: got %d, want %d", key, n, got, want)
			}
		}
	}
}
