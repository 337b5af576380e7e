package consumer

import (
	"context"
	"errors"
	"io"
	"net"

	"github.com/jackc/pgx/v5/pgconn"
)

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
