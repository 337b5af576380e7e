package snapshot

import (
	"bytes"
	"math"
	"strconv"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// compareValues orders two BSON values the way MongoDB sorts them: by type
// bracket first, then within the bracket (numbers by value whatever their
// type, strings by bytes, documents field by field). The planner sorts its
// sampled _ids with it rather than asking the server, which some servers
// (mongo-java-server) cannot do for mixed-type values.
func compareValues(a, b bson.RawValue) int {
	ba, bb := bracketIndex(a.Type), bracketIndex(b.Type)
	if ba != bb {
		return cmpInt(ba, bb)
	}
	switch brackets[ba].name {
	case "number":
		return compareNumbers(a, b)
	case "string":
		sa, _ := a.StringValueOK()
		if a.Type == bson.TypeSymbol {
			sa, _ = a.SymbolOK()
		}
		sb, _ := b.StringValueOK()
		if b.Type == bson.TypeSymbol {
			sb, _ = b.SymbolOK()
		}
		return cmpOrdered(sa, sb)
	case "object", "array":
		return compareDocuments(a.Value, b.Value, brackets[ba].name == "object")
	case "binData":
		sa, da := a.Binary()
		sb, db := b.Binary()
		if len(da) != len(db) {
			return cmpInt(len(da), len(db))
		}
		if sa != sb {
			return cmpInt(int(sa), int(sb))
		}
		return bytes.Compare(da, db)
	case "bool":
		return cmpInt(btoi(a.Boolean()), btoi(b.Boolean()))
	case "date":
		return cmpOrdered(a.DateTime(), b.DateTime())
	case "timestamp":
		ta, ia := a.Timestamp()
		tb, ib := b.Timestamp()
		if ta != tb {
			return cmpOrdered(ta, tb)
		}
		return cmpOrdered(ia, ib)
	case "minKey", "null", "maxKey":
		return 0
	}
	return bytes.Compare(a.Value, b.Value) // ObjectId (big-endian bytes), regex, code
}

func compareNumbers(a, b bson.RawValue) int {
	ia, aInt := a.AsInt64OK()
	ib, bInt := b.AsInt64OK()
	if aInt && bInt && a.Type != bson.TypeDouble && b.Type != bson.TypeDouble {
		return cmpOrdered(ia, ib)
	}
	fa, fb := float(a), float(b)
	switch {
	case math.IsNaN(fa) && math.IsNaN(fb):
		return 0
	case math.IsNaN(fa): // NaN sorts before every other number
		return -1
	case math.IsNaN(fb):
		return 1
	}
	return cmpOrdered(fa, fb)
}

func float(v bson.RawValue) float64 {
	switch v.Type {
	case bson.TypeDouble:
		return v.Double()
	case bson.TypeInt32:
		return float64(v.Int32())
	case bson.TypeInt64:
		return float64(v.Int64())
	case bson.TypeDecimal128:
		f, err := strconv.ParseFloat(v.Decimal128().String(), 64)
		if err != nil {
			return math.NaN()
		}
		return f
	}
	return math.NaN()
}

// compareDocuments compares two documents (or arrays, withKeys false) element
// by element: the value's bracket, then the field name, then the value.
func compareDocuments(a, b []byte, withKeys bool) int {
	ea, _ := bson.Raw(a).Elements()
	eb, _ := bson.Raw(b).Elements()
	for i := 0; i < len(ea) && i < len(eb); i++ {
		va, vb := ea[i].Value(), eb[i].Value()
		if c := cmpInt(bracketIndex(va.Type), bracketIndex(vb.Type)); c != 0 {
			return c
		}
		if withKeys {
			if c := cmpOrdered(ea[i].Key(), eb[i].Key()); c != 0 {
				return c
			}
		}
		if c := compareValues(va, vb); c != 0 {
			return c
		}
	}
	return cmpInt(len(ea), len(eb))
}

func cmpOrdered[T int | int32 | int64 | uint32 | float64 | string](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpInt(a, b int) int { return cmpOrdered(a, b) }

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
