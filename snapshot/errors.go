package snapshot

import "errors"

// ErrBadState marks a record of the state or task topic that docshift cannot
// read: written by another version, or not by docshift at all.
var ErrBadState = errors.New("unreadable snapshot state")

// ErrFenced marks a worker whose transactional id another process took over:
// two processes run with the same --worker-id.
var ErrFenced = errors.New("fenced by another snapshot process with the same worker id")
