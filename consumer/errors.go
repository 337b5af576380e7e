package consumer

import (
	"context"
	"errors"
	"io"
	"net"

	"github.com/jackc/pgx/v5/pgconn"
)

// ErrPoison marks a record that can never apply: its value does not decode,
// its schema is unknown, or the database rejects its data. Such a record goes
// to the dead-letter topic (or, with the topic off, stops the consumer).
var ErrPoison = errors.New("record can never apply")

// retryable reports whether a database error is transient: the same batch may
// succeed if applied again (connection lost, server shutting down,
// serialization failure, deadlock). Decided by pgconn.SafeToRetry and by
// SQLSTATE class, never by message text.
func retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	if pgconn.SafeToRetry(err) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "40001", // serialization_failure
			"40P01", // deadlock_detected
			"55P03", // lock_not_available
			"57P01", // admin_shutdown
			"57P02", // crash_shutdown
			"57P03", // cannot_connect_now
			"53300": // too_many_connections
			return true
		}
		return pgErr.Code[:2] == "08" // connection exception
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) {
		return true
	}
	// A connection that broke mid-transaction surfaces as an unexpected EOF or
	// a closed connection from pgconn.
	return pgconn.Timeout(err) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

// dataRejected reports whether a non-retryable error may be caused by the
// data of a record rather than by the database or the consumer: SQLSTATE
// class 22 (data exception: a value out of range, a NUL byte in text, ...),
// class 23 (integrity constraint violation), 54000 (program limit exceeded:
// a row too large), or a value the client could not encode for COPY. A batch
// failing this way is split until the records at fault are found; any other
// error stops the consumer before anything is committed.
func dataRejected(err error) bool {
	if err == nil || retryable(err) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "22", "23":
			return true
		}
		return pgErr.Code == "54000"
	}
	var ce *copyEncodeError
	return errors.As(err, &ce)
}

// copyEncodeError is a COPY that failed on the client side, which pgx reports
// without a type of its own: a row value it cannot encode as its column.
type copyEncodeError struct{ err error }

func (e *copyEncodeError) Error() string { return e.err.Error() }
func (e *copyEncodeError) Unwrap() error { return e.err }
