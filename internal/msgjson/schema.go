package msgjson

import (
	"strings"
)

// Schema is a JSON Schema of the JSON objects ToFoxgloveJSON writes,
// learnt from them: each call widens it to describe one more payload. It
// describes a member of an object only when all its values seen so far
// have one Foxglove type (see "JSON for Foxglove" in the package
// documentation); other members, and members beyond its size limits, are
// left out of "properties", which JSON Schema allows them to be. So every
// payload it has seen is valid against the schema AppendJSON writes.
//
// A Schema is not safe for concurrent use. The zero Schema is an empty
// one, describing objects without saying which members they have.
type Schema struct {
	root      node
	nodes     int    // nodes below root, bounded by maxNodes
	widenings uint64 // changes so far
}

// Bounds on what a Schema follows, so that hostile payloads cannot make it,
// or the schema text it writes for every change, grow without bound (and
// because Foxglove flattens nested objects into types of their own). What
// lies beyond them is left undescribed.
const (
	maxSchemaDepth = 32   // arrays and objects nested in one another
	maxProps       = 512  // members of one object
	maxNodes       = 4096 // places described in one schema
	maxNameLen     = 256  // bytes of a member's name, as escaped in JSON
)

// kinds is the set of JSON shapes seen at one place in the payloads.
type kinds uint16

const (
	kNull kinds = 1 << iota
	kBool
	kInt   // a number written without fraction or exponent
	kFloat // a number written with one
	kText  // a string holding text
	kBytes // a string holding the base64 of binary data
	kArray
	kObject
	kUntracked // values nested too deep, or too many of them, to follow
)

// node is what a Schema knows of one place in the payloads: the root, a
// member of an object, or the elements of an array.
type node struct {
	kinds kinds
	items *node // the elements, when kinds has kArray and an element was seen
	props []prop
	index map[string]int // props by name
}

// prop is an object member: its name as written in JSON (escaped, without
// quotes), so that the schema repeats it byte for byte.
type prop struct {
	name string
	node *node
}

// NewSchema returns an empty Schema.
func NewSchema() *Schema { return new(Schema) }

// Widenings counts the changes made to s since it was created. A caller
// writing one schema after another compares it with the count when it last
// wrote one, to learn whether s may now write a different one.
func (s *Schema) Widenings() uint64 { return s.widenings }

// Clone returns a copy of s that widens independently.
func (s *Schema) Clone() *Schema {
	c := *s
	c.root = *s.root.clone()
	return &c
}

func (n *node) clone() *node {
	c := &node{kinds: n.kinds}
	if n.items != nil {
		c.items = n.items.clone()
	}
	if n.props != nil {
		c.props = make([]prop, len(n.props))
		c.index = make(map[string]int, len(n.props))
		for i, p := range n.props {
			c.props[i] = prop{p.name, p.node.clone()}
			c.index[p.name] = i
		}
	}
	return c
}

// mark adds k to the kinds seen at n, which is nil when not followed.
func (s *Schema) mark(n *node, k kinds) {
	if n != nil && n.kinds&k == 0 {
		n.kinds |= k
		s.widenings++
	}
}

// container returns n, an array or object at the given depth, if its
// contents can be followed, and otherwise marks it untracked and returns nil.
func (s *Schema) container(n *node, depth int) *node {
	if n != nil && depth >= maxSchemaDepth {
		s.mark(n, kUntracked)
		return nil
	}
	return n
}

// items returns the node of n's elements, creating it if need be; nil when
// n is not followed or the schema is full, which leaves n undescribed.
func (s *Schema) items(n *node) *node {
	if n == nil {
		return nil
	}
	if n.items != nil {
		return n.items
	}
	if s.nodes >= maxNodes {
		s.mark(n, kUntracked)
		return nil
	}
	s.nodes++
	s.widenings++
	n.items = new(node)
	return n.items
}

// prop returns the node of n's member named name (as escaped in JSON),
// creating it if need be; nil when n is not followed or the member is past
// a limit, which leaves it out of the schema.
func (s *Schema) prop(n *node, name []byte) *node {
	if n == nil {
		return nil
	}
	if i, ok := n.index[string(name)]; ok {
		return n.props[i].node
	}
	if len(n.props) >= maxProps || len(name) > maxNameLen || s.nodes >= maxNodes {
		return nil
	}
	if n.index == nil {
		n.index = make(map[string]int)
	}
	s.nodes++
	s.widenings++
	c := new(node)
	n.index[string(name)] = len(n.props)
	n.props = append(n.props, prop{string(name), c})
	return c
}

// AppendJSON appends the JSON Schema of the objects s has seen, titled
// title (the MCAP schema's name, by convention): an object whose
// "properties" describe the members Foxglove can type (see the package
// documentation), in the order first seen. A new Schema writes one that
// describes no member: any object is valid against it.
func (s *Schema) AppendJSON(dst []byte, title string) []byte {
	dst = append(dst, `{"title":`...)
	dst = appendString(dst, []byte(strings.ToValidUTF8(title, "\uFFFD")))
	dst = append(dst, `,"type":"object","properties":`...)
	dst = s.root.appendProps(dst)
	return append(dst, '}')
}

// foxType returns the one JSON Schema type that describes every value seen
// at n and that Foxglove reads, or "" when there is none: no value seen,
// values of several types, null (which Foxglove cannot type), or arrays of
// arrays or of undescribed elements (which it cannot either).
func (n *node) foxType() string {
	switch n.kinds {
	case kBool:
		return "boolean"
	case kInt:
		return "integer"
	case kFloat, kInt | kFloat:
		return "number"
	case kText, kBytes, kText | kBytes:
		return "string"
	case kObject:
		return "object"
	case kArray:
		if n.items != nil {
			if t := n.items.foxType(); t != "" && t != "array" {
				return "array"
			}
		}
	}
	return ""
}

// appendSchema appends the schema of n, which foxType describes. inArray
// says n is an array's elements, where Foxglove refuses contentEncoding.
func (n *node) appendSchema(dst []byte, inArray bool) []byte {
	t := n.foxType()
	dst = append(dst, `{"type":"`...)
	dst = append(dst, t...)
	dst = append(dst, '"')
	switch t {
	case "string":
		if n.kinds == kBytes && !inArray {
			dst = append(dst, `,"contentEncoding":"base64"`...)
		}
	case "object":
		dst = append(dst, `,"properties":`...)
		dst = n.appendProps(dst)
	case "array":
		dst = append(dst, `,"items":`...)
		dst = n.items.appendSchema(dst, true)
	}
	return append(dst, '}')
}

// appendProps appends the "properties" of object n: its described members.
func (n *node) appendProps(dst []byte) []byte {
	dst = append(dst, '{')
	first := true
	for _, p := range n.props {
		if p.node.foxType() == "" {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, '"')
		dst = append(dst, p.name...)
		dst = append(dst, `":`...)
		dst = p.node.appendSchema(dst, false)
	}
	return append(dst, '}')
}
