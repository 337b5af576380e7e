package consumer

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/docshift/docshift/schemas"
)

// fakeRegistry returns a registry on an in-process broker holding the schema
// of a small table.
func fakeRegistry(t testing.TB) (*schemas.Registry, *schemas.Schema) {
	t.Helper()
	fake, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "schemas"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(fake.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	coll := schemas.Collection{Table: "items", Columns: []schemas.Column{
		{Name: "name", Type: schemas.Text}, {Name: "qty", Type: schemas.BigInt}}}
	s, err := schemas.NewSchema(schemas.Namespace{Database: "d", Collection: "items"}, coll.TargetTable())
	if err != nil {
		t.Fatal(err)
	}
	reg := schemas.NewRegistry(cl, "schemas")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := reg.Register(ctx, s); err != nil {
		t.Fatal(err)
	}
	return reg, s
}

// FuzzDecode: whatever bytes a record holds, decode either returns a change
// with an id or an error wrapping ErrPoison (the fuzz inputs never make the
// schema topic unreachable), and never panics.
func FuzzDecode(f *testing.F) {
	reg, s := fakeRegistry(f)
	good, err := s.Encode(nil, &schemas.Envelope{Op: schemas.OpUpdate, Version: 7, Tenant: "t", ID: `"1"`,
		Row: map[string]any{"name": "x", "qty": int64(3)}})
	if err != nil {
		f.Fatal(err)
	}
	del, _ := s.Encode(nil, &schemas.Envelope{Op: schemas.OpDelete, Version: 8, Tenant: "t", ID: `"1"`})
	f.Add(good)
	f.Add(del)
	f.Add(good[:len(good)-3])
	f.Add([]byte{0xC3, 0x01})
	f.Add([]byte("not avro"))
	fp := good[:10]
	f.Fuzz(func(t *testing.T, value []byte) {
		if len(value) >= 10 && value[0] == 0xC3 && value[1] == 0x01 && string(value[2:10]) != string(fp[2:10]) {
			value = append(append([]byte{}, fp...), value[10:]...) // unknown fingerprints re-read the topic: keep the fuzz fast
		}
		ch, err := decode(context.Background(), reg, newDecoders(), &kgo.Record{Value: value})
		if err != nil {
			if !errors.Is(err, ErrPoison) {
				t.Fatalf("decode(%x) = %v, not poison", value, err)
			}
			return
		}
		if ch.env.ID == "" || ch.schema != s {
			t.Fatalf("decode(%x) gave %+v without an id or with another schema", value, ch.env)
		}
	})
}

func TestDecodeUnknownFingerprintIsPoison(t *testing.T) {
	reg, _ := fakeRegistry(t)
	_, err := decode(context.Background(), reg, newDecoders(), &kgo.Record{Value: []byte{0xC3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0}})
	if !errors.Is(err, ErrPoison) || !errors.Is(err, schemas.ErrUnknownSchema) {
		t.Fatalf("decode of an unknown fingerprint = %v, want poison and ErrUnknownSchema", err)
	}
}
