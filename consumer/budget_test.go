package consumer

import (
	"testing"
	"time"
)

func TestBudgetBlocksUntilGivenBack(t *testing.T) {
	b := newBudget(100)
	never := make(chan struct{})
	if !b.take(60, never, never) || !b.take(40, never, never) {
		t.Fatal("take within the budget failed")
	}
	got := make(chan bool)
	go func() { got <- b.take(10, never, never) }()
	select {
	case <-got:
		t.Fatal("take past the budget did not wait")
	case <-time.After(50 * time.Millisecond):
	}
	b.give(60)
	if !<-got {
		t.Fatal("take failed after bytes were given back")
	}
	if b.inUse() != 50 {
		t.Fatalf("in use %d, want 50", b.inUse())
	}
	stop := make(chan struct{})
	close(stop)
	if b.take(80, never, stop) {
		t.Fatal("take past the budget succeeded after stop")
	}
	b.give(50)
	if !b.take(500, never, never) { // larger than the whole budget: passes alone
		t.Fatal("an oversized take with nothing held failed")
	}
}

func TestHeldGivesBackOnceAfterKill(t *testing.T) {
	var h held
	if !h.add(10) || !h.add(5) || !h.remove(5) {
		t.Fatal("add/remove on a live worker failed")
	}
	if n := h.kill(); n != 10 {
		t.Fatalf("kill returned %d, want 10", n)
	}
	if h.add(1) || h.remove(1) {
		t.Fatal("add/remove on a stopped worker succeeded")
	}
}
