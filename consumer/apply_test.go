package consumer

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/docshift/docshift/schemas"
)

func TestCollapseKeepsHighestVersionPerKey(t *testing.T) {
	a := &schemas.Schema{Table: schemas.Table{Name: "a"}}
	b := &schemas.Schema{Table: schemas.Table{Name: "b"}}
	ch := func(s *schemas.Schema, tenant, id string, version, offset int64) change {
		return change{schema: s, rec: &kgo.Record{Offset: offset}, env: &schemas.Envelope{Tenant: tenant, ID: id, Version: version}}
	}
	got := collapse([]change{
		ch(a, "t1", "1", 5, 0),
		ch(a, "t1", "1", 3, 1), // older: dropped
		ch(a, "t2", "1", 1, 2), // other tenant: its own row
		ch(b, "t1", "1", 1, 3), // other table: its own row
		ch(a, "t1", "1", 5, 4), // same version, later offset: wins
		ch(a, "t1", "2", 9, 5),
	})
	var offsets []int64
	for _, c := range got {
		offsets = append(offsets, c.rec.Offset)
	}
	// First-seen order of the keys a/t1/1, a/t2/1, b/t1/1, a/t1/2; the
	// first key keeps its last record of the highest version.
	if want := []int64{4, 2, 3, 5}; fmt.Sprint(offsets) != fmt.Sprint(want) {
		t.Fatalf("collapse kept offsets %v, want %v", offsets, want)
	}
}

func TestRowValuesOfDeleteIsTombstone(t *testing.T) {
	table := schemas.Table{Name: "x", Columns: []schemas.TableColumn{
		{Name: schemas.ColTenant}, {Name: schemas.ColID}, {Name: schemas.ColVersion}, {Name: schemas.ColDeleted},
		{Name: "v", Field: "v"},
	}}
	l := newLayout(table)
	up, err := l.rowValues(&schemas.Envelope{Op: schemas.OpUpdate, Tenant: "t", ID: "1", Version: 7, Row: map[string]any{"v": "x"}})
	if err != nil || up[3] != false || up[4] != "x" || up[2] != int64(7) {
		t.Errorf("update row = %v, %v", up, err)
	}
	del, err := l.rowValues(&schemas.Envelope{Op: schemas.OpDelete, Tenant: "t", ID: "1", Version: 8})
	if err != nil || del[3] != true || del[4] != nil || del[2] != int64(8) || del[0] != "t" || del[1] != "1" {
		t.Errorf("delete row = %v, want a tombstone", del)
	}
}
