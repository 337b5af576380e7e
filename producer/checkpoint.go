package producer

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/docshift/docshift/schemas"
	"github.com/docshift/docshift/topic"
)

// Checkpoint is where a stream resumes: right after the event whose resume
// token it holds, or, before the first event, at the cluster time it started.
type Checkpoint struct {
	Stream      string    `json:"stream"`
	Token       []byte    `json:"token,omitempty"` // raw BSON resume token
	ClusterTime int64     `json:"cluster_time"`    // of the last event (a schemas.Version), or the start
	Events      int64     `json:"events"`          // events published by this stream so far
	At          time.Time `json:"at"`
	Invalidated bool      `json:"invalidated,omitempty"`  // Token is an invalidate event's: resume with startAfter
	HistoryLost string    `json:"history_lost,omitempty"` // set when the stream restarted after losing its history
}

// StartTime returns the cluster time the checkpoint was taken at.
func (c *Checkpoint) StartTime() bson.Timestamp { return schemas.TimestampOf(c.ClusterTime) }

func (c *Checkpoint) record(topicName string) (*kgo.Record, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	return &kgo.Record{Topic: topicName, Key: []byte(c.Stream), Value: b}, nil
}

// ReadCheckpoints reads every stream's last committed checkpoint.
func ReadCheckpoints(ctx context.Context, tc topic.Config) (map[string]*Checkpoint, error) {
	name := tc.Streams()
	cl, err := topic.NewClient(ctx, tc, nil,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{name: {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListCommittedOffsets(ctx, name)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("reading the end of checkpoint topic %s: %w", name, err)
	}
	end, _ := ends.Lookup(name, 0)
	out := map[string]*Checkpoint{}
	for next := int64(0); next < end.Offset; {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ferr := topic.FetchErr(fs, nil)
		if ferr != nil {
			return nil, fmt.Errorf("reading the checkpoint topic: %w", ferr)
		}
		fs.EachRecord(func(r *kgo.Record) {
			next = r.Offset + 1
			if r.Attrs.IsControl() || ferr != nil {
				return
			}
			if r.Value == nil {
				delete(out, string(r.Key))
				return
			}
			var c Checkpoint
			if err := json.Unmarshal(r.Value, &c); err != nil || c.Stream != string(r.Key) {
				ferr = fmt.Errorf("checkpoint topic %s offset %d: not a checkpoint of stream %q", name, r.Offset, r.Key)
				return
			}
			out[c.Stream] = &c
		})
		if ferr != nil {
			return nil, ferr
		}
	}
	return out, nil
}
