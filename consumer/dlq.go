package consumer

import (
	"context"
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"
)

// deadLetter is a record that can never apply, and why.
type deadLetter struct {
	rec *kgo.Record
	err error
}

// Headers docshift adds to a dead-lettered record. The record keeps its
// original key, value and headers.
const (
	HeaderError     = "error"
	HeaderTopic     = "topic"
	HeaderPartition = "partition"
	HeaderOffset    = "offset"
)

// deadLetters produces records that can never apply to the dead-letter topic.
type deadLetters struct {
	client *kgo.Client
	topic  string
}

// send produces the dead letters and returns once the broker acknowledged
// every one of them: only then may their offsets be committed.
func (d *deadLetters) send(ctx context.Context, letters []deadLetter) error {
	recs := make([]*kgo.Record, len(letters))
	for i, l := range letters {
		r := l.rec
		headers := make([]kgo.RecordHeader, 0, len(r.Headers)+4)
		headers = append(headers,
			kgo.RecordHeader{Key: HeaderError, Value: []byte(l.err.Error())},
			kgo.RecordHeader{Key: HeaderTopic, Value: []byte(r.Topic)},
			kgo.RecordHeader{Key: HeaderPartition, Value: []byte(strconv.FormatInt(int64(r.Partition), 10))},
			kgo.RecordHeader{Key: HeaderOffset, Value: []byte(strconv.FormatInt(r.Offset, 10))},
		)
		headers = append(headers, r.Headers...)
		recs[i] = &kgo.Record{Topic: d.topic, Key: r.Key, Value: r.Value, Headers: headers, Timestamp: r.Timestamp}
	}
	if err := d.client.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("producing %d records to the dead-letter topic %s: %w", len(recs), d.topic, err)
	}
	return nil
}
