// Package producer follows MongoDB change streams and publishes every insert,
// update, replace and delete to the same topics, keys and envelope as the
// snapshot, with the resume token checkpointed in the same Kafka transaction as
// the records it covers.
//
// Not built yet: `docshift produce` does not exist until this package has its
// implementation. The snapshot and the consumer already carry the versions
// (MongoDB cluster times) that let change events and snapshot rows converge.
package producer
