package mcapcheck

import (
	"strings"
	"testing"
)

func TestValidJSON(t *testing.T) {
	const schema = `{"title":"t","type":"object","properties":{` +
		`"i":{"type":"integer"},"n":{"type":"number"},"s":{"type":"string"},"b":{"type":"boolean"},` +
		`"bin":{"type":"string","contentEncoding":"base64"},"u":{"type":["string","null"]},` +
		`"a":{"type":"array","items":{"type":"object","properties":{"k":{"type":"integer"}}}}}}`
	for _, tc := range []struct{ doc, err string }{
		{`{}`, ""},
		{`{"i":1,"n":1.5,"s":"x","b":true,"bin":"AP8=","u":null,"a":[{"k":2},{}],"other":[null]}`, ""},
		{`{"i":1.0,"n":3}`, ""}, // 1.0 is an integer, 3 a number
		{`{"i":1.5}`, "$.i: a number is not of type integer"},
		{`{"n":"1"}`, "$.n: a string is not of type number"},
		{`{"b":null}`, "$.b: null is not of type boolean"},
		{`{"bin":"AP8"}`, "is not base64"},
		{`{"u":1}`, "$.u: a number is not of type [string null]"},
		{`{"a":[{"k":"x"}]}`, "$.a[0].k: a string is not of type integer"},
		{`[]`, "$: an array is not of type object"},
		{`{} {}`, "more than one JSON value"},
	} {
		err := ValidJSON([]byte(schema), []byte(tc.doc))
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ValidJSON(%s) = %v, want %q", tc.doc, err, tc.err)
		}
	}
	if err := ValidJSON([]byte(`{"type":"object","required":["a"]}`), []byte(`{}`)); err == nil || !strings.Contains(err.Error(), `"required"`) {
		t.Errorf("a keyword outside the subset: %v", err)
	}
}

func TestFoxgloveSchema(t *testing.T) {
	for _, tc := range []struct{ schema, err string }{
		{`{"type":"object","properties":{}}`, ""},
		{`{"title":"x","type":"object","properties":{"a":{"type":"array","items":{"type":"object","properties":{"b":{"type":"string","contentEncoding":"base64"}}}}}}`, ""},
		{`{"type":"object"}`, `no "properties"`},
		{`{"type":"array","items":{"type":"integer"}}`, `type array, want "object"`},
		{`{"type":"object","properties":{"a":{"type":["number","null"]}}}`, "schema.a: type [number null]"},
		{`{"type":"object","properties":{"a":{"type":"null"}}}`, "schema.a: type null"},
		{`{"type":"object","properties":{"a":{}}}`, "schema.a: type <nil>"},
		{`{"type":"object","properties":{"a":{"type":"array","items":{"type":"array","items":{"type":"integer"}}}}}`, "array of arrays"},
		{`{"type":"object","properties":{"a":{"type":"array","items":{"type":"string","contentEncoding":"base64"}}}}`, "contentEncoding in array items"},
		{`{"type":"object","properties":{"a":{"type":"string","contentEncoding":"base32"}}}`, "contentEncoding base32"},
		{`{"type":"object","properties":{"a":{"type":"array"}}}`, "array without items"},
	} {
		err := FoxgloveSchema([]byte(tc.schema))
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("FoxgloveSchema(%s) = %v, want %q", tc.schema, err, tc.err)
		}
	}
}
