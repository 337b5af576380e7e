package snapshot

import "errors"

// ErrBadState marks a record of the state or task topic that docshift cannot
// read: written by another version, or not by docshift at all.
var ErrBadState = errors.New("unreadable snapshot state")

// ErrFenced marks a worker whose transactional id another process took over:
// two processes run with the same --worker-id, or the worker was out of its
// group for longer than its session timeout and the planning process ended
// the transaction it had left open (see orphanReaper).
var ErrFenced = errors.New("fenced by another snapshot process (one with the same worker id, or the planning process after this worker's session in the group expired)")

// ErrTxnTimeout marks a chunk whose transaction outlived --txn-timeout: the
// broker aborted it.
var ErrTxnTimeout = errors.New("a chunk's transaction outlived its timeout")

// ErrOversize marks a document whose record would be larger than a Kafka
// record may be (with --oversize=fail).
var ErrOversize = errors.New("document too large for a Kafka record")
