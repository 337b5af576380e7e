package schemas

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// JSON forms of BSON values.
//
// docshift renders BSON as MongoDB Extended JSON v2 with one addition: a
// string that PostgreSQL cannot store in text or jsonb (it contains a NUL
// byte, or is not valid UTF-8) is written as {"$stringBase64": "<base64 of its
// bytes>"}, so its bytes survive. Canonical form keeps every BSON type (it is
// used for _id, keys and _extra); relaxed form writes numbers and dates as
// plain JSON where that is exact (it is used for jsonb columns, which people
// query).

// ExtJSON returns the Extended JSON of one BSON value.
func ExtJSON(v bson.RawValue, canonical bool) (string, error) {
	b, err := appendJSON(nil, v, canonical)
	return string(b), err
}

func appendKey(b []byte, k string) []byte {
	// Keys cannot hold NUL (BSON keys are C strings); invalid UTF-8 in a key
	// is replaced, as JSON object keys must be text.
	b = appendString(b, strings.ToValidUTF8(k, "\uFFFD"))
	return append(b, ':')
}

// appendKeyBytes is appendKey of a key read in place from BSON: a valid
// UTF-8 key (nearly every one) is written without making it a string.
func appendKeyBytes(b []byte, k []byte) []byte {
	if !utf8.Valid(k) {
		return appendKey(b, string(k))
	}
	b = appendString(b, k)
	return append(b, ':')
}

// pgSafe reports whether PostgreSQL text and jsonb can store s unchanged.
func pgSafe(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

func appendStringValue(b []byte, s string) []byte {
	if pgSafe(s) {
		return appendString(b, s)
	}
	b = append(b, `{"$stringBase64":"`...)
	b = base64.StdEncoding.AppendEncode(b, []byte(s))
	return append(b, `"}`...)
}

// appendString writes a JSON string; s must be valid UTF-8. Runs of bytes
// that need no escape are copied whole. s is a string, or bytes read in
// place from BSON.
func appendString[S string | []byte](b []byte, s S) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		start = i + 1
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
		}
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// formatDouble writes a double as MongoDB's canonical Extended JSON does:
// shortest exact form, at least one decimal place for integral values.
func formatDouble(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case math.IsNaN(f):
		return "NaN"
	}
	s := strconv.FormatFloat(f, 'G', -1, 64)
	if !strings.ContainsAny(s, "E.") {
		s += ".0"
	}
	return s
}

// stringBytes returns the bytes of a BSON string value where they are (no
// string is made of them): an int32 length that counts the trailing NUL,
// the bytes, the NUL.
func stringBytes(v bson.RawValue) ([]byte, bool) {
	if len(v.Value) < 5 {
		return nil, false
	}
	n := int(int32(binary.LittleEndian.Uint32(v.Value)))
	if n < 1 || n > len(v.Value)-4 || v.Value[3+n] != 0 {
		return nil, false
	}
	return v.Value[4 : 3+n], true
}

// errMalformed is returned for a BSON value whose bytes do not hold its type.
var errMalformed = errors.New("malformed BSON value")

func appendJSON(b []byte, v bson.RawValue, canonical bool) ([]byte, error) {
	bad := func() ([]byte, error) { return b, fmt.Errorf("%w of type %s", errMalformed, v.Type) }
	switch v.Type {
	case bson.TypeDouble:
		f, ok := v.DoubleOK()
		if !ok {
			return bad()
		}
		if !canonical && !math.IsInf(f, 0) && !math.IsNaN(f) {
			return strconv.AppendFloat(b, f, 'g', -1, 64), nil
		}
		return append(append(append(b, `{"$numberDouble":"`...), formatDouble(f)...), `"}`...), nil
	case bson.TypeString:
		s, ok := stringBytes(v)
		if !ok {
			return bad()
		}
		if utf8.Valid(s) && bytes.IndexByte(s, 0) < 0 { // pgSafe, in place
			return appendString(b, s), nil
		}
		return appendStringValue(b, string(s)), nil
	case bson.TypeEmbeddedDocument, bson.TypeArray:
		return appendContainer(b, v, canonical)
	case bson.TypeBinary:
		sub, data, ok := v.BinaryOK()
		if !ok {
			return bad()
		}
		b = append(b, `{"$binary":{"base64":"`...)
		b = base64.StdEncoding.AppendEncode(b, data)
		b = append(b, `","subType":"`...)
		b = hex.AppendEncode(b, []byte{sub})
		return append(b, `"}}`...), nil
	case bson.TypeUndefined:
		return append(b, `{"$undefined":true}`...), nil
	case bson.TypeObjectID:
		oid, ok := v.ObjectIDOK()
		if !ok {
			return bad()
		}
		return append(append(append(b, `{"$oid":"`...), oid.Hex()...), `"}`...), nil
	case bson.TypeBoolean:
		x, ok := v.BooleanOK()
		if !ok {
			return bad()
		}
		return strconv.AppendBool(b, x), nil
	case bson.TypeDateTime:
		ms, ok := v.DateTimeOK()
		if !ok {
			return bad()
		}
		if !canonical {
			if t := time.UnixMilli(ms).UTC(); t.Year() >= 1970 && t.Year() <= 9999 {
				b = append(b, `{"$date":"`...)
				b = t.AppendFormat(b, "2006-01-02T15:04:05.999Z07:00")
				return append(b, `"}`...), nil
			}
		}
		b = append(b, `{"$date":{"$numberLong":"`...)
		return append(strconv.AppendInt(b, ms, 10), `"}}`...), nil
	case bson.TypeNull:
		return append(b, "null"...), nil
	case bson.TypeRegex:
		p, o, ok := v.RegexOK()
		if !ok {
			return bad()
		}
		b = append(b, `{"$regularExpression":{"pattern":`...)
		b = appendStringValue(b, p)
		b = append(b, `,"options":`...)
		b = appendStringValue(b, o)
		return append(b, `}}`...), nil
	case bson.TypeDBPointer:
		ns, oid, ok := v.DBPointerOK()
		if !ok {
			return bad()
		}
		b = append(b, `{"$dbPointer":{"$ref":`...)
		b = appendStringValue(b, ns)
		return append(append(append(b, `,"$id":{"$oid":"`...), oid.Hex()...), `"}}}`...), nil
	case bson.TypeJavaScript:
		code, ok := v.JavaScriptOK()
		if !ok {
			return bad()
		}
		return append(appendStringValue(append(b, `{"$code":`...), code), '}'), nil
	case bson.TypeSymbol:
		sym, ok := v.SymbolOK()
		if !ok {
			return bad()
		}
		return append(appendStringValue(append(b, `{"$symbol":`...), sym), '}'), nil
	case bson.TypeCodeWithScope:
		code, scope, ok := v.CodeWithScopeOK()
		if !ok {
			return bad()
		}
		b = appendStringValue(append(b, `{"$code":`...), code)
		b = append(b, `,"$scope":`...)
		b, err := appendContainer(b, bson.RawValue{Type: bson.TypeEmbeddedDocument, Value: scope}, canonical)
		return append(b, '}'), err
	case bson.TypeInt32:
		n, ok := v.Int32OK()
		if !ok {
			return bad()
		}
		if !canonical {
			return strconv.AppendInt(b, int64(n), 10), nil
		}
		return append(strconv.AppendInt(append(b, `{"$numberInt":"`...), int64(n), 10), `"}`...), nil
	case bson.TypeTimestamp:
		t, i, ok := v.TimestampOK()
		if !ok {
			return bad()
		}
		b = strconv.AppendUint(append(b, `{"$timestamp":{"t":`...), uint64(t), 10)
		return append(strconv.AppendUint(append(b, `,"i":`...), uint64(i), 10), `}}`...), nil
	case bson.TypeInt64:
		n, ok := v.Int64OK()
		if !ok {
			return bad()
		}
		if !canonical {
			return strconv.AppendInt(b, n, 10), nil
		}
		return append(strconv.AppendInt(append(b, `{"$numberLong":"`...), n, 10), `"}`...), nil
	case bson.TypeDecimal128:
		d, ok := v.Decimal128OK()
		if !ok {
			return bad()
		}
		return append(append(append(b, `{"$numberDecimal":"`...), d.String()...), `"}`...), nil
	case bson.TypeMinKey:
		return append(b, `{"$minKey":1}`...), nil
	case bson.TypeMaxKey:
		return append(b, `{"$maxKey":1}`...), nil
	}
	return b, fmt.Errorf("unknown BSON type 0x%02x", byte(v.Type))
}

func appendContainer(b []byte, v bson.RawValue, canonical bool) ([]byte, error) {
	array := v.Type == bson.TypeArray
	elems, err := bson.Raw(v.Value).Elements()
	if err != nil {
		return b, fmt.Errorf("malformed BSON %s: %w", v.Type, err)
	}
	if array {
		b = append(b, '[')
	} else {
		b = append(b, '{')
	}
	for i, e := range elems {
		if i > 0 {
			b = append(b, ',')
		}
		if !array {
			b = appendKey(b, e.Key())
		}
		if b, err = appendJSON(b, e.Value(), canonical); err != nil {
			return b, err
		}
	}
	if array {
		return append(b, ']'), nil
	}
	return append(b, '}'), nil
}
