package snapshot

import (
	"encoding/json"
	"testing"
	"time"
)

func mustJSON(t testing.TB, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestStateApply folds a state topic's records and checks what resume and
// status see: records of an older run are ignored, a new run starts empty, a
// tombstone reopens a completed run.
func TestStateApply(t *testing.T) {
	s := newState()
	plan := Plan{Run: 1, Namespace: "db.c", Documents: 10, Chunks: []Chunk{{Namespace: "db.c"}}}
	plan2 := Plan{Run: 2, Namespace: "db.c", Documents: 10,
		Chunks: []Chunk{{Namespace: "db.c", Bracket: "number"}, {Namespace: "db.c", Seq: 1, Bracket: "string"}}}
	steps := []struct{ key, value []byte }{
		{runKey(), mustJSON(t, runRecord{Run: 1})},
		{planKey(1, "db.c"), mustJSON(t, plan)},
		{doneKey(1, "db.c/0"), mustJSON(t, Done{Run: 1, Chunk: "db.c/0", Documents: 10})},
		{completeKey(1), mustJSON(t, completeRecord{Run: 1, At: time.Unix(5, 0)})},
		{runKey(), mustJSON(t, runRecord{Run: 2})},
		{doneKey(1, "db.c/0"), mustJSON(t, Done{Run: 1, Chunk: "db.c/0", Documents: 10})}, // late record of run 1
		{planKey(2, "db.c"), mustJSON(t, plan2)},
		{doneKey(2, "db.c/1"), mustJSON(t, Done{Run: 2, Chunk: "db.c/1", Documents: 4})},
	}
	for i, st := range steps {
		if err := s.apply(st.key, st.value); err != nil {
			t.Fatalf("step %d (%s): %v", i, st.key, err)
		}
		if i == 3 && (!s.AllDone() || s.Complete.IsZero()) {
			t.Fatalf("run 1 is not complete after its only chunk is done")
		}
	}
	if s.Run != 2 || !s.Complete.IsZero() || s.AllDone() {
		t.Fatalf("run %d complete %v alldone %v; want run 2 in progress", s.Run, s.Complete, s.AllDone())
	}
	ps := s.Progress()
	if len(ps) != 1 || ps[0].ChunksDone != 1 || ps[0].Chunks != 2 || ps[0].DocumentsDone != 4 {
		t.Fatalf("progress %+v", ps)
	}
	if err := s.apply(completeKey(2), mustJSON(t, completeRecord{Run: 2, At: time.Unix(9, 0)})); err != nil {
		t.Fatal(err)
	}
	if err := s.apply(completeKey(2), nil); err != nil || !s.Complete.IsZero() {
		t.Fatalf("a tombstone did not reopen the run: %v %v", s.Complete, err)
	}
	for _, bad := range []struct{ key, value string }{
		{"run", `{"run":0}`},
		{"run", `nope`},
		{"plan/1/db.c", `{"run":1,"ns":"db.c","chunks":[]}`},
		{"plan/1/db.c", `{"run":1,"ns":"db.c","chunks":[{"ns":"db.x","seq":0}]}`},
		{"done/1/x", `{"run":1}`},
		{"what", `{}`},
	} {
		if err := newState().apply([]byte(bad.key), []byte(bad.value)); err == nil {
			t.Errorf("%s=%s: no error", bad.key, bad.value)
		}
	}
}

// FuzzStateRecord feeds arbitrary state and task records to the decoders:
// they return an error or a state, never panic, and a decoded task's chunk
// always has a usable filter.
func FuzzStateRecord(f *testing.F) {
	f.Add([]byte("run"), []byte(`{"run":1}`))
	f.Add([]byte("plan/1/db.c"), []byte(`{"run":1,"ns":"db.c","chunks":[{"ns":"db.c","seq":0,"bracket":"number","min":{"v":{"$numberInt":"3"}}}]}`))
	f.Add([]byte("done/1/db.c/0"), []byte(`{"run":1,"chunk":"db.c/0","documents":3}`))
	f.Add([]byte("complete/1"), []byte(`{"run":1}`))
	f.Add([]byte("task"), []byte(`{"run":1,"chunk":{"ns":"db.c","seq":0,"bracket":"string","max":{"v":"x"}}}`))
	f.Fuzz(func(t *testing.T, key, value []byte) {
		s := newState()
		_ = s.apply(runKey(), []byte(`{"run":1}`))
		if err := s.apply(key, value); err == nil {
			_ = s.Progress()
			_ = s.AllDone()
		}
		if tk, err := decodeTask(value); err == nil {
			if _, err := tk.Chunk.Filter(); err != nil {
				t.Fatalf("decoded task %s has no filter: %v", value, err)
			}
		}
	})
}
