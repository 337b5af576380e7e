package topic

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// FetchErr returns the first error in fs that the caller must act on,
// naming its topic and partition. Errors the client recovers from by itself
// are logged on log (when not nil) and skipped: retriable broker errors (a
// leader moving, a topic just created and not yet known everywhere), a data
// loss notice (the client has already reset the partition), and a lost group
// session (the client rejoins) unless a non-retriable broker error, such as
// a denied authorization, lost it; a member the group no longer knows (its
// session expired while it was stopped or cut off) rejoins as a new one.
// Context errors and a closed client are returned, as is anything else.
func FetchErr(fs kgo.Fetches, log *slog.Logger) error {
	var first error
	fs.EachError(func(t string, p int32, err error) {
		if first != nil {
			return
		}
		if Transient(err) {
			if log != nil {
				log.Warn("kafka fetch error; the client retries", "topic", t, "partition", p, "err", err)
			}
			return
		}
		first = fmt.Errorf("reading %s[%d]: %w", t, p, err)
	})
	return first
}

// Transient reports whether a fetch error is one the client recovers from
// by itself (see FetchErr).
func Transient(err error) bool {
	var loss *kgo.ErrDataLoss
	var session *kgo.ErrGroupSession
	var ke *kerr.Error
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), errors.Is(err, kgo.ErrClientClosed):
		return false
	case errors.As(err, &session):
		return !errors.As(session.Err, &ke) || ke.Retriable ||
			errors.Is(ke, kerr.UnknownMemberID) || errors.Is(ke, kerr.IllegalGeneration)
	}
	return kerr.IsRetriable(err) || errors.As(err, &loss)
}
