package consumer

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/docshift/docshift/schemas"
)

// pgEncoder turns a decoded row value into one pgx encodes, in COPY's binary
// format, as its column's type. nil means the value passes as it is: text,
// integers, double, boolean, time.Time (timestamptz), string (uuid), []byte
// (bytea), JSON text (jsonb) and []int32 (integer[]) are all encoded by pgx.
type pgEncoder func(any) (any, error)

// encoderFor returns the encoder of a column type, nil when none is needed.
// numeric columns carry exact decimal text ("1.5E+10", "NaN", "-Infinity"),
// numeric(p,s) columns a *big.Rat; pgx takes neither, so both become
// pgtype.Numeric.
func encoderFor(t schemas.SQLType) pgEncoder {
	if strings.HasPrefix(string(t), string(schemas.Numeric)) {
		return numericValue
	}
	return nil
}

// numericValue converts a numeric column's value to pgtype.Numeric.
func numericValue(v any) (any, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		return parseNumeric(x)
	case *big.Rat:
		return ratNumeric(x), nil
	}
	return nil, fmt.Errorf("numeric column: unexpected value of type %T", v)
}

// parseNumeric reads decimal text, with an optional exponent, or NaN and
// ±Infinity, exactly.
func parseNumeric(s string) (pgtype.Numeric, error) {
	switch s {
	case "NaN":
		return pgtype.Numeric{NaN: true, Valid: true}, nil
	case "Infinity", "+Infinity":
		return pgtype.Numeric{InfinityModifier: pgtype.Infinity, Valid: true}, nil
	case "-Infinity":
		return pgtype.Numeric{InfinityModifier: pgtype.NegativeInfinity, Valid: true}, nil
	}
	mant, expText, hasExp := strings.Cut(strings.ToUpper(s), "E")
	var exp int64
	if hasExp {
		var err error
		if exp, err = strconv.ParseInt(expText, 10, 32); err != nil {
			return pgtype.Numeric{}, fmt.Errorf("numeric %q: bad exponent", s)
		}
	}
	whole, frac, _ := strings.Cut(mant, ".")
	digits := whole + frac
	if strings.TrimLeft(digits, "+-") == "" || strings.ContainsAny(digits[1:], "+-") {
		return pgtype.Numeric{}, fmt.Errorf("numeric %q: not a decimal number", s)
	}
	n, ok := new(big.Int).SetString(digits, 10)
	if !ok {
		return pgtype.Numeric{}, fmt.Errorf("numeric %q: not a decimal number", s)
	}
	exp -= int64(len(frac))
	if exp != int64(int32(exp)) {
		return pgtype.Numeric{}, fmt.Errorf("numeric %q: exponent out of range", s)
	}
	return pgtype.Numeric{Int: n, Exp: int32(exp), Valid: true}, nil
}

// ratNumeric converts a decimal (a rational whose denominator divides a power
// of ten, as Avro decimals decode) to pgtype.Numeric, exactly.
func ratNumeric(r *big.Rat) pgtype.Numeric {
	den := new(big.Int).Set(r.Denom())
	twos := den.TrailingZeroBits()
	den.Rsh(den, twos)
	fives := uint(0)
	five, rem := big.NewInt(5), new(big.Int)
	for den.Cmp(big.NewInt(1)) > 0 {
		q, m := new(big.Int).QuoRem(den, five, rem)
		if m.Sign() != 0 {
			break // not a decimal: cannot happen for Avro decimals
		}
		den, fives = q, fives+1
	}
	scale := max(twos, fives)
	scaled := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil)
	scaled.Mul(scaled, r.Num())
	scaled.Quo(scaled, r.Denom())
	return pgtype.Numeric{Int: scaled, Exp: -int32(scale), Valid: true}
}
