package schemas

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.mongodb.org/mongo-driver/v2/bson"
)

func TestConflictReporterCountsAndLogsOnce(t *testing.T) {
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	r := NewConflictReporter(slog.New(slog.NewTextHandler(&logs, nil)), reg)
	c := testCollection(t)
	for i := range 3 {
		d, err := c.Normalize("shop", marshal(t, bson.D{{Key: "_id", Value: int32(i)}, {Key: "tenant_id", Value: "a"},
			{Key: "qty", Value: "three"}, {Key: "paid", Value: int32(1)}}))
		if err != nil {
			t.Fatal(err)
		}
		r.Report(d)
	}
	if got := testutil.ToFloat64(r.count.WithLabelValues("orders", "qty", "string")); got != 3 {
		t.Errorf("qty conflicts counted %v, want 3", got)
	}
	if got := testutil.ToFloat64(r.count.WithLabelValues("orders", "paid", "32-bit integer")); got != 3 {
		t.Errorf("paid conflicts counted %v, want 3", got)
	}
	if n := strings.Count(logs.String(), "does not fit"); n != 2 {
		t.Errorf("%d log lines, want one per column:\n%s", n, logs.String())
	}
}
