package snapshot

import (
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// spreadBalancer assigns the task partitions of the workers' group round
// robin: partition p goes to the (p mod n)-th of the n members, in the
// order of their instance ids (each worker's is fixed: static membership).
// The planner deals a run's chunks over consecutive partitions (see
// dealCycle), so every worker gets as many chunks as the next, give or
// take one, however the group formed. The sticky balancer it replaces
// keeps what each member held through the rebalances of a forming group:
// four workers of one process were measured reading 4, 3, 2 and 1 of ten
// chunks, the last two one after the other by one worker while the others
// were idle.
//
// It is cooperative, as the sticky one was: a rebalance revokes a partition
// from its owner before another member takes it, and leaves alone a worker
// that keeps all of its partitions.
type spreadBalancer struct {
	kgo.GroupBalancer // cooperative-sticky: its join metadata lists the partitions a member owns
}

func newSpreadBalancer() *spreadBalancer {
	return &spreadBalancer{GroupBalancer: kgo.CooperativeStickyBalancer()}
}

// spreadProtocol names the balancer in the group protocol.
const spreadProtocol = "docshift-spread"

func (*spreadBalancer) ProtocolName() string { return spreadProtocol }

func (s *spreadBalancer) MemberBalancer(members []kmsg.JoinGroupResponseMember) (kgo.GroupMemberBalancer, map[string]struct{}, error) {
	b, err := kgo.NewConsumerBalancer(s, members)
	if err != nil {
		return nil, nil, err
	}
	return b, b.MemberTopics(), nil
}

// Balance is called with the members sorted by instance id.
func (s *spreadBalancer) Balance(b *kgo.ConsumerBalancer, topics map[string]int32) kgo.IntoSyncAssignment {
	plan := b.NewPlan()
	for topic, partitions := range topics {
		var members []*kmsg.JoinGroupResponseMember
		b.EachMember(func(m *kmsg.JoinGroupResponseMember, meta *kmsg.ConsumerMemberMetadata) {
			for _, t := range meta.Topics {
				if t == topic {
					members = append(members, m)
					return
				}
			}
		})
		if len(members) == 0 {
			continue
		}
		for p := range partitions {
			plan.AddPartition(members[int(p)%len(members)], topic, p)
		}
	}
	plan.AdjustCooperative(b)
	return plan
}
