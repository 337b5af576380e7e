package topic_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/docshift/docshift/topic"
)

func fetchWith(errs ...error) kgo.Fetches {
	var parts []kgo.FetchPartition
	for i, err := range errs {
		parts = append(parts, kgo.FetchPartition{Partition: int32(i), Err: err})
	}
	return kgo.Fetches{{Topics: []kgo.FetchTopic{{Topic: "t", Partitions: parts}}}}
}

func TestFetchErr(t *testing.T) {
	for _, tc := range []struct {
		name string
		errs []error
		want string // "" for no error
	}{
		{"none", nil, ""},
		{"retriable broker errors are the client's", []error{kerr.NotLeaderForPartition, kerr.UnknownTopicOrPartition}, ""},
		{"a lost group session is rejoined", []error{&kgo.ErrGroupSession{Err: kerr.CoordinatorNotAvailable}}, ""},
		{"a member whose session expired rejoins", []error{&kgo.ErrGroupSession{Err: kerr.UnknownMemberID}, &kgo.ErrGroupSession{Err: kerr.IllegalGeneration}}, ""},
		{"a member fenced by another with its instance id is the caller's", []error{&kgo.ErrGroupSession{Err: kerr.FencedInstanceID}}, "reading t[0]: unable to join group session: FENCED_INSTANCE_ID"},
		{"a group session denied is the caller's", []error{&kgo.ErrGroupSession{Err: kerr.GroupAuthorizationFailed}}, "reading t[0]: unable to join group session: GROUP_AUTHORIZATION_FAILED"},
		{"data loss is reset by the client", []error{&kgo.ErrDataLoss{Topic: "t"}}, ""},
		{"authorization is the caller's", []error{kerr.NotLeaderForPartition, kerr.TopicAuthorizationFailed}, "reading t[1]: TOPIC_AUTHORIZATION_FAILED"},
		{"a cancelled poll is returned", []error{context.Canceled}, "reading t[0]: context canceled"},
		{"a closed client is returned", []error{kgo.ErrClientClosed}, "reading t[0]: client closed"},
		{"anything else is returned", []error{errors.New("bad batch")}, "reading t[0]: bad batch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := topic.FetchErr(fetchWith(tc.errs...), nil)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("error %v, want none", err)
			case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
				t.Fatalf("error %v, want one starting %q", err, tc.want)
			}
		})
	}
}
