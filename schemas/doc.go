// Package schemas turns MongoDB documents into typed rows and the Avro records
// that carry them through Kafka.
//
// It owns the mapping file (which collection goes to which table, how the tenant
// is found, which document paths become which typed columns), the normalization
// of a BSON document into a [Row], the canonical record key (tenant + _id in a
// type-preserving form), the Avro envelope every docshift record uses, the schema
// registry that lets a consumer decode any record it reads, and the DDL of the
// target tables.
//
// Its promises: a document is never silently reduced. A field that no column
// names, and a value that does not fit its column, is kept in the row's _extra
// JSON (canonical Extended JSON, so its BSON type survives). Two documents whose
// _id differ in type (1, "1", ObjectId) never get the same key. A schema derived
// from the same mapping is byte-identical every time, so its fingerprint is
// stable across processes and restarts.
package schemas
