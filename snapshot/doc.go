// Package snapshot lifts the existing documents of every mapped collection
// into Kafka, as "r" (read) records in the same envelope and on the same topics
// as the change-stream producer's records, in parallel, over any number of
// processes, and resumably.
//
// A planning process splits each collection into _id-range chunks (sampled
// with $sample, sorted by the server, one range set per BSON type bracket so
// mixed-type _ids are covered; a small collection is one chunk) and records
// the plan, with one task per chunk, in one Kafka transaction: the plan in
// the compacted state topic (<prefix>-state), the tasks in the task topic
// (<prefix>-snapshot-tasks). Workers in any number of processes join one
// consumer group on the task topic; each reads one chunk at a time and writes
// the chunk's records, its done mark in the state topic and the task's offset
// in one transaction, so a chunk is done exactly once or not at all, and a
// restart after a crash or kill -9 reads only the chunks that were not done.
//
// Its promises: every document that exists when its chunk is read is
// published once per run with the key [tenant, canonical _id] and a version
// no later than any change the document gets after it was read (the cluster
// time taken just before its chunk is read), so the sink converges whatever
// order snapshot rows and change events arrive in; each worker has at most
// --in-flight records unacknowledged, so memory does not grow with the
// collection; Run returns only when the run is complete (every chunk's
// transaction committed), or with an error, or with ctx.Err() after aborting
// its open transactions.
package snapshot
