// Package verify compares the source with the target: per collection and
// tenant, the number of documents in MongoDB against the number of live
// (not deleted) rows in the target table.
//
// Its promise: a mismatch is reported, never hidden; Report.OK is true only
// when every tenant of every collection matches.
package verify
