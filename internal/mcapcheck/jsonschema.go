package mcapcheck

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"slices"
)

// The checks below hold JSON channels to what Foxglove reads, in Go, as
// validate.mjs does with ajv: tests use them where Node is not needed,
// such as in fuzzing.

// FoxgloveSchema checks that schema is a JSON Schema that Foxglove's
// reader accepts (parseJsonSchema in foxglove/studio's mcap-support, which
// Lichtblick keeps): an object with "type": "object" and "properties",
// whose every property has one "type" among boolean, integer, number,
// string (with "contentEncoding" absent or "base64"), object (the same,
// recursively) and array (whose "items" have one such type, not array, and
// no contentEncoding). It returns what breaks these rules.
func FoxgloveSchema(schema []byte) error {
	var s map[string]any
	if err := json.Unmarshal(schema, &s); err != nil {
		return fmt.Errorf("schema is not a JSON object: %v", err)
	}
	return foxObject(s, "schema")
}

func foxObject(s map[string]any, path string) error {
	if s["type"] != "object" {
		return fmt.Errorf("%s: type %v, want \"object\"", path, s["type"])
	}
	props, ok := s["properties"].(map[string]any)
	if !ok {
		return fmt.Errorf("%s: no \"properties\" object", path)
	}
	for name, p := range props {
		ps, ok := p.(map[string]any)
		if !ok {
			return fmt.Errorf("%s.%s: not an object", path, name)
		}
		if err := foxField(ps, path+"."+name, false); err != nil {
			return err
		}
	}
	return nil
}

func foxField(s map[string]any, path string, item bool) error {
	switch s["type"] {
	case "boolean", "integer", "number":
		return nil
	case "string":
		switch enc, ok := s["contentEncoding"]; {
		case !ok:
			return nil
		case item:
			return fmt.Errorf("%s: contentEncoding in array items", path)
		case enc != "base64":
			return fmt.Errorf("%s: contentEncoding %v", path, enc)
		}
		return nil
	case "object":
		return foxObject(s, path)
	case "array":
		if item {
			return fmt.Errorf("%s: array of arrays", path)
		}
		items, ok := s["items"].(map[string]any)
		if !ok {
			return fmt.Errorf("%s: array without items", path)
		}
		return foxField(items, path+"[]", true)
	}
	return fmt.Errorf("%s: type %v: Foxglove reads one of boolean, integer, number, string, object, array", path, s["type"])
}

// ValidJSON checks doc, a JSON text, against schema, written in the subset
// of JSON Schema that mcl writes: "type" (a name or a list), "properties",
// "items", "contentEncoding" and the annotations "title", "description"
// and "$comment"; it refuses other keywords, so that mcl cannot start to
// write some unchecked. It means by them what drafts 7 and 2020-12 do,
// except that it also holds a string with "contentEncoding": "base64" to
// being standard base64 (RFC 4648, padded), which Foxglove decodes. It
// returns the first violation, with its JSON path.
func ValidJSON(schema, doc []byte) error {
	var s any
	if err := json.Unmarshal(schema, &s); err != nil {
		return fmt.Errorf("schema: %v", err)
	}
	d := json.NewDecoder(bytes.NewReader(doc))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return fmt.Errorf("document: %v", err)
	}
	if d.More() {
		return fmt.Errorf("document: more than one JSON value")
	}
	return validate(s, v, "$")
}

func validate(schema, v any, path string) error {
	s, ok := schema.(map[string]any)
	if !ok {
		if b, ok := schema.(bool); ok && b {
			return nil
		}
		return fmt.Errorf("%s: schema %v is not an object", path, schema)
	}
	for k := range s {
		if !slices.Contains([]string{"type", "properties", "items", "contentEncoding", "title", "description", "$comment"}, k) {
			return fmt.Errorf("%s: schema keyword %q outside the subset checked", path, k)
		}
	}
	if t, ok := s["type"]; ok {
		types, _ := t.([]any)
		if name, ok := t.(string); ok {
			types = []any{name}
		}
		if !slices.ContainsFunc(types, func(name any) bool { return hasType(v, name) }) {
			return fmt.Errorf("%s: %s is not of type %v", path, kindOf(v), t)
		}
	}
	switch v := v.(type) {
	case string:
		switch enc, ok := s["contentEncoding"]; {
		case !ok:
		case enc != "base64":
			return fmt.Errorf("%s: contentEncoding %v", path, enc)
		default:
			if _, err := base64.StdEncoding.Strict().DecodeString(v); err != nil {
				return fmt.Errorf("%s: %q is not base64: %v", path, v, err)
			}
		}
	case []any:
		if items, ok := s["items"]; ok {
			for i, e := range v {
				if err := validate(items, e, fmt.Sprintf("%s[%d]", path, i)); err != nil {
					return err
				}
			}
		}
	case map[string]any:
		if props, ok := s["properties"]; ok {
			pm, ok := props.(map[string]any)
			if !ok {
				return fmt.Errorf("%s: properties is not an object", path)
			}
			for name, ps := range pm {
				if e, ok := v[name]; ok {
					if err := validate(ps, e, path+"."+name); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// hasType reports whether v has the JSON Schema type name: "integer" is a
// number of integral value, so 1.0 is one (as in drafts 6 and later).
func hasType(v, name any) bool {
	switch v := v.(type) {
	case nil:
		return name == "null"
	case bool:
		return name == "boolean"
	case string:
		return name == "string"
	case []any:
		return name == "array"
	case map[string]any:
		return name == "object"
	case json.Number:
		if name == "number" {
			return true
		}
		f, ok := new(big.Float).SetString(string(v))
		return name == "integer" && ok && f.IsInt()
	}
	return false
}

func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return "a number"
}
