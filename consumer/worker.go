package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// polled is one partition's share of a poll.
type polled struct {
	recs []*kgo.Record
	hwm  int64 // the partition's high watermark when they were fetched
}

// worker applies one partition's records in offset order, in batches cut by
// count (MaxBatch), bytes (MaxBatchBytes) and time (BatchWait). While it
// applies a batch, the poll loop keeps fetching and queues up to
// PartitionBuffer polled slices behind it, as long as the consumer's
// in-flight budget (MaxInflightBytes, shared by all workers) allows; the
// worker gives a batch's bytes back once the batch is applied.
type worker struct {
	c         *Consumer
	topic     string
	partition int32
	in        chan polled
	quit      chan struct{}
	done      chan struct{}

	pending []*kgo.Record // fetched, not yet applied, in offset order
	bytes   int           // key+value bytes of pending
	hwm     int64
	held    held // bytes of the in-flight budget handed to this worker and not yet applied
}

func newWorker(c *Consumer, topic string, partition int32) *worker {
	return &worker{c: c, topic: topic, partition: partition,
		in: make(chan polled, c.cfg.PartitionBuffer), quit: make(chan struct{}), done: make(chan struct{})}
}

// run batches and applies until quit is closed (the partition was revoked or
// the consumer stops) or a batch fails for good. Records fetched but not yet
// applied when it stops stay uncommitted: the partition's next owner reads
// them again.
func (w *worker) run() {
	defer close(w.done)
	defer func() { w.c.budget.give(w.held.kill()) }() // what is pending or queued is dropped
	var wait <-chan time.Time
	for {
		if n := w.batchLen(); n > 0 && (n < len(w.pending) || w.full()) {
			if !w.flush(n) {
				return
			}
			wait = nil
			continue
		}
		if len(w.pending) > 0 && wait == nil {
			if w.c.cfg.BatchWait == 0 {
				if !w.flush(w.batchLen()) {
					return
				}
				continue
			}
			wait = time.After(w.c.cfg.BatchWait)
		}
		select {
		case <-w.quit:
			return
		case p := <-w.in:
			w.pending = append(w.pending, p.recs...)
			for _, r := range p.recs {
				w.bytes += len(r.Key) + len(r.Value)
			}
			w.hwm = p.hwm
		case <-wait:
			wait = nil
			if !w.flush(w.batchLen()) {
				return
			}
		}
	}
}

// full reports whether pending holds a whole batch.
func (w *worker) full() bool {
	return len(w.pending) >= w.c.cfg.MaxBatch || w.bytes >= w.c.cfg.MaxBatchBytes
}

// batchLen is the number of pending records the next batch takes: as many as
// fit the count and byte limits, and at least one.
func (w *worker) batchLen() int {
	n, bytes := 0, 0
	for _, r := range w.pending {
		b := len(r.Key) + len(r.Value)
		if n == w.c.cfg.MaxBatch || (n > 0 && bytes+b > w.c.cfg.MaxBatchBytes) {
			break
		}
		n++
		bytes += b
	}
	return n
}

// flush applies the first n pending records and commits their offsets. It
// reports false when the worker must stop: the consumer is shutting down past
// its grace, or the batch failed for good (the consumer then stops too).
func (w *worker) flush(n int) bool {
	batch := w.pending[:n]
	if err := w.apply(batch); err != nil {
		if !errors.Is(err, context.Canceled) {
			w.c.fail(err)
		}
		return false
	}
	n64 := recordBytes(batch)
	w.bytes -= int(n64)
	if w.held.remove(n64) {
		w.c.budget.give(n64)
	}
	rest := copy(w.pending, w.pending[n:]) // keep the backing array, drop the references
	clear(w.pending[rest:])
	w.pending = w.pending[:rest]
	return true
}

// apply applies one batch (records that can never apply go to the dead-letter
// topic), then commits the batch's offsets.
//
// At most MaxConcurrentBatches batches, of all workers, are decoded and
// applied at once: a decoded batch weighs several times its records.
func (w *worker) apply(recs []*kgo.Record) error {
	ctx := w.c.workCtx
	select {
	case w.c.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-w.c.slots }()
	start := time.Now()
	written, err := w.c.applyRecords(ctx, recs)
	if err != nil {
		return fmt.Errorf("applying %s/%d offsets %d-%d: %w",
			w.topic, w.partition, recs[0].Offset, recs[len(recs)-1].Offset, err)
	}
	// The transaction committed (and dead letters are acknowledged): only
	// now may the offsets move. The last record may be a transaction marker;
	// committing past it is what lets the group's offset reach the end.
	last := recs[len(recs)-1]
	if err := w.c.client.CommitRecords(ctx, last); err != nil {
		// Not fatal: the next owner re-applies these records, and the
		// version guard makes that a no-op.
		w.c.log.Warn("committing offsets", "topic", w.topic, "partition", w.partition, "offset", last.Offset+1, "err", err)
	}
	w.c.applied.Add(int64(len(recs)))
	w.c.metrics.batch(w.topic, w.partition, len(recs), written, time.Since(start), w.hwm-(last.Offset+1))
	return nil
}
