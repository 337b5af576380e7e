package snapshot

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// TestRecordSpaceShares: a batch's space goes back for reuse only once every
// record's promise has run and its maker has released it too, in whichever
// order; each promise still reaches the worker's promise with its record
// and error.
func TestRecordSpaceShares(t *testing.T) {
	for _, makerFirst := range []bool{true, false} {
		sp := takeSpace(3, 100, 10)
		if len(sp.recs) != 3 || cap(sp.values) < 100 || cap(sp.keys) < 10 {
			t.Fatalf("space for 3 records: %d records, %d value bytes, %d key bytes", len(sp.recs), cap(sp.values), cap(sp.keys))
		}
		var seen []error
		acked := sp.acked(func(r *kgo.Record, err error) {
			if r != &sp.recs[len(seen)] {
				t.Errorf("promise %d got another record", len(seen))
			}
			seen = append(seen, err)
		})
		failed := errors.New("aborted")
		if makerFirst {
			sp.release()
		}
		acked(&sp.recs[0], nil)
		acked(&sp.recs[1], failed)
		want := int64(2) // the last record's and the maker's
		if makerFirst {
			want = 1
		}
		if got := sp.left.Load(); got != want {
			t.Fatalf("maker first %v: %d shares left with one record unacknowledged, want %d", makerFirst, got, want)
		}
		acked(&sp.recs[2], nil)
		if !makerFirst {
			if got := sp.left.Load(); got != 1 {
				t.Fatalf("every record acknowledged but the maker holds its share: %d left, want 1", got)
			}
			sp.release()
		}
		if got := sp.left.Load(); got != 0 {
			t.Fatalf("maker first %v: %d shares left at the end, want 0", makerFirst, got)
		}
		if len(seen) != 3 || seen[0] != nil || seen[1] != failed || seen[2] != nil {
			t.Fatalf("the worker's promise saw %v, want [nil aborted nil]", seen)
		}
	}
}

// TestTakeBatchFits: a batch taken for a size has an empty arena that holds
// it, whatever batch was given back before.
func TestTakeBatchFits(t *testing.T) {
	small := docBatch{arena: make([]byte, 10, 16), docs: make([]bson.Raw, 2)}
	small.release()
	for _, size := range []int{8, 1 << 10} {
		b := takeBatch(size)
		if len(b.arena) != 0 || cap(b.arena) < size || len(b.docs) != 0 {
			t.Fatalf("batch for %d bytes: arena %d/%d, %d documents", size, len(b.arena), cap(b.arena), len(b.docs))
		}
	}
}
