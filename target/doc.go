// Package target connects to the PostgreSQL-compatible database docshift
// writes to.
//
// Its promises: a pool is checked before it is handed out, and an error names
// the host, port and database it could not reach but never the password.
package target
