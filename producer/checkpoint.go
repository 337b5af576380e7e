package producer

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

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
	// ResnapshotSince, when set, says the stream's collections must still be
	// snapshotted again after its history was lost, in a snapshot run
	// started at or after this cluster time (a schemas.Version). It is
	// cleared by the checkpoint committed once that snapshot is complete, so
	// a producer stopped during it finishes it when it starts again.
	ResnapshotSince int64 `json:"resnapshot_since,omitempty"`
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
	out := map[string]*Checkpoint{}
	err := topic.ReadLog(ctx, tc, tc.Streams(), nil, func(r *kgo.Record) error {
		if r.Value == nil {
			delete(out, string(r.Key))
			return nil
		}
		var c Checkpoint
		if err := json.Unmarshal(r.Value, &c); err != nil || c.Stream != string(r.Key) {
			return fmt.Errorf("not a checkpoint of stream %q", r.Key)
		}
		out[c.Stream] = &c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the checkpoint topic: %w", err)
	}
	return out, nil
}
