// Package snapshot lifts the existing documents of every mapped collection
// into Kafka, as "r" (read) records in the same envelope and on the same topics
// as the change-stream producer's records.
//
// Its promises: every document read is published with the key
// [tenant, canonical _id] and a version no later than any change the document
// gets after it was read (the cluster time taken just before the read), so the
// sink converges whatever order snapshot rows and change events arrive in; Run
// returns only after every record it produced is acknowledged by Kafka, and
// returns an error if any was not.
//
// This first version reads each collection whole with one reader. Chunking,
// parallel workers and resumable checkpoints come next; Run's contract stays.
package snapshot
