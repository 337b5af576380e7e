package schemas

import (
	"math"
	"math/big"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// PostgreSQL's timestamptz range, in Unix milliseconds: 4713-01-01 BC to
// 294276-12-31 AD. A BSON date outside it does not fit a timestamptz column.
const (
	minTimestampMillis = -210866803200000
	maxTimestampMillis = 9224318015999999 / 1000
)

// maxExactInt is the largest integer a double holds exactly.
const maxExactInt = 1 << 53

// columnValue converts a BSON value to the Go value of a column of type t, the
// form the Avro codec writes. It reports false when the value does not fit
// without loss (the caller keeps it in _extra). The rules are in
// docs/types.md; BSON null is handled by the caller, and numeric(p,s) by
// decimalValue (pathNode.value picks).
func columnValue(t SQLType, v bson.RawValue) (any, bool) {
	switch t {
	case Text:
		return textValue(v)
	case Integer:
		switch v.Type {
		case bson.TypeInt32:
			return v.Int32(), true
		case bson.TypeInt64:
			if n := v.Int64(); n >= math.MinInt32 && n <= math.MaxInt32 {
				return int32(n), true
			}
		case bson.TypeDouble:
			if f := v.Double(); f == math.Trunc(f) && f >= math.MinInt32 && f <= math.MaxInt32 {
				return int32(f), true
			}
		}
	case BigInt:
		switch v.Type {
		case bson.TypeInt32:
			return int64(v.Int32()), true
		case bson.TypeInt64:
			return v.Int64(), true
		case bson.TypeDouble:
			if f := v.Double(); f == math.Trunc(f) && f >= math.MinInt64 && f < math.MaxInt64 {
				return int64(f), true
			}
		case bson.TypeTimestamp:
			t, i := v.Timestamp()
			return Version(bson.Timestamp{T: t, I: i}), true
		}
	case Double:
		switch v.Type {
		case bson.TypeDouble:
			return v.Double(), true
		case bson.TypeInt32:
			return float64(v.Int32()), true
		case bson.TypeInt64:
			if n := v.Int64(); n >= -maxExactInt && n <= maxExactInt {
				return float64(n), true
			}
		}
	case Numeric:
		return numericText(v)
	case Boolean:
		if b, ok := v.BooleanOK(); ok {
			return b, true
		}
	case TimestampTZ:
		if ms, ok := v.DateTimeOK(); ok && ms >= minTimestampMillis && ms <= maxTimestampMillis {
			return time.UnixMilli(ms).UTC(), true
		}
	case UUID:
		if sub, data, ok := v.BinaryOK(); ok && sub == bson.TypeBinaryUUID && len(data) == 16 {
			return formatUUID(data), true
		}
		if s, ok := v.StringValueOK(); ok && isUUID(s) {
			return s, true
		}
	case Bytea:
		if sub, data, ok := v.BinaryOK(); ok && (sub == bson.TypeBinaryGeneric || sub == bson.TypeBinaryBinaryOld) {
			return data, true
		}
	case JSONB:
		if b, err := appendJSON(nil, v, false); err == nil {
			return string(b), true
		}
	}
	return nil, false
}

// textValue: strings PostgreSQL can store, and scalars whose text form is
// exact (numbers, booleans, ObjectIds, dates): text is the widest column.
func textValue(v bson.RawValue) (any, bool) {
	switch v.Type {
	case bson.TypeString:
		if s := v.StringValue(); pgSafe(s) {
			return s, true
		}
	case bson.TypeSymbol:
		if s := v.Symbol(); pgSafe(s) {
			return s, true
		}
	case bson.TypeJavaScript:
		if s := v.JavaScript(); pgSafe(s) {
			return s, true
		}
	case bson.TypeObjectID:
		return v.ObjectID().Hex(), true
	case bson.TypeInt32, bson.TypeInt64, bson.TypeDecimal128:
		return numericText(v)
	case bson.TypeDouble:
		return strconv.FormatFloat(v.Double(), 'g', -1, 64), true
	case bson.TypeBoolean:
		return strconv.FormatBool(v.Boolean()), true
	case bson.TypeDateTime:
		return time.UnixMilli(v.DateTime()).UTC().Format(time.RFC3339Nano), true
	}
	return nil, false
}

// numericText is the exact decimal text of a number (PostgreSQL numeric
// accepts NaN and ±Infinity too).
func numericText(v bson.RawValue) (any, bool) {
	switch v.Type {
	case bson.TypeInt32:
		return strconv.FormatInt(int64(v.Int32()), 10), true
	case bson.TypeInt64:
		return strconv.FormatInt(v.Int64(), 10), true
	case bson.TypeDouble:
		f := v.Double()
		switch {
		case math.IsNaN(f):
			return "NaN", true
		case math.IsInf(f, 1):
			return "Infinity", true
		case math.IsInf(f, -1):
			return "-Infinity", true
		}
		return strconv.FormatFloat(f, 'g', -1, 64), true
	case bson.TypeDecimal128:
		d := v.Decimal128()
		switch {
		case d.IsNaN():
			return "NaN", true
		case d.IsInf() > 0:
			return "Infinity", true
		case d.IsInf() < 0:
			return "-Infinity", true
		}
		return d.String(), true
	}
	return nil, false
}

// decimalValue converts a number to a *big.Rat that fits numeric(p,s) exactly.
func decimalValue(v bson.RawValue, precision, scale int) (any, bool) {
	s, ok := numericText(v)
	if !ok {
		return nil, false
	}
	r, ok := new(big.Rat).SetString(s.(string))
	if !ok { // NaN, Infinity: no Avro decimal form
		return nil, false
	}
	// Exact at this scale: r * 10^scale is an integer of at most precision digits.
	scaled := new(big.Rat).Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil)))
	if !scaled.IsInt() {
		return nil, false
	}
	if len(new(big.Int).Abs(scaled.Num()).String()) > precision {
		return nil, false
	}
	return r, true
}

func formatUUID(b []byte) string {
	const hexDigits = "0123456789abcdef"
	out := make([]byte, 0, 36)
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hexDigits[c>>4], hexDigits[c&0xF])
	}
	return string(out)
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
			continue
		}
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}
