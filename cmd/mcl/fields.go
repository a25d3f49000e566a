package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// A fieldPath picks a value out of a payload: map keys separated by dots,
// list indexes in brackets ("pose.x", "ranges[3]", "a.b[0].c", and "[0]"
// for a payload that is a list), as the spy page names the field it plots. A map key holding a dot or a bracket
// cannot be named.
type fieldPath struct {
	text  string
	steps []fieldStep
}

type fieldStep struct {
	key   string
	index int // >= 0: a list index, key unused
}

// parseFieldPath parses s. Errors say what is wrong with it.
func parseFieldPath(s string) (fieldPath, error) {
	p := fieldPath{text: s}
	if s == "" {
		return p, fmt.Errorf("an empty field path")
	}
	for _, part := range strings.Split(s, ".") {
		key, rest, _ := strings.Cut(part, "[")
		if key == "" && (rest == "" || len(p.steps) > 0) {
			return p, fmt.Errorf("%q: an empty key", s)
		}
		if key != "" {
			p.steps = append(p.steps, fieldStep{key: key, index: -1})
		}
		for rest != "" {
			num, after, ok := strings.Cut(rest, "]")
			i, err := strconv.Atoi(num)
			if !ok || err != nil || i < 0 {
				return p, fmt.Errorf("%q: a list index is a number in brackets, such as [3]", s)
			}
			p.steps = append(p.steps, fieldStep{index: i})
			if after == "" {
				break
			}
			if !strings.HasPrefix(after, "[") {
				return p, fmt.Errorf("%q: %q after an index", s, after)
			}
			rest = after[1:]
		}
	}
	return p, nil
}

// pick returns the value at p in v (decoded JSON), and whether it is there.
func (p fieldPath) pick(v any) (any, bool) {
	for _, st := range p.steps {
		switch x := v.(type) {
		case map[string]any:
			if st.index >= 0 {
				return nil, false
			}
			var ok bool
			if v, ok = x[st.key]; !ok {
				return nil, false
			}
		case []any:
			if st.index < 0 || st.index >= len(x) {
				return nil, false
			}
			v = x[st.index]
		default:
			return nil, false
		}
	}
	return v, true
}

// appendFields appends {"path": value, ...} for the fields of payload, the
// JSON rendering of a message's payload; a field not there is null.
func appendFields(b, payload []byte, fields []fieldPath) ([]byte, error) {
	d := json.NewDecoder(bytes.NewReader(payload))
	d.UseNumber() // integers stay exact
	var v any
	if err := d.Decode(&v); err != nil {
		return b, err
	}
	b = append(b, '{')
	for i, f := range fields {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, f.text)
		b = append(b, ':')
		x, _ := f.pick(v)
		enc, err := json.Marshal(x)
		if err != nil {
			return b, err
		}
		b = append(b, enc...)
	}
	return append(b, '}'), nil
}
