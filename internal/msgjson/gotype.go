package msgjson

import (
	"encoding"
	"fmt"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"
)

// TypeSchema returns a Schema that already describes the messages a Go
// struct type encodes to with github.com/vmihailenco/msgpack/v5, as mcl's
// typed messages do: an object with a member per field, named by its
// `msgpack` tag (the field name when untagged; "-" leaves it out), embedded
// structs inlined as that library inlines them. Each field is described as
// its Go type encodes: bool as boolean, integers as integer, floats as
// number, string as string, []byte and [N]byte as base64 string, time.Time
// as {"sec","nsec"}, slices and arrays as arrays of their element, structs
// and maps as objects (a map's keys are learnt from the messages),
// pointers as what they point to. Interfaces and types that encode
// themselves (msgpack's CustomEncoder and Marshaler) are learnt from the
// messages.
//
// The result is a starting point, not a promise: payloads widen it like any
// Schema, so a message that does not match the type (a nil slice, encoded
// as null, or another peer's message of the same name) only makes it
// describe less. Error: t (or what it points to) is not a struct.
func TypeSchema(t reflect.Type) (*Schema, error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("type %s is a %s, not a struct", t, t.Kind())
	}
	s := NewSchema()
	s.addType(&s.root, t, 0, map[reflect.Type]bool{})
	return s, nil
}

var (
	timeType            = reflect.TypeFor[time.Time]()
	binaryMarshalerType = reflect.TypeFor[encoding.BinaryMarshaler]()
	textMarshalerType   = reflect.TypeFor[encoding.TextMarshaler]()
)

// addType marks n, at the given depth, with what values of t encode to.
// open holds the struct types being described, so that a recursive type
// stops at its first repetition.
func (s *Schema) addType(n *node, t reflect.Type, depth int, open map[reflect.Type]bool) {
	if n == nil {
		return
	}
	for t.Kind() == reflect.Pointer { // a nil pointer, encoded as nil, widens the schema when it comes
		t = t.Elem()
	}
	switch {
	case t == timeType:
		s.mark(n, kObject)
		s.mark(s.prop(n, []byte("sec")), kInt)
		s.mark(s.prop(n, []byte("nsec")), kInt)
		return
	case encodesItself(t):
		return
	case implements(t, binaryMarshalerType):
		s.mark(n, kBytes)
		return
	case implements(t, textMarshalerType):
		s.mark(n, kText)
		return
	}
	switch t.Kind() {
	case reflect.Bool:
		s.mark(n, kBool)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		s.mark(n, kInt)
	case reflect.Float32, reflect.Float64:
		s.mark(n, kFloat)
	case reflect.String:
		s.mark(n, kText)
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 { // msgpack bin, as the library writes them
			s.mark(n, kBytes)
			return
		}
		s.mark(n, kArray)
		if n = s.container(n, depth); n != nil {
			s.addType(s.items(n), t.Elem(), depth+1, open)
		}
	case reflect.Map:
		s.mark(n, kObject)
	case reflect.Struct:
		fields, asArray := structFields(t)
		if asArray || open[t] {
			return
		}
		open[t] = true
		defer delete(open, t)
		s.mark(n, kObject)
		if n = s.container(n, depth); n == nil {
			return
		}
		for _, f := range fields {
			s.addType(s.prop(n, jsonName(f.name)), f.typ, depth+1, open)
		}
	}
}

// jsonName returns name as a JSON string holds it: escaped, unquoted.
func jsonName(name string) []byte {
	b := appendString(nil, []byte(name))
	return b[1 : len(b)-1]
}

// goField is a member of a struct's msgpack map.
type goField struct {
	name string
	typ  reflect.Type
}

// structFields lists the members of struct t's msgpack map by the rules of
// github.com/vmihailenco/msgpack/v5 (getFields in its types.go), and
// whether t encodes as an array instead (a `_msgpack` field tagged
// as_array).
func structFields(t reflect.Type) (fields []goField, asArray bool) {
	have := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("msgpack"), ",")
		if name == "-" {
			continue
		}
		if f.Name == "_msgpack" && (hasOption(opts, "as_array") || hasOption(opts, "asArray")) {
			asArray = true
		}
		if !f.IsExported() && !f.Anonymous {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if f.Anonymous && !hasOption(opts, "noinline") {
			if inner, ok := inlined(f.Type); ok {
				shadowed := false
				for _, g := range inner {
					shadowed = shadowed || have[g.name]
				}
				// The library inlines a struct whose members no
				// earlier member shadows; with "inline", it inlines
				// whatever is not shadowed.
				if !shadowed || hasOption(opts, "inline") {
					for _, g := range inner {
						if !have[g.name] {
							have[g.name] = true
							fields = append(fields, g)
						}
					}
					continue
				}
			}
		}
		if !utf8.ValidString(name) || have[name] {
			continue // rendered under another name, or twice: learnt from the messages
		}
		have[name] = true
		fields = append(fields, goField{name, f.Type})
	}
	return fields, asArray
}

// inlined returns the members of the embedded type t if it is a struct, or
// a pointer to one, that the library encodes field by field.
func inlined(t reflect.Type) ([]goField, bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t == timeType || encodesItself(t) ||
		implements(t, binaryMarshalerType) || implements(t, textMarshalerType) {
		return nil, false
	}
	fields, asArray := structFields(t)
	return fields, !asArray
}

func hasOption(opts, want string) bool {
	for o := range strings.SplitSeq(opts, ",") {
		if o == want {
			return true
		}
	}
	return false
}

// implements reports whether t, or a pointer to it (as for an addressable
// field), implements iface.
func implements(t, iface reflect.Type) bool {
	return t.Implements(iface) || reflect.PointerTo(t).Implements(iface)
}

// encodesItself reports whether t has the methods of msgpack's
// CustomEncoder or Marshaler, found by name so as not to import the
// library.
func encodesItself(t reflect.Type) bool {
	for _, typ := range []reflect.Type{t, reflect.PointerTo(t)} {
		if _, ok := typ.MethodByName("EncodeMsgpack"); ok {
			return true
		}
		if _, ok := typ.MethodByName("MarshalMsgpack"); ok {
			return true
		}
	}
	return false
}
