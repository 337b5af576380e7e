package snapshot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"

	"github.com/docshift/docshift/schemas"
	"github.com/docshift/docshift/source"
	"github.com/docshift/docshift/topic"
)

// worker is one member of the snapshot workers' consumer group. It takes one
// task at a time and reads the task's chunk inside one Kafka transaction that
// holds the chunk's records, its done mark in the state topic and the task's
// offset, so a chunk is either wholly done, once, or not at all: a worker
// killed mid-chunk leaves an open transaction that the next session with its
// transactional id (or the transaction timeout) aborts, and the uncommitted
// task goes to another member.
type worker struct {
	name string // transactional id
	sess *kgo.GroupTransactSession
	sh   *shared
	// revoked is set when the group takes a partition from this worker
	// (or it loses them all) and cleared when a transaction ends: the
	// session then aborts the next transaction at its end, whatever it
	// did, so a task polled meanwhile is given back untouched.
	revoked atomic.Bool
	// skipped counts the tasks to skip (see handle) in the open
	// transaction; only the worker's goroutine uses it.
	skipped int
	// revokeAt is cfg.revokedAfterSkips until it has served.
	revokeAt int
	// ended is when the last transaction ended (see endSkips), begun when
	// the open one began (see outlived).
	ended, begun time.Time
}

// shared is what the workers of one process share.
type shared struct {
	cfg      Config
	mapping  *schemas.Mapping
	mongo    *mongo.Client
	topics   topic.Config
	registry *schemas.Registry
	follower *follower
	metrics  *metrics
	log      *slog.Logger
	// conflicts counts values that did not fit their columns and logs the
	// first of each kind once.
	conflicts *schemas.ConflictReporter
	// group tells when the workers' group has settled.
	group *groupSettler
	// run is closed once this process knows the current run: at once in
	// a --worker process; in the planning process once it has recorded a
	// new run or chosen to resume the last one. Until then a task of an
	// earlier run could pass for one of the current run.
	run chan struct{}
	// schemas by namespace, registered once per process.
	mu      sync.Mutex
	schemas map[string]*schemas.Schema
}

func newWorker(ctx context.Context, sh *shared, i int) (*worker, error) {
	w := &worker{name: fmt.Sprintf("%s-snapshot-%s-%d", sh.topics.Prefix, sh.cfg.WorkerID, i), sh: sh}
	// Set before the session exists: it joins the group at once, and a
	// revocation its callbacks record while the transactional id is still
	// being taken (slow on a new broker) must not be overwritten.
	w.revoked.Store(sh.cfg.revokedAtStart)
	name := w.name
	tasks := sh.topics.SnapshotTasks()
	sess, err := kgo.NewGroupTransactSession(topic.ClientOpts(sh.topics, sh.log.With("worker", name),
		kgo.TransactionalID(name),
		kgo.TransactionTimeout(sh.cfg.TxnTimeout),
		kgo.ConsumerGroup(sh.topics.SnapshotGroup()),
		kgo.ConsumeTopics(tasks),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		// The sticky balancer second: a group still holding workers of a
		// docshift without spreadBalancer agrees on it (during an upgrade).
		kgo.Balancers(newSpreadBalancer(), kgo.CooperativeStickyBalancer()),
		kgo.SessionTimeout(WorkerSessionTimeout),
		// A static member: a process restarted with the same --worker-id
		// (after a crash or kill -9) takes its workers' places in the group
		// at once, with their partitions, instead of waiting out the killed
		// members' sessions in a rebalance, which would also abort every
		// transaction begun meanwhile. A clean exit leaves the group
		// explicitly (leaveGroup).
		kgo.InstanceID(name),
		// Frequent heartbeats let a forming group (every worker of every
		// process joins at about the same time) settle in a fraction of a
		// second, before most chunk transactions begin: a rebalance aborts
		// the transaction in flight.
		kgo.HeartbeatInterval(100*time.Millisecond),
		// Tasks are few and small: a short long-poll hands a new one over
		// at once even where the broker does not wake a waiting
		// read-committed fetch when the task's transaction commits.
		kgo.FetchMaxWait(250*time.Millisecond),
		kgo.MaxBufferedRecords(sh.cfg.InFlight),
		// Records wait up to 50ms to fill larger batches: with a handful of
		// records per partition per batch the broker spends more on batches
		// than on records (measured: half its CPU saved). Nothing waits on
		// this latency; a chunk's end flushes at once.
		kgo.ProducerLinger(50*time.Millisecond),
		// As the session does: a cooperative rebalance that takes nothing
		// from this worker leaves its transaction alone.
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, rev map[string][]int32) {
			if len(rev) > 0 {
				w.revoked.Store(true)
			}
		}),
		kgo.OnPartitionsLost(func(context.Context, *kgo.Client, map[string][]int32) { w.revoked.Store(true) }),
	)...)
	if err != nil {
		return nil, fmt.Errorf("snapshot worker %s: %w", name, err)
	}
	if err := topic.Ping(ctx, sh.topics, sess.Client()); err != nil {
		sess.Close()
		return nil, err
	}
	if err := topic.TakeTransactionalID(ctx, sess.Client()); err != nil {
		sess.Close()
		return nil, fenced(fmt.Errorf("snapshot worker %s: %w", name, err))
	}
	w.sess = sess
	w.revokeAt = sh.cfg.revokedAfterSkips
	return w, nil
}

// WorkerSessionTimeout is how long the group waits for a silent worker
// before its tasks move to others (a killed process's workers, unless a
// process with the same --worker-id takes their places first).
const WorkerSessionTimeout = 10 * time.Second

// newWorkers makes the process's cfg.Workers workers concurrently.
func newWorkers(ctx context.Context, sh *shared) ([]*worker, error) {
	ws := make([]*worker, sh.cfg.Workers)
	errs := make([]error, len(ws))
	var wg sync.WaitGroup
	for i := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * sh.cfg.joinStagger)
			ws[i], errs[i] = newWorker(ctx, sh, i)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, w := range ws {
			if w != nil {
				w.sess.Close()
			}
		}
		return nil, err
	}
	return ws, nil
}

// memberID returns the worker's member id in its group ("" before it has
// joined).
func (w *worker) memberID() string {
	id, _ := w.sess.Client().GroupMetadata()
	return id
}

// run takes tasks until ctx is done and returns ctx.Err() then; it returns
// another error only for a failure it cannot recover from (the chunk's
// transaction is aborted first, so the chunk is left to another worker).
func (w *worker) run(ctx context.Context) error {
	defer w.sess.Close()
	for {
		rec, err := w.next(ctx)
		if err == nil && rec != nil {
			err = w.handle(ctx, rec)
		}
		if err != nil {
			if w.skipped > 0 {
				w.abort(ctx)
			}
			return fenced(err)
		}
	}
}

// skipLinger is how long a worker with skipped tasks in its open
// transaction waits for another task before it commits them.
const skipLinger = 20 * time.Millisecond

// maxSkips bounds the skipped tasks one transaction commits.
const maxSkips = 1000

// skipSpacing is the least time between the end of a worker's transaction
// and the commit of skipped tasks that follows it. A thousand buffered
// tasks are skipped in about 20 ms, and a commit that soon after the last
// one can find the broker still completing it: Kafka 4 answers the
// transaction's offset commit CONCURRENT_TRANSACTIONS, which the Kafka
// client takes as a reason to abort (measured: 1 restart in about 10 with
// 2,600 old tasks aborted a thousand skips, to be skipped again).
const skipSpacing = 50 * time.Millisecond

// next polls the next task, or returns nil when there is none yet. While
// skipped tasks wait in the open transaction it waits at most skipLinger,
// then commits them.
func (w *worker) next(ctx context.Context) (*kgo.Record, error) {
	pctx := ctx
	if w.skipped > 0 {
		var cancel context.CancelFunc
		pctx, cancel = context.WithTimeout(ctx, skipLinger)
		defer cancel()
	}
	fs := w.sess.PollRecords(pctx, 1)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if recs := fs.Records(); len(recs) > 0 {
		return recs[0], nil
	}
	if pctx.Err() != nil { // skipLinger passed without a task
		return nil, w.endSkips(ctx)
	}
	if err := topic.FetchErr(fs, w.sh.log); err != nil {
		return nil, fmt.Errorf("snapshot worker %s: taking tasks: %w", w.name, err)
	}
	return nil, nil
}

func fenced(err error) error {
	if errors.Is(err, ErrTxnTimeout) {
		return err
	}
	if errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) || errors.Is(err, kerr.FencedInstanceID) {
		return fmt.Errorf("%w: %w", ErrFenced, err)
	}
	return err
}

// handle processes one task record in the open transaction: a chunk to
// read ends it; a task to skip (of another run, or a chunk already done)
// leaves it open, so the skipped tasks commit with the next chunk, or after
// maxSkips, or when no task follows within skipLinger. A transaction that
// ends within a few milliseconds of the previous one fails, the broker
// still completing that one (CONCURRENT_TRANSACTIONS): skipping the tasks
// left from an earlier run one transaction each aborted most of them.
func (w *worker) handle(ctx context.Context, rec *kgo.Record) error {
	t, err := decodeTask(rec.Value)
	if err != nil {
		return fmt.Errorf("task at %s[%d]@%d: %w", rec.Topic, rec.Partition, rec.Offset, err)
	}
	select {
	case <-w.sh.run:
	case <-ctx.Done():
		return ctx.Err()
	}
	// The task's run and plan were committed before or with the task: once
	// the follower has read that far, the state says whether it is current
	// and whether its chunk is done.
	st, err := w.sh.follower.waitFor(ctx, func(st *State) bool { return st.Run >= t.Run })
	if err != nil {
		return err
	}
	id := t.Chunk.ID()
	_, done := st.Done[id]
	read := t.Run == st.Run && !done
	// A task to skip waits too: a worker that joined first holds every
	// partition until the others join, and the rebalance that hands them
	// out would abort the skipped tasks' transaction (they would come
	// again, to be skipped again).
	if err := w.sh.group.wait(ctx); err != nil {
		return err
	}
	if w.revoked.Swap(false) {
		// The session would abort this task's transaction at its end,
		// whatever it did: give the task back untouched, and the skipped
		// ones before it. End rewinds to the committed offsets, so they
		// come again while their partitions are ours.
		if _, err := w.end(ctx, kgo.TryAbort); err != nil {
			return fmt.Errorf("snapshot worker %s: giving back the task of chunk %s after a rebalance: %w", w.name, id, err)
		}
		w.sh.log.Debug("a rebalance took partitions since the last task; giving this one back", "chunk", id, "worker", w.name)
		return nil
	}
	if err := w.begin(); err != nil {
		return err
	}
	if !read {
		w.skipped++
		if t.Run != st.Run {
			w.sh.log.Debug("skipping a task of another run", "chunk", id, "task_run", t.Run, "run", st.Run)
		} else {
			w.sh.log.Debug("skipping a finished chunk", "chunk", id, "run", t.Run)
		}
		if w.skipped == w.revokeAt {
			w.revoked.Store(true)
			w.revokeAt = 0
		}
		if w.skipped >= maxSkips {
			return w.endSkips(ctx)
		}
		return nil
	}
	// Skipped tasks before the chunk commit with it.
	d, err := w.read(ctx, t)
	if err != nil {
		w.abort(ctx)
		return w.outlived(err)
	}
	w.produceDone(ctx, d)
	commitStart := time.Now()
	committed, err := w.end(ctx, kgo.TryCommit)
	if err != nil {
		return w.outlived(fmt.Errorf("snapshot worker %s: committing chunk %s: %w", w.name, id, err))
	}
	if !committed {
		w.sh.log.Info("a chunk's transaction was aborted (by a rebalance, or while the broker was still completing this worker's previous transaction); the chunk will be read again",
			"chunk", id, "worker", w.name)
		w.sh.metrics.aborted.WithLabelValues(t.Chunk.Namespace).Inc()
		return nil
	}
	w.sh.log.Debug("chunk committed", "chunk", id, "worker", w.name, "documents", d.Documents,
		"read_seconds", d.Elapsed, "commit_seconds", time.Since(commitStart).Seconds())
	return nil
}

// outlived explains err, an error of the chunk's transaction, when the
// transaction had been open longer than its timeout and the broker's
// producer epoch had moved on: the broker aborted it for its age (within
// seconds of the timeout, at its next sweep), not another process.
func (w *worker) outlived(err error) error {
	open := time.Since(w.begun)
	if open <= w.sh.cfg.TxnTimeout || !(errors.Is(err, kerr.InvalidProducerEpoch) || errors.Is(err, kerr.ProducerFenced)) {
		return err
	}
	return fmt.Errorf("%w: open %s, longer than --txn-timeout %s, the broker aborted it (MongoDB answers too slowly for chunks this large: lower --chunk-docs or raise --txn-timeout; the chunk is read again by the next run): %w",
		ErrTxnTimeout, open.Round(100*time.Millisecond), w.sh.cfg.TxnTimeout, err)
}

// endSkips commits the open transaction of skipped tasks, if any. Aborted,
// the tasks come again and are skipped again.
func (w *worker) endSkips(ctx context.Context) error {
	n := w.skipped
	if n == 0 {
		return nil
	}
	if wait := skipSpacing - time.Since(w.ended); wait > 0 {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	committed, err := w.end(ctx, kgo.TryCommit)
	if err != nil {
		return fmt.Errorf("snapshot worker %s: committing %d skipped tasks: %w", w.name, n, err)
	}
	if !committed {
		w.sh.log.Debug("the transaction of skipped tasks was aborted; they come again", "tasks", n, "worker", w.name)
		return nil
	}
	w.sh.log.Debug("skipped tasks committed", "tasks", n, "worker", w.name)
	return nil
}

// begin opens a transaction, unless skipped tasks hold one open already.
func (w *worker) begin() error {
	if w.skipped > 0 {
		return nil
	}
	if err := w.sess.Begin(); err != nil {
		return fmt.Errorf("snapshot worker %s: beginning a transaction: %w", w.name, err)
	}
	w.begun = time.Now()
	return nil
}

// end ends the open transaction, with the skipped tasks in it, and starts
// the session over: a revocation before it no longer concerns the next
// transaction.
func (w *worker) end(ctx context.Context, try kgo.TransactionEndTry) (committed bool, err error) {
	w.skipped = 0
	w.revoked.Store(false)
	defer func() { w.ended = time.Now() }()
	return w.sess.End(ctx, try)
}

// abort ends the open transaction with an abort, within a bounded time even
// when ctx is already cancelled.
func (w *worker) abort(ctx context.Context) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := w.end(actx, kgo.TryAbort); err != nil {
		w.sh.log.Warn("aborting a chunk's transaction failed; the transaction timeout will abort it",
			"worker", w.name, "err", err)
	}
}

func (w *worker) produceDone(ctx context.Context, d Done) {
	b, _ := jsonMarshal(d)
	w.sess.Produce(ctx, &kgo.Record{Topic: w.sh.topics.State(), Key: doneKey(d.Run, d.Chunk), Value: b}, nil)
}

// produceErr keeps the first error of asynchronous produce callbacks.
type produceErr struct {
	mu  sync.Mutex
	err error
}

func (p *produceErr) set(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.mu.Unlock()
}

func (p *produceErr) get() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// read reads the task's chunk and produces its records into the open
// transaction. Every row carries the cluster time taken just before the read
// as its version.
func (w *worker) read(ctx context.Context, t task) (Done, error) {
	start := time.Now()
	id := t.Chunk.ID()
	d := Done{Run: t.Run, Chunk: id, Worker: w.name}
	ns, err := schemas.ParseNamespace(t.Chunk.Namespace)
	if err != nil {
		return d, fmt.Errorf("%w: chunk %s: %v", ErrBadState, id, err)
	}
	c := w.sh.mapping.Lookup(ns)
	if c == nil {
		return d, fmt.Errorf("chunk %s: collection %s is not in the mapping file (every snapshot process needs the same mapping)", id, ns)
	}
	schema, err := w.sh.schema(ctx, c)
	if err != nil {
		return d, err
	}
	filter, err := t.Chunk.Filter()
	if err != nil {
		return d, err
	}
	ts, err := source.ClusterTime(ctx, w.sh.mongo)
	if err != nil {
		return d, fmt.Errorf("reading chunk %s: %w", id, err)
	}
	d.Version = schemas.Version(ts)
	recTopic := w.sh.topics.Records(ns.Database, ns.Collection)

	coll := w.sh.mongo.Database(ns.Database).Collection(ns.Collection, chunkReads)
	cur, err := coll.Find(ctx, filter, options.Find().
		SetSort(bson.D{{Key: "_id", Value: 1}}).
		SetBatchSize(int32(w.sh.cfg.BatchSize)))
	if err != nil {
		return d, fmt.Errorf("reading chunk %s: %w", id, err)
	}
	// The cursor is read in its own goroutine, so the server prepares the
	// next batch while this one is normalized and produced.
	rctx, stopReading := context.WithCancel(ctx)
	batches := make(chan docBatch, 1)
	var rerr error
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		defer close(batches)
		rerr = readBatches(rctx, cur, batches)
	}()
	defer func() {
		stopReading()
		<-readerDone
		_ = cur.Close(context.WithoutCancel(ctx))
	}()

	var perr produceErr
	promise := func(r *kgo.Record, err error) {
		if err != nil {
			perr.set(fmt.Errorf("producing %s to %s: %w", r.Key, r.Topic, err))
		}
	}
	docs := w.sh.metrics.documents.WithLabelValues(t.Chunk.Namespace)
	var conflicts int64
	var doc schemas.Document // reused: each row is encoded before the next document
	src := schemas.Source{Database: ns.Database, Collection: ns.Collection, ClusterTime: d.Version, Snapshot: true}
	for batch := range batches {
		if err := perr.get(); err != nil {
			return d, fmt.Errorf("chunk %s: %w", id, err)
		}
		// The batch's records, their keys and their values share one
		// space, which serves a later batch once Kafka has acknowledged
		// all of them (a value or key that outgrows its arena moves the
		// arena; the records already made keep the old one).
		sp := takeSpace(len(batch.docs), len(batch.arena)+len(batch.docs)*64, len(batch.docs)*64)
		recs, values, keys := sp.recs, sp.values, sp.keys
		acked := sp.acked(promise)
		for i, raw := range batch.docs {
			if err := c.NormalizeInto(ns.Database, raw, &doc); err != nil {
				return d, fmt.Errorf("chunk %s: %w", id, err)
			}
			if len(doc.Conflicts) > 0 {
				conflicts += int64(len(doc.Conflicts))
				w.sh.conflicts.Report(&doc)
				if c.OnConflict == schemas.ConflictDLQ {
					// The row goes on without the values that did not fit;
					// the document goes to the dead-letter topic, in the
					// chunk's transaction.
					w.sess.Produce(ctx, deadLetter(w.sh.topics.DLQ(), ns, raw, &doc), promise)
				}
			}
			env := schemas.Envelope{Op: schemas.OpRead, Version: d.Version, Tenant: doc.Tenant, ID: doc.ID, Row: doc.Row, Source: src}
			vstart, kstart := len(values), len(keys)
			if values, err = schema.Encode(values, &env); err != nil {
				return d, fmt.Errorf("chunk %s: %w", id, err)
			}
			keys = schemas.AppendKey(keys, doc.Tenant, doc.ID)
			rec := &recs[i]
			*rec = kgo.Record{Topic: recTopic, Key: keys[kstart:len(keys):len(keys)], Value: values[vstart:len(values):len(values)]}
			if topic.Oversized(rec.Key, rec.Value) {
				if rec, err = w.oversized(ns, &doc, len(rec.Key)+len(rec.Value), d.Version); err != nil {
					return d, fmt.Errorf("chunk %s: %w", id, err)
				}
				values = values[:vstart] // the row is left out: its space serves the next
			}
			// Produce blocks while the client holds InFlight unacknowledged
			// records: that bounds the documents in flight.
			w.sess.Produce(ctx, rec, acked)
			d.Documents++
			d.Bytes += int64(len(raw))
		}
		sp.values, sp.keys = values[:0], keys[:0] // the arenas, grown or not, for a batch after
		if cap(values) > maxKeptArena {
			sp.values = nil // grown for a very large document: not kept
		}
		sp.release()
		docs.Add(float64(len(batch.docs)))
		batch.release()
		if w.sh.cfg.slowBatches > 0 {
			time.Sleep(w.sh.cfg.slowBatches)
		}
	}
	<-readerDone
	if rerr != nil {
		return d, fmt.Errorf("reading chunk %s: %w", id, rerr)
	}
	if err := w.sess.Client().Flush(ctx); err != nil {
		return d, fmt.Errorf("chunk %s: flushing: %w", id, err)
	}
	if err := perr.get(); err != nil {
		return d, fmt.Errorf("chunk %s: %w", id, err)
	}
	if conflicts > 0 {
		w.sh.log.Debug("values did not fit their columns", "collection", t.Chunk.Namespace, "chunk", id, "count", conflicts)
	}
	d.Elapsed = time.Since(start).Seconds()
	d.At = time.Now().UTC()
	return d, nil
}

// oversized handles a document whose record (of size bytes) would be larger
// than a Kafka record may be: with --oversize=fail an error that names it;
// with dlq its dead-letter record (its key, size and the reason; the
// document itself cannot fit either), which takes its row's place in the
// chunk's transaction.
func (w *worker) oversized(ns schemas.Namespace, doc *schemas.Document, size int, version int64) (*kgo.Record, error) {
	if w.sh.cfg.Oversize != topic.OversizeDLQ {
		return nil, fmt.Errorf("%w: document %s of %s is %d bytes as a record (the limit is %d); run with --oversize=dlq to send such documents to %s instead",
			ErrOversize, doc.ID, ns, size, topic.MaxRecordBytes, w.sh.topics.DLQ())
	}
	w.sh.log.Warn("a document is too large for a Kafka record; its key and size go to the dead-letter topic, its row is left out",
		"collection", ns.String(), "document", doc.ID, "bytes", size, "limit", topic.MaxRecordBytes, "topic", w.sh.topics.DLQ())
	w.sh.metrics.deadLetters.WithLabelValues(ns.String(), "oversize").Inc()
	reason := fmt.Sprintf("document of %d bytes as a record exceeds the record limit of %d", size, topic.MaxRecordBytes)
	return schemas.DeadLetter(w.sh.topics.DLQ(), ns, doc.ID, "r", version, reason, nil), nil
}

// maxKeptArena is the largest values arena a batch's space keeps for the
// next batch: one grown past it (by a document near the record limit) is
// left to the collector.
const maxKeptArena = 64 << 20

// chunkReads reads chunks from the primary, whatever readPreference the
// MongoDB URI gives: a row's version is the cluster time taken (from the
// primary) just before its chunk is read, and a secondary that lags behind
// it would return documents older than their version, so the changes made
// in between would look older than the rows and never be applied. Planning
// follows the URI (a plan needs no particular point in time).
var chunkReads = options.Collection().SetReadPreference(readpref.Primary())

// deadLetter is the dead-letter record of a document whose values did not
// all fit their columns (with on_conflict: dlq): the document as canonical
// Extended JSON, the reason in headers.
func deadLetter(dlq string, ns schemas.Namespace, raw bson.Raw, doc *schemas.Document) *kgo.Record {
	var reasons []string
	for _, c := range doc.Conflicts {
		reasons = append(reasons, c.String())
	}
	return schemas.DeadLetter(dlq, ns, doc.ID, "r", 0, "values do not fit their columns: "+strings.Join(reasons, "; "), raw)
}

// docBatch is one batch of a chunk's documents, copied out of the cursor
// into one arena.
type docBatch struct {
	arena []byte
	docs  []bson.Raw
}

// batchPool keeps the arenas of batches done with for the batches after:
// a snapshot reads its documents batch after batch, and a fresh arena each
// time costs its zeroing, its page faults and a share of the collections.
var batchPool sync.Pool // of *docBatch, empty

// takeBatch returns an empty batch whose arena holds at least size bytes.
func takeBatch(size int) docBatch {
	if b, _ := batchPool.Get().(*docBatch); b != nil && cap(b.arena) >= size {
		return *b
	}
	return docBatch{arena: make([]byte, 0, size)}
}

// release gives the batch's arena back once nothing refers to its
// documents any more (their rows are encoded).
func (b docBatch) release() {
	batchPool.Put(&docBatch{arena: b.arena[:0], docs: b.docs[:0]})
}

// recordSpace is where one batch's records, their keys and their values
// live until Kafka has acknowledged (or failed) every record of the batch;
// then it serves a later batch.
type recordSpace struct {
	recs         []kgo.Record
	values, keys []byte
	left         atomic.Int64 // records not yet acknowledged, and one for the batch being made
}

var spacePool sync.Pool // of *recordSpace

// takeSpace returns a space for n records, with arenas of at least values
// and keys bytes.
func takeSpace(n, values, keys int) *recordSpace {
	sp, _ := spacePool.Get().(*recordSpace)
	if sp == nil {
		sp = &recordSpace{}
	}
	if cap(sp.recs) < n {
		sp.recs = make([]kgo.Record, n)
	}
	sp.recs = sp.recs[:n]
	if cap(sp.values) < values {
		sp.values = make([]byte, 0, values)
	}
	if cap(sp.keys) < keys {
		sp.keys = make([]byte, 0, keys)
	}
	sp.left.Store(int64(n) + 1)
	return sp
}

// acked returns the promise of the space's records: each calls promise and
// then releases its share of the space.
func (sp *recordSpace) acked(promise func(*kgo.Record, error)) func(*kgo.Record, error) {
	return func(r *kgo.Record, err error) {
		promise(r, err)
		sp.release()
	}
}

// release gives up one share of the space: the batch's maker gives up its
// own once it has produced every record and put the arenas back in sp, and
// the last share gives the space back. A batch abandoned before all its
// records were produced never gives it back; the collector takes it.
func (sp *recordSpace) release() {
	if sp.left.Add(-1) == 0 {
		spacePool.Put(sp)
	}
}

// readBatches sends the cursor's documents in batches, one per server batch
// (at most BatchSize documents), until the cursor is exhausted, it fails or
// ctx is done. A document the cursor returns is only valid until its next
// call to Next, so each batch owns a copy.
func readBatches(ctx context.Context, cur *mongo.Cursor, out chan<- docBatch) error {
	var b docBatch
	for cur.Next(ctx) {
		raw := cur.Current
		if len(b.arena)+len(raw) > cap(b.arena) {
			// Another arena: the documents already in the old one keep it.
			size := max(len(raw), (cur.RemainingBatchLength()+1)*len(raw)*5/4)
			if len(b.docs) == 0 {
				b = takeBatch(size)
			} else {
				b.arena = make([]byte, 0, size)
			}
		}
		b.arena = append(b.arena, raw...)
		b.docs = append(b.docs, b.arena[len(b.arena)-len(raw):len(b.arena):len(b.arena)])
		if cur.RemainingBatchLength() > 0 {
			continue
		}
		select {
		case out <- b:
		case <-ctx.Done():
			return ctx.Err()
		}
		b = docBatch{}
	}
	if err := cur.Err(); err != nil {
		return err
	}
	if len(b.docs) > 0 {
		select {
		case out <- b:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// schema returns the collection's schema, registered in the schema topic.
func (sh *shared) schema(ctx context.Context, c *schemas.Collection) (*schemas.Schema, error) {
	key := c.Source.String()
	sh.mu.Lock()
	s, ok := sh.schemas[key]
	sh.mu.Unlock()
	if ok {
		return s, nil
	}
	s, err := schemas.NewSchema(c.Source, c.TargetTable())
	if err != nil {
		return nil, err
	}
	if err := sh.registry.Register(ctx, s); err != nil {
		return nil, err
	}
	sh.mu.Lock()
	sh.schemas[key] = s
	sh.mu.Unlock()
	return s, nil
}
