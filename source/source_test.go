package source

import (
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// TestReplyTime: a reply's operationTime comes before its $clusterTime (which
// can be later: it counts writes still committing); either alone serves,
// and a reply with neither, or with them of the wrong type, has no time.
func TestReplyTime(t *testing.T) {
	op, cluster := bson.Timestamp{T: 100, I: 3}, bson.Timestamp{T: 100, I: 9}
	clusterDoc := bson.D{{Key: "clusterTime", Value: cluster}}
	for _, tc := range []struct {
		name  string
		reply bson.D
		want  bson.Timestamp
		ok    bool
	}{
		{"both", bson.D{{Key: "ok", Value: 1.0}, {Key: "$clusterTime", Value: clusterDoc}, {Key: "operationTime", Value: op}}, op, true},
		{"operationTime only", bson.D{{Key: "operationTime", Value: op}}, op, true},
		{"$clusterTime only", bson.D{{Key: "$clusterTime", Value: clusterDoc}}, cluster, true},
		{"operationTime not a timestamp", bson.D{{Key: "operationTime", Value: "soon"}, {Key: "$clusterTime", Value: clusterDoc}}, cluster, true},
		{"neither", bson.D{{Key: "ok", Value: 1.0}}, bson.Timestamp{}, false},
	} {
		raw, err := bson.Marshal(tc.reply)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := replyTime(raw)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: replyTime = %v, %v; want %v, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}
