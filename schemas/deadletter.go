package schemas

import (
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/docshift/docshift/topic"
)

// DeadLetter is the dead-letter record, for topic dlq, of a document of ns
// (id: its _id as canonical Extended JSON) that cannot go to its table, seen
// in an operation op ("r" in a snapshot, a change stream's operationType):
// keyed "<db.coll>/<id>"; valued the document as canonical Extended JSON,
// if doc is given and that fits in half a record (else no value: the key and
// headers name it); the reason, the source and op in headers, and the
// cluster time (a Version) when version is not 0.
func DeadLetter(dlq string, ns Namespace, id, op string, version int64, reason string, doc bson.Raw) *kgo.Record {
	var value []byte
	if doc != nil {
		if s, err := ExtJSON(bson.RawValue{Type: bson.TypeEmbeddedDocument, Value: doc}, true); err == nil && len(s) < topic.MaxRecordBytes/2 {
			value = []byte(s)
		}
	}
	headers := []kgo.RecordHeader{
		{Key: "error", Value: []byte(reason)},
		{Key: "source", Value: []byte(ns.String())},
		{Key: "op", Value: []byte(op)},
	}
	if version != 0 {
		headers = append(headers, kgo.RecordHeader{Key: "cluster_time", Value: []byte(strconv.FormatInt(version, 10))})
	}
	return &kgo.Record{Topic: dlq, Key: []byte(ns.String() + "/" + id), Value: value, Headers: headers}
}
