package schemas

import "go.mongodb.org/mongo-driver/v2/bson"

// Version orders the changes of one document. It is the MongoDB cluster time
// (seconds in the high 32 bits, the increment in the low 32), so a snapshot
// row read after cluster time T and a change event at T' compare the way
// MongoDB ordered them. Stored as a signed 64-bit integer (Avro long,
// PostgreSQL bigint), it orders correctly for cluster times before 2038-01-19.
func Version(ts bson.Timestamp) int64 {
	return int64(ts.T)<<32 | int64(ts.I)
}

// TimestampOf is the inverse of Version.
func TimestampOf(v int64) bson.Timestamp {
	return bson.Timestamp{T: uint32(uint64(v) >> 32), I: uint32(v)}
}
