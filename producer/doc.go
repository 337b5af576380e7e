// Package producer follows MongoDB change streams and publishes every insert,
// update, replace and delete to the same topics, with the same keys and
// envelope, as the snapshot.
//
// Each change stream (one per collection, or one per database or deployment)
// runs on its own transactional Kafka producer: the records of a batch of
// events and the stream's checkpoint (the resume token of the batch's last
// event, in the <prefix>-streams topic) are written in one Kafka transaction.
// On start, and after any error, a stream reads its last committed
// checkpoint and resumes right after it.
//
// Its promises: kill -9 at any moment loses no event and, for read_committed
// readers, publishes none twice; every record's version is the event's
// cluster time, so the sink orders it against snapshot rows and other events;
// a delete is published as a "d" record followed by a tombstone; an event
// that cannot be published (no tenant, too large) is never dropped silently:
// it stops the stream with an error that says what to do, or, where the user
// chose so, goes to the dead-letter topic; a resume token that has left the
// oplog stops the stream with an error that says so, or re-snapshots.
package producer
