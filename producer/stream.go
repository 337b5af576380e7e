package producer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/docshift/docshift/schemas"
	"github.com/docshift/docshift/source"
	"github.com/docshift/docshift/topic"
)

// stream is one change stream and the transactional producer that
// publishes its events.
type stream struct {
	p      *Producer
	id     string // "collection:db.coll", "database:db" or "deployment"
	db     string // empty for the deployment
	coll   string // empty unless one collection
	covers []schemas.Namespace

	ctx    context.Context
	kc     *kgo.Client
	cp     *Checkpoint
	warned map[string]bool
	resnap *resnapshot // the snapshot after a lost history, while it runs
}

// resnapshot is the snapshot of a stream's collections after a lost
// history, running beside the stream. It outlives a run of the stream that
// fails and is reopened; it ends with the stream's follow.
type resnapshot struct {
	since  int64      // the checkpoint's ResnapshotSince it was started for
	result chan error // its outcome, once
	cancel context.CancelFunc
	exited chan struct{}
}

// transactionalID is stable per stream, so a restarted producer fences the
// transactions of the process it replaces.
func (s *stream) transactionalID() string { return s.p.topics.Prefix + "-producer-" + s.id }

// open connects the stream's transactional producer and fences any previous
// owner of its transactional id (its open transaction is aborted).
func (s *stream) open(ctx context.Context) error {
	kc, err := topic.NewClient(ctx, s.p.topics, s.p.log,
		kgo.TransactionalID(s.transactionalID()),
		kgo.TransactionTimeout(time.Minute),
	)
	if err != nil {
		return err
	}
	if err := topic.TakeTransactionalID(ctx, kc); err != nil {
		kc.Close()
		return fmt.Errorf("transactional producer %s: %w", s.transactionalID(), err)
	}
	s.kc = kc
	return nil
}

// run opens the stream at its checkpoint and publishes events until ctx is
// cancelled or an error occurs. Whatever it returns, every event before the
// last committed checkpoint is in Kafka exactly once, and none after it.
func (s *stream) run(ctx context.Context) (err error) {
	s.ctx = ctx
	s.warned = map[string]bool{}
	if err := s.open(ctx); err != nil {
		return err
	}
	defer func() {
		if s.kc != nil {
			// An open transaction is aborted: nothing half-written is visible.
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			_ = s.kc.EndTransaction(actx, kgo.TryAbort)
			cancel()
			s.kc.Close()
			s.kc = nil
		}
	}()
	s.enablePreImages(ctx)
	cps, err := ReadCheckpoints(ctx, s.p.topics)
	if err != nil {
		return err
	}
	s.cp = cps[s.id]
	if s.cp == nil {
		start, err := s.startPoint(ctx)
		if err != nil {
			return err
		}
		// Record the start before reading anything: a restart then resumes
		// here, not at a later "now".
		s.cp = &Checkpoint{Stream: s.id, ClusterTime: schemas.Version(start)}
		if err := s.commit(ctx, nil, 0, s.cp.Token, s.cp.ClusterTime, false); err != nil {
			return err
		}
		s.p.log.Info("change stream starts", "stream", s.id, "cluster_time", start)
	}
	if s.cp.ResnapshotSince != 0 {
		if err := s.startResnapshot(ctx); err != nil {
			return err
		}
	}
	cs, err := s.watch(ctx)
	if err != nil {
		return err
	}
	defer cs.Close(context.WithoutCancel(ctx))
	return s.loop(ctx, changeStream{cs})
}

// startResnapshot starts the snapshot of the stream's collections its
// checkpoint asks for, beside the stream, unless it is already running. One
// running for an earlier loss is stopped first: chunks it finished before
// the stream lost its history again do not cover the second loss.
func (s *stream) startResnapshot(ctx context.Context) error {
	if s.resnap != nil && s.resnap.since == s.cp.ResnapshotSince {
		return nil
	}
	s.stopResnapshot()
	since := schemas.TimestampOf(s.cp.ResnapshotSince)
	if s.p.cfg.OnHistoryLost != HistoryLostResnapshot || s.p.Resnapshot == nil {
		return fmt.Errorf("%w: stream %s restarted at cluster time %v after losing its history (%s), and the snapshot "+
			"of its collections that repairs the loss is unfinished: run with --on-history-lost=resnapshot to finish it",
			ErrHistoryLost, s.id, since, s.cp.HistoryLost)
	}
	ctx, cancel := context.WithCancel(ctx)
	r := &resnapshot{since: s.cp.ResnapshotSince, result: make(chan error, 1), cancel: cancel, exited: make(chan struct{})}
	s.resnap = r
	go func() {
		defer close(r.exited)
		select { // one snapshot at a time in this process
		case s.p.resnapshotting <- struct{}{}:
			defer func() { <-s.p.resnapshotting }()
		case <-ctx.Done():
			r.result <- ctx.Err()
			return
		}
		s.p.log.Info("snapshotting the stream's collections again", "stream", s.id, "collections", s.covers, "since", since)
		r.result <- s.p.Resnapshot(ctx, s.covers, since)
	}()
	return nil
}

// stopResnapshot cancels a running snapshot after a lost history and waits
// for it to stop; its finished chunks stay recorded.
func (s *stream) stopResnapshot() {
	if s.resnap != nil {
		s.resnap.cancel()
		<-s.resnap.exited
		s.resnap = nil
	}
}

// resnapshotDone reports whether the running snapshot after a lost history
// has just completed, and its error if it failed.
func (s *stream) resnapshotDone() (bool, error) {
	if s.resnap == nil {
		return false, nil
	}
	select {
	case err := <-s.resnap.result:
		s.resnap = nil
		if err != nil {
			return false, fmt.Errorf("%w: stream %s: %w (its checkpoint still asks for it: the next start of the producer resumes it)",
				ErrResnapshot, s.id, err)
		}
		s.p.log.Info("the snapshot after the lost history is complete", "stream", s.id)
		return true, nil
	default:
		return false, nil
	}
}

// enablePreImages turns on pre-images for the stream's collections whose
// tenant is a document field (a delete event names its document by _id
// only; the pre-image tells its tenant). It needs MongoDB 6.0+ and the
// collMod privilege; without them it warns once, and such deletes stop the
// stream with ErrNoTenant unless the tenant field is in the document key.
func (s *stream) enablePreImages(ctx context.Context) {
	if !s.p.cfg.PreImages {
		return
	}
	for _, ns := range s.covers {
		c := s.p.mapping.Lookup(ns)
		if c == nil || c.Tenant.Field == "" {
			continue
		}
		err := source.EnablePreImages(ctx, s.p.mongo, ns.Database, ns.Collection)
		if err != nil && !s.warned["preimages"+ns.String()] {
			s.warned["preimages"+ns.String()] = true
			s.p.log.Warn("could not enable pre-images; deletes need them to find their tenant",
				"collection", ns.String(), "err", err)
		}
	}
}

// startPoint is where a stream without a checkpoint starts: the producer's
// StartAt hook (the snapshot's start), else now.
func (s *stream) startPoint(ctx context.Context) (bson.Timestamp, error) {
	if s.p.StartAt != nil {
		ts, ok, err := s.p.StartAt(ctx)
		if err != nil {
			return bson.Timestamp{}, fmt.Errorf("finding where stream %s starts: %w", s.id, err)
		}
		if ok {
			return ts, nil
		}
	}
	ts, err := source.ClusterTime(ctx, s.p.mongo)
	return source.After(ts), err
}

// watch opens the change stream after the checkpoint.
func (s *stream) watch(ctx context.Context) (*mongo.ChangeStream, error) {
	cfg := s.p.cfg
	opts := options.ChangeStream().
		SetFullDocument(options.FullDocument(cfg.FullDocument)).
		SetMaxAwaitTime(max(cfg.BatchWait, 10*time.Millisecond)).
		SetBatchSize(int32(cfg.MaxBatch))
	if cfg.PreImages {
		opts.SetFullDocumentBeforeChange(options.WhenAvailable)
	}
	switch {
	case s.cp.Token != nil && s.cp.Invalidated:
		opts.SetStartAfter(bson.Raw(s.cp.Token))
	case s.cp.Token != nil:
		opts.SetResumeAfter(bson.Raw(s.cp.Token))
	default:
		ts := s.cp.StartTime()
		opts.SetStartAtOperationTime(&ts)
	}
	var cs *mongo.ChangeStream
	var err error
	switch {
	case s.coll != "":
		cs, err = s.p.mongo.Database(s.db).Collection(s.coll).Watch(ctx, mongo.Pipeline{}, opts)
	case s.db != "":
		cs, err = s.p.mongo.Database(s.db).Watch(ctx, mongo.Pipeline{}, opts)
	default:
		cs, err = s.p.mongo.Watch(ctx, mongo.Pipeline{}, opts)
	}
	if err != nil {
		return nil, s.classify(err)
	}
	return cs, nil
}

// classify names a lost history for what it is.
func (s *stream) classify(err error) error {
	if historyLost(err) {
		return fmt.Errorf("%w: the checkpoint of stream %s (cluster time %v, taken %s) is no longer in the oplog, "+
			"so the changes since then cannot be read: %v. Run with --on-history-lost=resnapshot to start the stream now "+
			"and snapshot its collections again, or grow the oplog (replSetResizeOplog) so this does not recur",
			ErrHistoryLost, s.id, s.cp.StartTime(), s.cp.At.Format(time.RFC3339), err)
	}
	return err
}

// events is what loop reads: a change stream, or a recorded one.
type events interface {
	TryNext(ctx context.Context) bool
	Event() bson.Raw
	Err() error
	ResumeToken() bson.Raw
}

// changeStream adapts a driver change stream to events.
type changeStream struct{ *mongo.ChangeStream }

func (c changeStream) Event() bson.Raw { return c.Current }

// batch is a transaction's worth of work: records ready to produce, and the
// checkpoint that follows them.
type batch struct {
	recs        []*kgo.Record
	events      int
	token       bson.Raw
	clusterTime int64 // of the last event (0: unchanged)
	invalidated bool
	ops         map[string]int
	lastEvent   bson.Timestamp
	// resnapshotted clears the checkpoint's pending snapshot after a lost
	// history: it has completed.
	resnapshotted bool
}

// loop reads events, turns them into records, and hands batches to a
// committer that writes each in one transaction with its checkpoint: the
// next batch is read and transformed while the previous one commits. A
// checkpoint alone is committed at least every heartbeat. Whatever loop
// returns, the committed checkpoints cover exactly the committed records.
func (s *stream) loop(ctx context.Context, es events) error {
	commits := make(chan batch, 1)
	committed := make(chan error, 1)
	go func() {
		defer close(committed)
		for b := range commits {
			if err := s.commitBatch(ctx, b); err != nil {
				committed <- err
				for range commits { // drain: nothing after a failed batch may commit
				}
				return
			}
		}
	}()
	err := s.read(ctx, es, commits, committed)
	close(commits)
	if cerr, ok := <-committed; ok && cerr != nil {
		return cerr
	}
	return err
}

// read is loop's reading side.
func (s *stream) read(ctx context.Context, es events, commits chan<- batch, committed <-chan error) error {
	cfg := s.p.cfg
	cur := batch{ops: map[string]int{}}
	var first time.Time
	lastCommit := time.Now()
	lastToken := s.cp.Token
	send := func(b batch) error {
		select {
		case commits <- b:
			lastCommit = time.Now()
			return nil
		case err := <-committed:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for {
		got := es.TryNext(ctx)
		if got {
			e, err := parseEvent(es.Event())
			if err != nil {
				return err
			}
			recs, err := s.records(e)
			if err != nil {
				return err
			}
			if cur.events == 0 {
				first = time.Now()
			}
			cur.recs = append(cur.recs, recs...)
			cur.events++
			cur.ops[e.op]++
			cur.token = e.token
			if ct := schemas.Version(e.clusterTime); ct != 0 {
				cur.clusterTime, cur.lastEvent = ct, e.clusterTime
			}
			if e.op == "invalidate" {
				// The stream ends here (its collection was dropped or
				// renamed): commit, then reopen after the invalidate.
				cur.invalidated = true
				if err := send(cur); err != nil {
					return err
				}
				return fmt.Errorf("stream %s was invalidated (collection dropped or renamed); reopening after it", s.id)
			}
			if cur.events < cfg.MaxBatch && time.Since(first) < cfg.BatchWait {
				continue
			}
		} else if err := es.Err(); err != nil {
			return s.classify(err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		done, err := s.resnapshotDone()
		if err != nil {
			return err
		}
		cur.resnapshotted = cur.resnapshotted || done
		switch {
		case cur.events > 0 || cur.resnapshotted:
			if err := send(cur); err != nil {
				return err
			}
			if cur.token != nil {
				lastToken = cur.token
			}
			cur = batch{ops: map[string]int{}}
		case time.Since(lastCommit) >= cfg.Heartbeat:
			// Quiet stream: checkpoint the server's latest resume token (the
			// post-batch resume token moves on even with no events), so a
			// restart does not start from an old point in the oplog.
			if tok := es.ResumeToken(); tok != nil && string(tok) != string(lastToken) {
				if err := send(batch{token: append(bson.Raw(nil), tok...)}); err != nil {
					return err
				}
				lastToken = tok
			}
			s.p.metrics.checkpoint.WithLabelValues(s.id).Set(float64(time.Now().Unix()))
			lastCommit = time.Now()
		}
	}
}

// commitBatch commits one batch and counts it.
func (s *stream) commitBatch(ctx context.Context, b batch) error {
	ct := b.clusterTime
	if ct == 0 {
		ct = s.cp.ClusterTime
	}
	token, invalidated := b.token, b.invalidated
	if token == nil { // no event and no newer token: the stream's place is unchanged
		token, invalidated = s.cp.Token, s.cp.Invalidated
	}
	if b.resnapshotted {
		cp := *s.cp
		cp.ResnapshotSince = 0
		s.cp = &cp
	}
	if err := s.commit(ctx, b.recs, b.events, token, ct, invalidated); err != nil {
		return err
	}
	for op, n := range b.ops {
		s.p.metrics.events.WithLabelValues(s.id, op).Add(float64(n))
	}
	if b.lastEvent.T != 0 {
		s.p.metrics.lag.WithLabelValues(s.id).Set(time.Since(time.Unix(int64(b.lastEvent.T), 0)).Seconds())
	}
	return nil
}

// records turns one event into its records (none for events that change no
// followed document).
func (s *stream) records(e *event) ([]*kgo.Record, error) {
	if !e.isData() {
		if e.op != "invalidate" && !s.warned[e.op+e.ns.String()] {
			s.warned[e.op+e.ns.String()] = true
			s.p.log.Warn("change stream event changes no document; the target table is left as it is",
				"stream", s.id, "op", e.op, "collection", e.ns.String())
		}
		s.p.metrics.skipped.WithLabelValues(s.id, e.op).Inc()
		return nil, nil
	}
	c := s.p.mapping.Lookup(e.ns)
	if c == nil || !s.p.cfg.follows(e.ns.String()) {
		s.p.metrics.skipped.WithLabelValues(s.id, "not followed").Inc()
		return nil, nil
	}
	out, err := s.toRecords(e, c)
	if err != nil {
		return nil, fmt.Errorf("%s event at %v on %s: %w", e.op, e.clusterTime, e.ns, err)
	}
	if out.skipped != "" {
		s.p.metrics.skipped.WithLabelValues(s.id, out.skipped).Inc()
		return nil, nil
	}
	for i, r := range out.records {
		if topic.Oversized(r.Key, r.Value) {
			size := len(r.Key) + len(r.Value)
			if s.p.cfg.Oversize != OversizeDLQ {
				return nil, fmt.Errorf("%w: %s event on %s is %d bytes (the limit is %d); run with --oversize=dlq to send such events to %s instead",
					ErrOversize, e.op, e.ns, size, topic.MaxRecordBytes, s.p.topics.DLQ())
			}
			s.p.metrics.deadLetters.WithLabelValues(s.id, "oversize").Inc()
			out.records[i] = s.p.deadLetter(e, fmt.Sprintf("event of %d bytes exceeds the record limit of %d", size, topic.MaxRecordBytes), nil)
		}
	}
	return out.records, nil
}

// commit writes records and the checkpoint (token, cluster time) in one
// Kafka transaction.
func (s *stream) commit(ctx context.Context, recs []*kgo.Record, events int, token bson.Raw, clusterTime int64, invalidated bool) error {
	cp := *s.cp
	cp.Token = append([]byte(nil), token...)
	cp.ClusterTime = clusterTime
	cp.Invalidated = invalidated
	cp.At = time.Now().UTC()
	cp.Events = s.cp.Events + int64(events)
	cpRec, err := cp.record(s.p.topics.Streams())
	if err != nil {
		return err
	}
	if err := s.kc.BeginTransaction(); err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	var mu sync.Mutex
	var perr error
	done := func(_ *kgo.Record, err error) {
		if err != nil {
			mu.Lock()
			perr = errors.Join(perr, err)
			mu.Unlock()
		}
	}
	for _, r := range recs {
		s.kc.Produce(ctx, r, done)
	}
	s.kc.Produce(ctx, cpRec, done)
	if err := s.kc.Flush(ctx); err != nil {
		perr = errors.Join(perr, err)
	}
	end := kgo.TryCommit
	if perr != nil {
		end = kgo.TryAbort
	}
	if err := s.kc.EndTransaction(ctx, end); err != nil {
		return fmt.Errorf("ending transaction of stream %s: %w", s.id, errors.Join(err, perr))
	}
	if perr != nil {
		return fmt.Errorf("producing the records of stream %s: %w", s.id, perr)
	}
	s.cp = &cp
	s.p.metrics.transactions.WithLabelValues(s.id).Inc()
	s.p.metrics.checkpoint.WithLabelValues(s.id).Set(float64(cp.At.Unix()))
	return nil
}

// reset replaces the stream's checkpoint with a fresh start after the
// cluster time now (after a lost history), noting why and that its
// collections must be snapshotted again in a run started at or after now.
func (s *stream) reset(ctx context.Context, now bson.Timestamp, why string) error {
	if err := s.open(ctx); err != nil {
		return err
	}
	defer func() { s.kc.Close(); s.kc = nil }()
	s.cp = &Checkpoint{Stream: s.id, HistoryLost: why, ResnapshotSince: schemas.Version(now)}
	return s.commit(ctx, nil, 0, nil, schemas.Version(source.After(now)), false)
}
