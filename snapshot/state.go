package snapshot

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/docshift/docshift/topic"
)

// The state topic holds the snapshot's checkpoints as JSON values under
// these keys (compaction keeps the latest value of each):
//
//	run                      the current run: {"run": N, "started": T}
//	plan/<run>/<db.coll>     a collection's chunk plan (Plan)
//	done/<run>/<chunk id>    a finished chunk (Done), written in the
//	                         transaction that wrote the chunk's records
//	complete/<run>           every planned chunk of the run is done
const (
	keyRun      = "run"
	keyPlan     = "plan/"
	keyDone     = "done/"
	keyComplete = "complete/"
)

type runRecord struct {
	Run     int64     `json:"run"`
	Started time.Time `json:"started"`
	// StartVersion is the cluster time (a schemas.Version) taken before the
	// run planned or read anything: a change stream that starts there misses
	// no change the run's chunks could have missed.
	StartVersion int64 `json:"start_version,omitempty"`
}

// Done records a finished chunk.
type Done struct {
	Run       int64     `json:"run"`
	Chunk     string    `json:"chunk"`
	Documents int64     `json:"documents"`
	Bytes     int64     `json:"bytes"`
	Version   int64     `json:"version"` // the version its rows carry
	Worker    string    `json:"worker"`
	Elapsed   float64   `json:"elapsed_s"`
	At        time.Time `json:"at"`
}

type completeRecord struct {
	Run int64     `json:"run"`
	At  time.Time `json:"at"`
}

func runKey() []byte                         { return []byte(keyRun) }
func planKey(run int64, ns string) []byte    { return fmt.Appendf(nil, "%s%d/%s", keyPlan, run, ns) }
func doneKey(run int64, chunk string) []byte { return fmt.Appendf(nil, "%s%d/%s", keyDone, run, chunk) }
func completeKey(run int64) []byte           { return fmt.Appendf(nil, "%s%d", keyComplete, run) }

// State is what the state topic says about the current run.
type State struct {
	Run          int64
	Started      time.Time
	StartVersion int64            // cluster time before the run read anything (0 for runs recorded without it)
	Complete     time.Time        // zero until the run is complete
	Plans        map[string]*Plan // by namespace
	Done         map[string]Done  // by chunk id
}

func newState() *State {
	return &State{Plans: map[string]*Plan{}, Done: map[string]Done{}}
}

// apply folds one state record into s. Records of runs other than the
// current one are ignored. A tombstone of the current run's complete key
// reopens the run (a collection was added to it); other tombstones are
// ignored.
func (s *State) apply(key, value []byte) error {
	k := string(key)
	if value == nil {
		if k == string(completeKey(s.Run)) {
			s.Complete = time.Time{}
		}
		return nil
	}
	switch {
	case k == keyRun:
		var r runRecord
		if err := decodeJSON(key, value, &r); err != nil {
			return err
		}
		if r.Run < 1 {
			return fmt.Errorf("%w: run record %q has run %d", ErrBadState, truncate(value), r.Run)
		}
		if r.Run != s.Run {
			*s = *newState()
			s.Run, s.Started, s.StartVersion = r.Run, r.Started, r.StartVersion
		}
	case strings.HasPrefix(k, keyPlan):
		var p Plan
		if err := decodeJSON(key, value, &p); err != nil {
			return err
		}
		if p.Namespace == "" || len(p.Chunks) == 0 {
			return fmt.Errorf("%w: plan %s has no collection or no chunks", ErrBadState, k)
		}
		for i := range p.Chunks {
			if p.Chunks[i].Namespace != p.Namespace || p.Chunks[i].Seq != i {
				return fmt.Errorf("%w: plan %s: chunk %d is %s", ErrBadState, k, i, p.Chunks[i].ID())
			}
		}
		if p.Run == s.Run {
			s.Plans[p.Namespace] = &p
		}
	case strings.HasPrefix(k, keyDone):
		var d Done
		if err := decodeJSON(key, value, &d); err != nil {
			return err
		}
		if d.Chunk == "" {
			return fmt.Errorf("%w: done record %s names no chunk", ErrBadState, k)
		}
		if d.Run == s.Run {
			s.Done[d.Chunk] = d
		}
	case strings.HasPrefix(k, keyComplete):
		var c completeRecord
		if err := decodeJSON(key, value, &c); err != nil {
			return err
		}
		if c.Run == s.Run {
			s.Complete = c.At
		}
	default:
		return fmt.Errorf("%w: unknown key %q", ErrBadState, truncate(key))
	}
	return nil
}

func decodeJSON(key, value []byte, v any) error {
	if err := json.Unmarshal(value, v); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrBadState, truncate(key), err)
	}
	return nil
}

// clone returns a deep enough copy for readers: plans are never modified
// after they are applied, so they are shared.
func (s *State) clone() *State {
	c := *s
	c.Plans = make(map[string]*Plan, len(s.Plans))
	for k, v := range s.Plans {
		c.Plans[k] = v
	}
	c.Done = make(map[string]Done, len(s.Done))
	for k, v := range s.Done {
		c.Done[k] = v
	}
	return &c
}

// AllDone reports whether every chunk of every plan is done.
func (s *State) AllDone() bool {
	for _, p := range s.Plans {
		for i := range p.Chunks {
			if _, ok := s.Done[p.Chunks[i].ID()]; !ok {
				return false
			}
		}
	}
	return true
}

// Progress is one collection's progress in the current run.
type Progress struct {
	Namespace     string
	Topic         string
	Chunks        int
	ChunksDone    int
	Documents     int64 // estimated when planned
	DocumentsDone int64
	BytesDone     int64
	First, Last   time.Time // when the first and the latest chunk finished
}

// Progress returns every planned collection's progress, sorted by name.
func (s *State) Progress() []Progress {
	out := make([]Progress, 0, len(s.Plans))
	for ns, p := range s.Plans {
		pr := Progress{Namespace: ns, Topic: p.Topic, Chunks: len(p.Chunks), Documents: p.Documents}
		for i := range p.Chunks {
			d, ok := s.Done[p.Chunks[i].ID()]
			if !ok {
				continue
			}
			pr.ChunksDone++
			pr.DocumentsDone += d.Documents
			pr.BytesDone += d.Bytes
			if pr.First.IsZero() || d.At.Before(pr.First) {
				pr.First = d.At
			}
			if d.At.After(pr.Last) {
				pr.Last = d.At
			}
		}
		if pr.ChunksDone == pr.Chunks || pr.Documents < pr.DocumentsDone {
			pr.Documents = max(pr.Documents, pr.DocumentsDone)
		}
		out = append(out, pr)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Namespace < out[j].Namespace })
	return out
}

// follower keeps the state of the state topic up to date: it reads the topic
// (read committed, so only finished transactions count) from its start.
type follower struct {
	cl    *kgo.Client
	topic string
	log   *slog.Logger

	mu      sync.Mutex
	state   *State
	next    int64         // offset of the next record to read
	changed chan struct{} // closed and replaced on every applied record
	err     error
}

func newFollower(ctx context.Context, tc topic.Config, log *slog.Logger) (*follower, error) {
	name := tc.State()
	cl, err := topic.NewLogReader(ctx, tc, name, log)
	if err != nil {
		return nil, err
	}
	return &follower{cl: cl, topic: name, log: log, state: newState(), changed: make(chan struct{})}, nil
}

// run reads the state topic until ctx is done. A record it cannot read
// stops it; sync and wait then return that error.
func (f *follower) run(ctx context.Context) {
	for ctx.Err() == nil {
		fs := f.cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return
		}
		ferr := topic.FetchErr(fs, f.log)
		if ferr != nil {
			ferr = fmt.Errorf("reading the state topic: %w", ferr)
		}
		f.mu.Lock()
		fs.EachRecord(func(r *kgo.Record) {
			f.next = r.Offset + 1
			if r.Attrs.IsControl() || ferr != nil {
				return
			}
			if err := f.state.apply(r.Key, r.Value); err != nil {
				ferr = fmt.Errorf("state topic %s offset %d: %w", f.topic, r.Offset, err)
			}
		})
		if ferr != nil && f.err == nil {
			f.err = ferr
		}
		close(f.changed)
		f.changed = make(chan struct{})
		f.mu.Unlock()
		if ferr != nil {
			return
		}
	}
}

func (f *follower) close() { f.cl.Close() }

// snapshot returns the current state and a channel closed on the next change.
func (f *follower) snapshot() (*State, <-chan struct{}, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state.clone(), f.changed, f.err
}

// sync waits until the follower has read everything committed to the state
// topic before the call, and returns the state then.
func (f *follower) sync(ctx context.Context) (*State, error) {
	end, err := topic.CommittedEnd(ctx, f.cl, f.topic)
	if err != nil {
		return nil, err
	}
	for {
		f.mu.Lock()
		next, changed, ferr := f.next, f.changed, f.err
		f.mu.Unlock()
		if ferr != nil {
			return nil, ferr
		}
		if next >= end {
			s, _, err := f.snapshot()
			return s, err
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// waitFor waits until the state satisfies cond. A transaction's records
// become readable shortly after its commit returns (the markers are written
// asynchronously), so a writer waits for what it wrote with this.
func (f *follower) waitFor(ctx context.Context, cond func(*State) bool) (*State, error) {
	for {
		st, changed, err := f.snapshot()
		if err != nil {
			return nil, err
		}
		if cond(st) {
			return st, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// ReadState reads the state topic to its end once: what `docshift status`
// shows.
func ReadState(ctx context.Context, tc topic.Config, log *slog.Logger) (*State, error) {
	st := newState()
	if err := topic.ReadLog(ctx, tc, tc.State(), log, func(r *kgo.Record) error { return st.apply(r.Key, r.Value) }); err != nil {
		return nil, fmt.Errorf("reading the state topic: %w", err)
	}
	return st, nil
}
