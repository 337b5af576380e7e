package topic_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/docshift/docshift/internal/services"
)

// brokerIdentity asks a broker who it is: the cluster id (DescribeCluster)
// and the finalized features it reports in ApiVersions (a KRaft Apache Kafka
// broker reports metadata.version there).
func brokerIdentity(ctx context.Context, t *testing.T, cl *kgo.Client) (clusterID string, features map[string]int16) {
	t.Helper()
	dc := kmsg.NewPtrDescribeClusterRequest()
	dresp, err := dc.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("DescribeCluster: %v", err)
	}
	clusterID = dresp.ClusterID
	av := kmsg.NewPtrApiVersionsRequest()
	av.ClientSoftwareName = "docshift-test"
	av.ClientSoftwareVersion = "0"
	aresp, err := av.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("ApiVersions: %v", err)
	}
	features = map[string]int16{}
	for _, f := range aresp.FinalizedFeatures {
		features[f.Name] = f.MaxVersionLevel
	}
	return clusterID, features
}

// TestBrokerIsApacheKafka proves the tests talk to the Apache Kafka broker the
// services script formatted and started, not an in-process fake: its cluster
// id is the one the script wrote into the broker's storage, and it reports the
// KRaft metadata.version feature.
func TestBrokerIsApacheKafka(t *testing.T) {
	_, cl := services.Kafka(t)
	want := os.Getenv("KAFKA_CLUSTER_ID")
	if want == "" {
		t.Fatal("KAFKA_SEEDS is set but KAFKA_CLUSTER_ID is not: start the services with `make services-up`")
	}
	ctx := services.Context(t, 30*time.Second)
	id, features := brokerIdentity(ctx, t, cl)
	if id != want {
		t.Fatalf("cluster id %q, want %q (the id the services script formatted the storage with)", id, want)
	}
	if features["metadata.version"] <= 0 {
		t.Fatalf("broker reports no metadata.version feature (%v): not a KRaft Apache Kafka broker", features)
	}
}

// TestBrokerIdentityTellsFakeApart shows the check above can fail: kfake
// answers with a cluster id of its own, not the one the script formatted.
func TestBrokerIdentityTellsFakeApart(t *testing.T) {
	fake, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(fake.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, features := brokerIdentity(ctx, t, cl)
	if want := os.Getenv("KAFKA_CLUSTER_ID"); want != "" && id == want {
		t.Fatalf("kfake reports the real broker's cluster id %q", id)
	}
	if id == "" {
		t.Fatal("kfake reports no cluster id: brokerIdentity read nothing")
	}
	_ = features // kfake reports metadata.version too: the cluster id is what tells them apart
}
