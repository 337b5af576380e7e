package snapshot

import "go.mongodb.org/mongo-driver/v2/bson"

// A bracket is a group of BSON types that MongoDB compares with each other
// (all numbers compare as numbers; a string and a symbol compare as strings).
// A range condition such as {$gte: 5} only ever matches values of its own
// bracket, so a chunk's bounds must lie in one bracket and chunks of a
// collection whose _ids mix types are planned per bracket.
type bracket struct {
	name  string
	types []bson.Type
}

// brackets lists every BSON type once, the brackets in BSON sort order:
// MinKey < null < numbers < string < object < array < binData < ObjectId <
// bool < date < timestamp < regex < the rare code types < MaxKey.
var brackets = []bracket{
	{"minKey", []bson.Type{bson.TypeMinKey}},
	{"null", []bson.Type{bson.TypeNull, bson.TypeUndefined}},
	{"number", []bson.Type{bson.TypeDouble, bson.TypeInt32, bson.TypeInt64, bson.TypeDecimal128}},
	{"string", []bson.Type{bson.TypeString, bson.TypeSymbol}},
	{"object", []bson.Type{bson.TypeEmbeddedDocument}},
	{"array", []bson.Type{bson.TypeArray}},
	{"binData", []bson.Type{bson.TypeBinary}},
	{"objectId", []bson.Type{bson.TypeObjectID}},
	{"bool", []bson.Type{bson.TypeBoolean}},
	{"date", []bson.Type{bson.TypeDateTime}},
	{"timestamp", []bson.Type{bson.TypeTimestamp}},
	{"regex", []bson.Type{bson.TypeRegex}},
	{"code", []bson.Type{bson.TypeDBPointer, bson.TypeJavaScript, bson.TypeCodeWithScope}},
	{"maxKey", []bson.Type{bson.TypeMaxKey}},
}

// bracketIndex returns the position in brackets of the bracket holding t, or
// -1 for a byte that is no BSON type.
func bracketIndex(t bson.Type) int {
	for i, b := range brackets {
		for _, bt := range b.types {
			if bt == t {
				return i
			}
		}
	}
	return -1
}

// bracketByName returns the position in brackets of the named bracket, or -1.
func bracketByName(name string) int {
	for i, b := range brackets {
		if b.name == name {
			return i
		}
	}
	return -1
}

// typeCodes returns the bracket's types as $type operands. MinKey and MaxKey
// are -1 and 127 there, not their type bytes.
func (b bracket) typeCodes() bson.A {
	codes := make(bson.A, 0, len(b.types))
	for _, t := range b.types {
		code := int32(t)
		switch t {
		case bson.TypeMinKey:
			code = -1
		case bson.TypeMaxKey:
			code = 127
		}
		codes = append(codes, code)
	}
	return codes
}
