// Package consumer applies docshift records from Kafka to the target database.
//
// Any number of consumers join one Kafka consumer group (cooperative-sticky);
// each assigned partition gets its own worker, which applies the partition's
// records in offset order, in batches cut by count, bytes and time, so the
// records of one key (one document) are applied by one worker at a time, in
// order. A batch is copied into a staging table and merged with one set-based
// upsert per table.
//
// Its promises: a row is written only if its version is newer than the one
// stored, so snapshot rows and change events converge in any order; a delete
// is kept as a versioned tombstone (_deleted = true) so that an older record
// cannot bring the document back, until the tombstone retention has passed;
// offsets are committed only after the database transaction that applied
// their records has committed, so a crash at any point re-applies
// (idempotently) instead of losing; a rebalance waits for the in-flight batch
// of a moving partition to commit; transient database errors are retried
// without committing; a record that can never apply goes to the dead-letter
// topic (acknowledged before its offset is committed) and the partition moves
// on.
package consumer
