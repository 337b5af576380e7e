package schemas

import (
	"bytes"
	"math/big"
	"testing"
)

// TestEncodeMatchesGoavro: the compiled row encoder writes the bytes the
// goavro codec writes, for every corpus row, every op, a delete without a
// row, both framings; a hand-built row of other Go types still encodes.
func TestEncodeMatchesGoavro(t *testing.T) {
	c := corpusCollection(t)
	s, err := NewSchema(c.Source, c.TargetTable())
	if err != nil {
		t.Fatal(err)
	}
	var envs []*Envelope
	for i, doc := range readCorpus(t) {
		d, err := c.Normalize("corpus", doc)
		if err != nil {
			t.Fatalf("document %d: %v", i+1, err)
		}
		op := []Op{OpCreate, OpUpdate, OpRead}[i%3]
		envs = append(envs, &Envelope{Op: op, Version: int64(i) << 32, Tenant: d.Tenant, ID: d.ID, Row: d.Row,
			Source: Source{Database: "corpus", Collection: "docs", ClusterTime: -int64(i), Snapshot: i%2 == 0}})
	}
	envs = append(envs, &Envelope{Op: OpDelete, Version: 7, Tenant: "t", ID: `{"$oid":"x"}`})
	for _, registryID := range []int{0, 4242} {
		s.registryID = registryID
		for i, e := range envs {
			got, err := s.Encode([]byte("prefix"), e)
			if err != nil {
				t.Fatalf("envelope %d: %v", i, err)
			}
			want, err := s.encodeNative([]byte("prefix"), e)
			if err != nil {
				t.Fatalf("envelope %d through goavro: %v", i, err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("envelope %d (registry id %d):\n got  %x\n want %x", i, registryID, got, want)
			}
		}
	}
	s.registryID = 0

	// A column value of a Go type the row encoder does not write (an int
	// for a bigint) goes through goavro.
	var col TableColumn
	for _, cc := range s.Table.DataColumns() {
		if cc.Type == BigInt {
			col = cc
		}
	}
	if col.Field == "" {
		t.Fatal("the corpus table has no bigint column")
	}
	e := &Envelope{Op: OpCreate, Tenant: "t", ID: "1", Row: map[string]any{col.Field: 5}}
	got, err := s.Encode(nil, e)
	if err != nil {
		t.Fatal(err)
	}
	back, err := s.Decode(got)
	if err != nil || back.Row[col.Field] != int64(5) {
		t.Fatalf("hand-built row: decoded %v, %v", back, err)
	}
	if _, err := s.Encode(nil, &Envelope{Op: "x", Tenant: "t", ID: "1"}); err == nil {
		t.Fatal("an unknown op encoded")
	}
}

// TestDecimalEncodingMatchesGoavro: the compiled encoder writes decimals
// (two's complement, fewest bytes) exactly as goavro does, at the sign
// boundaries too.
func TestDecimalEncodingMatchesGoavro(t *testing.T) {
	c := &Collection{Source: Namespace{"a", "b"}, Table: "b",
		Columns: []Column{{Path: Path{"d"}, Name: "d", Type: "numeric(30,2)"}}}
	s, err := NewSchema(c.Source, c.TargetTable())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"0", "1.27", "1.28", "-0.01", "-1.28", "-1.29", "327.67", "-327.68", "-327.69",
		"9999999999999999999999999999.99", "-9999999999999999999999999999.99", "12345678.9"} {
		r, _ := new(big.Rat).SetString(v)
		e := &Envelope{Op: OpRead, Tenant: "t", ID: `"1"`, Row: map[string]any{"d": r}}
		got, err := s.Encode(nil, e)
		if err != nil {
			t.Fatal(err)
		}
		want, err := s.encodeNative(nil, e)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: encoded %x, goavro %x", v, got, want)
		}
	}
}
