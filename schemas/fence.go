package schemas

import (
	"encoding/json"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
)

// A snapshot fence is a control record a finished snapshot run writes to
// every partition of a records topic, after every record of the run. When
// the sink has read it on every partition, every snapshot row is applied,
// so a row whose version is still older than the run's start was not seen
// by the snapshot: its document no longer exists (its delete was never
// captured, for example because the change stream's history was lost). The
// sink then marks such rows deleted, which makes a re-snapshot complete.
type Fence struct {
	Source     string   `json:"source"`     // database.collection
	Table      string   `json:"table"`      // root table
	Children   []string `json:"children"`   // every child table, any depth
	Version    int64    `json:"version"`    // the run's start cluster time
	Run        int64    `json:"run"`        // the snapshot run
	Partitions int      `json:"partitions"` // fence records written: one per partition
}

// fenceHeader marks a control record; its value is the JSON of a Fence.
const fenceHeader = "docshift.control"

// FenceRecords returns one fence record per partition of a records topic.
// Their Partition field is set: produce them with kgo.ManualPartitioner.
func FenceRecords(topic string, partitions int, f Fence) ([]*kgo.Record, error) {
	f.Partitions = partitions
	b, err := json.Marshal(f)
	if err != nil {
		return nil, err
	}
	out := make([]*kgo.Record, partitions)
	for p := range partitions {
		out[p] = &kgo.Record{
			Topic: topic, Partition: int32(p),
			Key:     fmt.Appendf(nil, "docshift.fence/%s/%d", f.Table, p),
			Value:   b,
			Headers: []kgo.RecordHeader{{Key: fenceHeader, Value: []byte("fence")}},
		}
	}
	return out, nil
}

// ParseFence reports whether a record is a fence, and reads it.
func ParseFence(r *kgo.Record) (*Fence, bool, error) {
	for _, h := range r.Headers {
		if h.Key != fenceHeader {
			continue
		}
		if string(h.Value) != "fence" {
			return nil, true, fmt.Errorf("control record of unknown kind %q", h.Value)
		}
		var f Fence
		if err := json.Unmarshal(r.Value, &f); err != nil || f.Table == "" || f.Partitions < 1 {
			return nil, true, fmt.Errorf("malformed fence record %q", r.Value)
		}
		return &f, true, nil
	}
	return nil, false, nil
}
