package consumer

import (
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"
)

// budget bounds the record bytes the consumer holds between poll and apply,
// across all partitions (MaxInflightBytes). The poll loop takes from it
// before it hands a polled slice to a worker; the worker gives back a batch's
// bytes once the batch is applied, and all it still holds when it stops.
type budget struct {
	mu   sync.Mutex
	used int64
	max  int64
	wake chan struct{} // closed (and replaced) when bytes are given back
}

func newBudget(max int64) *budget { return &budget{max: max, wake: make(chan struct{})} }

// take waits until n bytes fit (or nothing is held: a slice larger than the
// whole budget still passes, alone) and takes them. It reports false, taking
// nothing, if cancel or stop is closed first.
func (b *budget) take(n int64, cancel, stop <-chan struct{}) bool {
	for {
		b.mu.Lock()
		if b.used == 0 || b.used+n <= b.max {
			b.used += n
			b.mu.Unlock()
			return true
		}
		wake := b.wake
		b.mu.Unlock()
		select {
		case <-wake:
		case <-cancel:
			return false
		case <-stop:
			return false
		}
	}
}

// give returns n bytes.
func (b *budget) give(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	close(b.wake)
	b.wake = make(chan struct{})
	b.mu.Unlock()
}

// inUse is the number of bytes taken.
func (b *budget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// held is what one worker holds of the budget: the bytes of the slices handed
// to it and not yet applied. Once the worker stops, held is dead: the worker
// gave everything back, and whatever is handed to it after that is given back
// by the giver.
type held struct{ n atomic.Int64 }

const heldDead = -1 << 62

// add counts n more bytes for the worker; false if it has stopped.
func (h *held) add(n int64) bool {
	for {
		cur := h.n.Load()
		if cur < 0 {
			return false
		}
		if h.n.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

// remove uncounts n bytes the worker never got (the handing-over failed); false
// if the worker has stopped and so already gave them back.
func (h *held) remove(n int64) bool {
	for {
		cur := h.n.Load()
		if cur < 0 {
			return false
		}
		if h.n.CompareAndSwap(cur, cur-n) {
			return true
		}
	}
}

// kill marks the worker stopped and returns what it held.
func (h *held) kill() int64 { return h.n.Swap(heldDead) }

// recordBytes is what a record weighs in the budget and in batch limits.
func recordBytes(recs []*kgo.Record) int64 {
	var n int64
	for _, r := range recs {
		n += int64(len(r.Key) + len(r.Value))
	}
	return n
}
