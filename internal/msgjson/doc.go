// Package msgjson converts between JSON text and the msgpack payloads
// exchanged by mcl peers: "mcl pub" packs JSON with [FromJSON], "mcl sub"
// prints payloads with [ToJSON], and "mcl record --encoding json" and
// "mcl convert" write them as [ToFoxgloveJSON] with a JSON [Schema].
//
// # JSON to msgpack
//
// FromJSON packs a JSON value exactly as the original Python 2 library
// packed the equivalent Python value (msgpack-python, use_bin_type=False),
// so that Python peers receive the types they would have sent themselves:
//
//   - An object becomes a map whose keys are in the order they appear in
//     the text. Duplicate keys are all kept.
//   - An array becomes an array.
//   - A string becomes a UTF-8 str in the old spec's formats only: fixstr,
//     str16, str32, never str8, which old-spec decoders reject. Invalid
//     UTF-8 and lone surrogate escapes become U+FFFD, as in encoding/json.
//   - A number without fraction or exponent becomes an integer in the
//     smallest format that holds it: positive fixint or uint8 to uint64 if
//     it is not negative, negative fixint or int8 to int64 if it is. Such
//     a number outside [-2^63, 2^64-1] is an error (Python could not pack
//     it either).
//   - Any other number becomes a float64. A number too large for a float64
//     is an error.
//   - true, false and null become bool and nil.
//
// # msgpack to JSON
//
// ToJSON renders any msgpack value, from old or new spec peers, as compact
// JSON:
//
//   - nil, true and false become null, true and false.
//   - An integer becomes a JSON integer, exact over the whole int64 and
//     uint64 ranges.
//   - A float32 or float64 becomes the shortest decimal that reads back as
//     the same value, written as Python's repr writes it: always with a
//     fraction or an exponent, so that it reads back as a float (1.0, 0.5,
//     0.0001, 1e-05, 1e+16). NaN, +Inf and -Inf, which JSON cannot
//     express, become the strings "NaN", "Infinity" and "-Infinity".
//   - A str holding valid UTF-8 becomes a JSON string. Only the characters
//     JSON requires are escaped: '"', '\' and U+0000 to U+001F.
//   - A str that is not valid UTF-8, and any bin, becomes
//     {"$bytes":"<base64>"}, where <base64> is standard base64 with
//     padding (RFC 4648, section 4).
//   - An ext, including the timestamp ext -1, becomes
//     {"$ext":<type>,"$bytes":"<base64>"}.
//   - An array becomes an array.
//   - A map becomes an object with its members in wire order; duplicate
//     keys are all kept. A key that is a UTF-8 str is used as is. A key
//     that is a non-UTF-8 str or a bin becomes "$bytes:<base64>". Any
//     other key becomes its JSON rendering, put in a string unless it
//     already is one: 1 → "1", true → "true", nil → "null", 1.5 → "1.5",
//     NaN → "NaN", [1,"a"] → "[1,\"a\"]". Within such a key, the keys of
//     maps are not put in strings a second time, so that quoting does not
//     compound: the key {1:{2:3}} becomes "{1:{2:3}}".
//
// The rendering is meant for reading and is not always reversible:
// FromJSON packs {"$bytes":...} as a map, the int key 1 and the str key
// "1" render alike, and the JSON number 1.0 packs as a float while 1 packs
// as an integer.
//
// # JSON for Foxglove
//
// ToFoxgloveJSON renders a payload as the JSON that Foxglove reads from
// MCAP channels of message encoding "json" with a "jsonschema" schema, and
// a [Schema] learns, from the payloads it sees, the JSON Schema that
// describes them. The rendering is ToJSON's except where Foxglove needs
// otherwise:
//
//   - The payload is an object: a map renders as one, and anything else is
//     wrapped, as {"data":<value>} (see [WrapKey]).
//   - Binary data, a bin or a str that is not valid UTF-8, is a string of
//     standard base64, which the schema marks with "contentEncoding":
//     "base64", as Foxglove documents, so that it reads it as bytes.
//   - A timestamp ext (type -1) is {"sec":<int>,"nsec":<int>}, Foxglove's
//     time; any other ext is {"$ext":<type>,"$bytes":"<base64>"} as above.
//
// A Schema describes each member of the objects with the one type
// Foxglove's JSON Schema reader accepts for a field: "boolean", "integer",
// "number", "string", "object" (with "properties") or "array" (with
// "items" of one type other than array). That reader refuses "null", lists
// of types and arrays of arrays, and with them the whole channel. So a
// member whose values have been null, or of two types (bar integer and
// number, which widen to number, and text and bytes, which widen to a
// plain string), or arrays Foxglove cannot type, is left out of
// "properties": it stays in the JSON, where Foxglove shows it, and JSON
// Schema lets an object hold members its schema does not list. No member
// is "required". Widening a Schema therefore never invalidates a payload
// it has seen: every one is valid against the schema it writes last.
//
// All directions refuse values nested deeper than [MaxDepth], so that
// hostile input cannot exhaust the stack.
package msgjson

import "errors"

// MaxDepth is the deepest nesting of arrays and maps (objects) that
// FromJSON and ToJSON accept. It matches encoding/json's own limit, so
// whatever ToJSON writes, encoding/json can read.
const MaxDepth = 10000

// Errors wrapped by the errors FromJSON and ToJSON return, for use with
// errors.Is. The returned errors also say where in the input things went
// wrong.
var (
	// ErrTooDeep reports arrays or maps nested deeper than MaxDepth.
	ErrTooDeep = errors.New("nested too deeply")

	// ErrRange reports a JSON number that no msgpack integer or float64
	// can hold.
	ErrRange = errors.New("number out of range")

	// ErrTruncated reports msgpack input that ends inside a value.
	ErrTruncated = errors.New("truncated msgpack value")

	// ErrInvalid reports the byte 0xc1, which the msgpack spec never
	// uses.
	ErrInvalid = errors.New("invalid msgpack byte 0xc1")
)
