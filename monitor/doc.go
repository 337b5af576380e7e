// Package monitor serves what operators watch on every docshift process:
// Prometheus metrics on /metrics, liveness on /healthz and readiness on
// /readyz.
//
// Its promises: metrics come from the registry the process injects (never the
// global one); /readyz answers 200 only while every readiness check passes and
// says which one failed otherwise; Serve returns once its context is cancelled
// and the server has shut down.
package monitor
