// Package consumer applies docshift records from Kafka to the target database.
//
// Any number of consumers join one Kafka consumer group; each assigned
// partition gets its own worker, which applies the partition's records in
// offset order, so the records of one key (one document) are applied by one
// worker at a time, in order.
//
// Its promises: a row is written only if its version is newer than the one
// stored, so snapshot rows and change events converge in any order; a delete
// is kept as a versioned tombstone (_deleted = true) so that an older record
// cannot bring the document back; offsets are committed only after the
// database transaction that applied their records has committed, so a crash at
// any point re-applies (idempotently) instead of losing; a rebalance waits for
// the in-flight batch of a moving partition to commit.
package consumer
