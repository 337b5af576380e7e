// Package demo generates a small multi-tenant data set in MongoDB, and the
// mapping that goes with it, for `make demo` and for tests.
//
// Its promise: the same seed gives the same documents, so a test can compare
// what arrives in the target with what it inserted.
package demo
