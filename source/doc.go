// Package source connects to the MongoDB deployment docshift reads from and
// answers the questions both producers ask of it: which collections exist and
// what the cluster time is now.
//
// Its promises: a connection is checked before it is handed out, and an error
// names the host it could not reach but never the URI's credentials.
package source
