package producer

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/docshift/docshift/schemas"
)

// event is the part of a change event docshift uses.
type event struct {
	token       bson.Raw // the event's resume token (_id)
	op          string   // operationType
	clusterTime bson.Timestamp
	ns          schemas.Namespace
	id          bson.RawValue // documentKey._id
	documentKey bson.Raw
	full        bson.Raw // fullDocument; nil when absent or null
	before      bson.Raw // fullDocumentBeforeChange; nil when absent or null
}

// parseEvent reads a raw change event.
func parseEvent(raw bson.Raw) (*event, error) {
	if err := raw.Validate(); err != nil {
		return nil, fmt.Errorf("malformed change event: %w", err)
	}
	e := &event{}
	tok, err := raw.LookupErr("_id")
	if err != nil || tok.Type != bson.TypeEmbeddedDocument {
		return nil, errors.New("change event without a resume token")
	}
	e.token = append(bson.Raw(nil), tok.Document()...)
	e.op, _ = raw.Lookup("operationType").StringValueOK()
	if t, i, ok := raw.Lookup("clusterTime").TimestampOK(); ok {
		e.clusterTime = bson.Timestamp{T: t, I: i}
	}
	if ns, err := raw.LookupErr("ns"); err == nil && ns.Type == bson.TypeEmbeddedDocument {
		e.ns.Database, _ = ns.Document().Lookup("db").StringValueOK()
		e.ns.Collection, _ = ns.Document().Lookup("coll").StringValueOK()
	}
	if dk, err := raw.LookupErr("documentKey"); err == nil && dk.Type == bson.TypeEmbeddedDocument {
		e.documentKey = dk.Document()
		e.id, _ = e.documentKey.LookupErr("_id")
	}
	if fd, err := raw.LookupErr("fullDocument"); err == nil && fd.Type == bson.TypeEmbeddedDocument {
		e.full = fd.Document()
	}
	if bd, err := raw.LookupErr("fullDocumentBeforeChange"); err == nil && bd.Type == bson.TypeEmbeddedDocument {
		e.before = bd.Document()
	}
	return e, nil
}

// isData reports whether the event changes one document.
func (e *event) isData() bool {
	switch e.op {
	case "insert", "update", "replace", "delete":
		return true
	}
	return false
}

// outcome is what one event becomes.
type outcome struct {
	records []*kgo.Record
	skipped string // why nothing was published (an update of a since-deleted document)
}

// toRecords turns a data event into its records: an upsert, or a delete and
// a tombstone. c is the mapping of the event's collection.
func (s *stream) toRecords(e *event, c *schemas.Collection) (outcome, error) {
	version := schemas.Version(e.clusterTime)
	src := schemas.Source{Database: e.ns.Database, Collection: e.ns.Collection, ClusterTime: version}
	schema, recTopic, err := s.p.schemaFor(s.ctx, c)
	if err != nil {
		return outcome{}, err
	}
	if e.op == "delete" {
		tenant, err := s.deletedTenant(e, c)
		if err != nil {
			return outcome{}, err
		}
		id, err := schemas.CanonicalID(e.id)
		if err != nil {
			return outcome{}, err
		}
		key := schemas.Key(tenant, id)
		val, err := schema.Encode(nil, &schemas.Envelope{Op: schemas.OpDelete, Version: version, Source: src, Tenant: tenant, ID: id})
		if err != nil {
			return outcome{}, err
		}
		// The delete, then a tombstone: compaction may then drop the key's
		// history, and a replay still ends with the document absent.
		return outcome{records: []*kgo.Record{
			{Topic: recTopic, Key: key, Value: val},
			{Topic: recTopic, Key: key},
		}}, nil
	}
	if e.full == nil {
		// updateLookup found nothing: the document was deleted after this
		// update, and its delete event follows. Publishing an empty row
		// would be wrong; the delete carries the final state.
		return outcome{skipped: "document deleted since the update"}, nil
	}
	doc, err := c.Normalize(e.ns.Database, e.full)
	if err != nil {
		return outcome{}, err
	}
	s.p.conflicts.Report(doc)
	op := schemas.OpUpdate
	if e.op == "insert" {
		op = schemas.OpCreate
	}
	val, err := schema.Encode(nil, &schemas.Envelope{Op: op, Version: version, Source: src, Tenant: doc.Tenant, ID: doc.ID, Row: doc.Row})
	if err != nil {
		return outcome{}, err
	}
	recs := []*kgo.Record{{Topic: recTopic, Key: schemas.Key(doc.Tenant, doc.ID), Value: val}}
	if c.OnConflict == schemas.ConflictDLQ && len(doc.Conflicts) > 0 {
		recs = append(recs, s.p.deadLetter(e, fmt.Sprintf("values do not fit their columns: %v", doc.Conflicts), e.full))
	}
	return outcome{records: recs}, nil
}

// deletedTenant finds the tenant of a deleted document: from the tenant
// rule, the document key (collections sharded by tenant), or the pre-image.
func (s *stream) deletedTenant(e *event, c *schemas.Collection) (string, error) {
	if c.Tenant.Field == "" {
		return c.TenantOf(e.ns.Database, nil)
	}
	if t, err := c.TenantOf(e.ns.Database, e.documentKey); err == nil {
		return t, nil
	}
	if e.before != nil {
		return c.TenantOf(e.ns.Database, e.before)
	}
	id, _ := schemas.CanonicalID(e.id)
	return "", fmt.Errorf("%w: delete of %s %s carries neither a pre-image nor %q in its document key; "+
		"enable pre-images on the collection (collMod changeStreamPreAndPostImages, MongoDB 6.0+) and run with --pre-images, "+
		"or shard the collection by the tenant field", ErrNoTenant, e.ns, id, c.Tenant.Field)
}
