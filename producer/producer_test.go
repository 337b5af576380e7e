package producer

import (
	"errors"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/docshift/docshift/schemas"
)

func TestConfigValidateNamesTheBadField(t *testing.T) {
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Scope = "cluster" }, "scope"},
		{func(c *Config) { c.Include = "shop.[" }, "include/exclude"},
		{func(c *Config) { c.FullDocument = "always" }, "full-document"},
		{func(c *Config) { c.MaxBatch = 0 }, "max-batch"},
		{func(c *Config) { c.Heartbeat = 0 }, "heartbeat"},
		{func(c *Config) { c.OnHistoryLost = "ignore" }, "on-history-lost"},
		{func(c *Config) { c.Oversize = "drop" }, "oversize"},
	} {
		c := DefaultConfig()
		tc.mod(&c)
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("want an error naming %s, got %v", tc.want, err)
		}
	}
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
}

func TestIncludeExclude(t *testing.T) {
	c := DefaultConfig()
	c.Include = "shop.*, crm.accounts"
	c.Exclude = "shop.audit*"
	for ns, want := range map[string]bool{
		"shop.orders": true, "crm.accounts": true, "crm.leads": false, "shop.audit_log": false, "other.x": false,
	} {
		if got := c.follows(ns); got != want {
			t.Errorf("follows(%s) = %v, want %v", ns, got, want)
		}
	}
	c.Include = ""
	if !c.follows("any.thing") {
		t.Error("with no include, everything not excluded is followed")
	}
}

func marshalEvent(t *testing.T, d bson.D) bson.Raw {
	t.Helper()
	b, err := bson.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDeletedTenant(t *testing.T) {
	m, err := schemas.ParseMapping("m", []byte("collections:\n  - source: shop.orders\n    tenant: {field: tenant_id}\n  - source: \"*.invoices\"\n    tenant: {database: true}\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := &stream{}
	del := func(ns schemas.Namespace, key, before bson.D) *event {
		d := bson.D{{Key: "_id", Value: bson.D{{Key: "_data", Value: "00"}}}, {Key: "operationType", Value: "delete"},
			{Key: "ns", Value: bson.D{{Key: "db", Value: ns.Database}, {Key: "coll", Value: ns.Collection}}},
			{Key: "documentKey", Value: key}}
		if before != nil {
			d = append(d, bson.E{Key: "fullDocumentBeforeChange", Value: before})
		}
		e, err := parseEvent(marshalEvent(t, d))
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	orders := schemas.Namespace{Database: "shop", Collection: "orders"}
	c := m.Lookup(orders)
	if got, err := s.deletedTenant(del(orders, bson.D{{Key: "_id", Value: 1}}, bson.D{{Key: "_id", Value: 1}, {Key: "tenant_id", Value: "acme"}}), c); err != nil || got != "acme" {
		t.Errorf("from the pre-image: %q, %v", got, err)
	}
	if got, err := s.deletedTenant(del(orders, bson.D{{Key: "tenant_id", Value: "globex"}, {Key: "_id", Value: 1}}, nil), c); err != nil || got != "globex" {
		t.Errorf("from a sharded document key: %q, %v", got, err)
	}
	if _, err := s.deletedTenant(del(orders, bson.D{{Key: "_id", Value: 1}}, nil), c); !errors.Is(err, ErrNoTenant) || !strings.Contains(err.Error(), "pre-images") {
		t.Errorf("without either: %v", err)
	}
	inv := schemas.Namespace{Database: "tenant7", Collection: "invoices"}
	if got, err := s.deletedTenant(del(inv, bson.D{{Key: "_id", Value: 1}}, nil), m.Lookup(inv)); err != nil || got != "tenant7" {
		t.Errorf("database tenant: %q, %v", got, err)
	}
}

// FuzzParseEvent: any bytes either parse as a change event or return an
// error; nothing panics, and a parsed event keeps its resume token.
func FuzzParseEvent(f *testing.F) {
	good, _ := bson.Marshal(bson.D{{Key: "_id", Value: bson.D{{Key: "_data", Value: "6b0792cc00001387"}}},
		{Key: "operationType", Value: "update"}, {Key: "clusterTime", Value: bson.Timestamp{T: 1, I: 2}},
		{Key: "ns", Value: bson.D{{Key: "db", Value: "a"}, {Key: "coll", Value: "b"}}},
		{Key: "documentKey", Value: bson.D{{Key: "_id", Value: 1}}},
		{Key: "fullDocument", Value: bson.D{{Key: "_id", Value: 1}}}})
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := parseEvent(bson.Raw(b))
		if err != nil {
			return
		}
		if len(e.token) == 0 {
			t.Fatal("parsed an event without its resume token")
		}
	})
}
