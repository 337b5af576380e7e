package producer

import (
	"errors"

	"go.mongodb.org/mongo-driver/v2/mongo"
)

// ErrHistoryLost is returned when a stream's saved resume token is no longer
// in the oplog: the changes since the checkpoint cannot be read any more.
var ErrHistoryLost = errors.New("change stream history lost")

// ErrNoTenant is returned for a delete whose tenant cannot be known: the
// tenant is a document field, the event carries no pre-image, and the field
// is not part of the document key.
var ErrNoTenant = errors.New("deleted document's tenant is unknown")

// ErrResnapshot is returned when the snapshot of a stream's collections
// after a lost history fails; the stream's checkpoint still says it is
// unfinished, so the producer's next start runs it again.
var ErrResnapshot = errors.New("re-snapshot after lost history failed")

// ErrOversize is returned for an event larger than a Kafka record may be.
var ErrOversize = errors.New("event too large for a Kafka record")

// MongoDB error codes that mean the resume point is gone from the oplog.
const (
	codeChangeStreamFatal       = 280
	codeChangeStreamHistoryLost = 286
	codeCappedPositionLost      = 136
	codeInvalidResumeToken      = 260
)

// historyLost reports whether err says the stream cannot resume where asked.
func historyLost(err error) bool {
	var se mongo.ServerError
	if !errors.As(err, &se) {
		return false
	}
	return se.HasErrorCode(codeChangeStreamHistoryLost) || se.HasErrorCode(codeChangeStreamFatal) ||
		se.HasErrorCode(codeCappedPositionLost) || se.HasErrorCode(codeInvalidResumeToken)
}
