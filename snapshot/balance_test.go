package snapshot

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// joinMember is a member of a group join as a cooperative member sends it:
// its instance id, its topics and the partitions it owns.
func joinMember(instance string, owned map[string][]int32, topics ...string) kmsg.JoinGroupResponseMember {
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Version = 3
	meta.Topics = topics
	for t, ps := range owned {
		o := kmsg.NewConsumerMemberMetadataOwnedPartition()
		o.Topic, o.Partitions = t, ps
		meta.OwnedPartitions = append(meta.OwnedPartitions, o)
	}
	m := kmsg.NewJoinGroupResponseMember()
	m.MemberID = "member-" + instance
	m.InstanceID = &instance
	m.ProtocolMetadata = meta.AppendTo(nil)
	return m
}

func balance(t *testing.T, members []kmsg.JoinGroupResponseMember, topics map[string]int32) map[string]map[string][]int32 {
	t.Helper()
	gb, _, err := newSpreadBalancer().MemberBalancer(members)
	if err != nil {
		t.Fatal(err)
	}
	out, err := gb.(kgo.GroupMemberBalancerOrError).BalanceOrError(topics)
	if err != nil {
		t.Fatal(err)
	}
	return out.(*kgo.BalancePlan).AsMemberIDMap()
}

func TestSpreadBalancerDealsPartitionsInTurn(t *testing.T) {
	// Members as the client hands them over: sorted by instance id.
	members := []kmsg.JoinGroupResponseMember{
		joinMember("w-0", nil, "tasks"), joinMember("w-1", nil, "tasks"), joinMember("w-2", nil, "tasks"),
	}
	got := balance(t, members, map[string]int32{"tasks": 8})
	want := map[string][]int32{"member-w-0": {0, 3, 6}, "member-w-1": {1, 4, 7}, "member-w-2": {2, 5}}
	for m, ps := range want {
		if fmt.Sprint(got[m]["tasks"]) != fmt.Sprint(ps) {
			t.Errorf("%s got %v, want %v (all: %v)", m, got[m]["tasks"], ps, got)
		}
	}
	// Ten chunks dealt as the planner does, from any start, reach every
	// member 3 or 4 times.
	owner := map[int]string{}
	for m, ts := range got {
		for _, p := range ts["tasks"] {
			owner[int(p)] = m
		}
	}
	cycle := cycleFor(8, len(members))
	for start := range 8 {
		per := map[string]int{}
		for k := range 10 {
			per[owner[(start+k)%cycle]]++
		}
		for m, n := range per {
			if n < 3 || n > 4 || len(per) != 3 {
				t.Errorf("chunks %d..%d: per member %v (%s: %d), want 3 or 4 each", start, start+9, per, m, n)
				break
			}
		}
	}
}

// TestSpreadBalancerIsCooperative: a partition that moves is first taken
// from its owner (left out of this assignment: the next rebalance gives it
// to its new member); a member that keeps what it owns loses nothing.
func TestCycleFor(t *testing.T) {
	for _, c := range []struct{ partitions, members, want int }{
		{32, 4, 32}, {32, 3, 30}, {32, 12, 24}, {32, 0, 32}, {32, 40, 32}, {1, 1, 1},
	} {
		if got := cycleFor(c.partitions, c.members); got != c.want {
			t.Errorf("cycleFor(%d, %d) = %d, want %d", c.partitions, c.members, got, c.want)
		}
	}
}

func TestSpreadBalancerIsCooperative(t *testing.T) {
	if !newSpreadBalancer().IsCooperative() {
		t.Fatal("not cooperative")
	}
	// w-0 owned every partition; w-1 joins.
	members := []kmsg.JoinGroupResponseMember{
		joinMember("w-0", map[string][]int32{"tasks": {0, 1, 2, 3}}, "tasks"), joinMember("w-1", nil, "tasks"),
	}
	got := balance(t, members, map[string]int32{"tasks": 4})
	if fmt.Sprint(got["member-w-0"]["tasks"]) != "[0 2]" || len(got["member-w-1"]["tasks"]) != 0 {
		t.Fatalf("got %v; want w-0 to keep 0 and 2 and w-1 to get nothing until 1 and 3 are revoked", got)
	}
	// The next join: w-0 has let 1 and 3 go.
	members = []kmsg.JoinGroupResponseMember{
		joinMember("w-0", map[string][]int32{"tasks": {0, 2}}, "tasks"), joinMember("w-1", nil, "tasks"),
	}
	got = balance(t, members, map[string]int32{"tasks": 4})
	if fmt.Sprint(got["member-w-0"]["tasks"]) != "[0 2]" || fmt.Sprint(got["member-w-1"]["tasks"]) != "[1 3]" {
		t.Fatalf("got %v; want w-0 [0 2] and w-1 [1 3]", got)
	}
}
