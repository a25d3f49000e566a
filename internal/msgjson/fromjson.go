package msgjson

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// FromJSON appends to dst the msgpack encoding of the single JSON value in
// data, packed as Python 2's msgpack packed the equivalent Python value
// (see the package documentation), and returns the extended buffer.
//
// Whitespace may surround the value; anything else is an error. Errors give
// the line and column (in bytes, from 1) where the problem was found and
// wrap a *json.SyntaxError, io.ErrUnexpectedEOF, ErrRange or ErrTooDeep
// where one applies. On error dst is returned unchanged.
//
// It holds no more than data and the result, plus four bytes for each
// array and object: a 50 MB line costs about 100 MB, not the five times
// that encoding/json's Decoder, which copies its input and every string,
// took.
func FromJSON(dst, data []byte) ([]byte, error) {
	// Lengths are packed in at most 32 bits. Bounding the whole input
	// bounds every string and container in it, which spares checks below.
	if uint64(len(data)) > math.MaxUint32 {
		return dst, errors.New("JSON input larger than 4 GiB")
	}
	if !json.Valid(data) {
		// The Decoder finds the first error and where it is.
		if _, err := tokenize(data); err != nil {
			return dst, err
		}
		return dst, errors.New("invalid JSON")
	}
	p := packer{data: data}
	if _, err := p.value(nil, false); err != nil {
		return dst, err
	}
	p.i, p.next = 0, 0
	dst = slices.Grow(dst, p.size)
	return p.value(dst, true)
}

// packer packs a JSON value that json.Valid accepts in two walks over it,
// counting and then appending: msgpack puts the length of an array or map
// before its elements, which a single pass learns only at the end. Strings
// are appended from where they lie in the input, unescaped on the way
// when they need it.
type packer struct {
	data  []byte
	i     int      // the next byte to read
	sizes []uint32 // element counts of the arrays and objects, in the order they open
	next  int      // the next of sizes to pack, on the second walk
	size  int      // the packed length, as the first walk reckons it
}

// value reads the value at p.i and, with pack, appends its encoding to
// dst; without, it counts. Errors: ErrRange, with the number's position.
func (p *packer) value(dst []byte, pack bool) ([]byte, error) {
	d := p.data
	p.skipSpace()
	switch start := p.i; d[start] {
	case '{', '[':
		close, kind := byte('}'), kindObject
		if d[start] == '[' {
			close, kind = ']', kindArray
		}
		at := len(p.sizes)
		if pack {
			at = p.next
			p.next++
			dst = token{kind: kind, v: uint64(p.sizes[at])}.appendTo(dst)
		} else {
			p.sizes = append(p.sizes, 0)
			p.size += 5
		}
		p.i++
		for {
			p.skipSpace()
			if d[p.i] == close {
				p.i++
				return dst, nil
			}
			if d[p.i] == ',' {
				p.i++
			}
			var err error
			if dst, err = p.value(dst, pack); err != nil {
				return dst, err
			}
			if kind == kindObject {
				p.skipSpace()
				p.i++ // ':'
				if dst, err = p.value(dst, pack); err != nil {
					return dst, err
				}
			}
			if !pack {
				p.sizes[at]++
			}
		}
	case '"':
		return p.str(dst, pack), nil
	case 't':
		p.i += 4
		return append(dst, 0xc3), nil
	case 'f':
		p.i += 5
		return append(dst, 0xc2), nil
	case 'n':
		p.i += 4
		return append(dst, 0xc0), nil
	}
	start := p.i
	for p.i < len(d) && strings.IndexByte("+-.0123456789eE", d[p.i]) >= 0 {
		p.i++
	}
	t, err := numberToken(string(d[start:p.i]))
	if err != nil {
		return dst, posError(d, int64(start), err)
	}
	p.size += 9
	return t.appendTo(dst), nil
}

// str reads the string at p.i and, with pack, appends its encoding to
// dst. A string with escapes or bytes that are not UTF-8 is unescaped by
// encoding/json, so that it comes out exactly as json.Unmarshal makes it
// (U+FFFD for invalid bytes and lone surrogates); any other is copied as
// it stands.
func (p *packer) str(dst []byte, pack bool) []byte {
	d := p.data
	start, escaped := p.i, false
	for p.i++; d[p.i] != '"'; p.i++ {
		if d[p.i] == '\\' {
			escaped = true
			p.i++
		}
	}
	p.i++
	raw := d[start+1 : p.i-1]
	if !pack {
		p.size += 5 + len(raw)
		return dst
	}
	t := token{kind: kindString}
	if escaped || !utf8.Valid(raw) {
		json.Unmarshal(d[start:p.i], &t.s) // valid: it cannot fail
		return t.appendTo(dst)
	}
	return append(t.appendHeader(dst, len(raw)), raw...)
}

func (p *packer) skipSpace() {
	for p.i < len(p.data) && strings.IndexByte(" \t\r\n", p.data[p.i]) >= 0 {
		p.i++
	}
}

type kind uint8

const (
	kindNull kind = iota
	kindBool
	kindString
	kindUint // a non-negative integer
	kindInt  // a negative integer
	kindFloat
	kindArray
	kindObject
)

// A token is one JSON value, or the start of an array or object. Arrays and
// objects are packed with their length first, which streaming only learns at
// the closing delimiter, so FromJSON collects all tokens before packing any.
type token struct {
	kind kind
	// v is the value of a bool (0 or 1), a kindUint, a kindInt (as two's
	// complement), the bits of a kindFloat, or the number of elements of
	// an array or members of an object.
	v uint64
	s string // the value of a kindString
}

// tokenize checks that data holds exactly one JSON value and returns its
// tokens in order.
func tokenize(data []byte) ([]token, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // so that integers are not rounded to float64
	var (
		toks []token
		open []int // indexes in toks of the arrays and objects not yet closed
	)
	for {
		t, err := dec.Token()
		if err != nil {
			off := dec.InputOffset()
			// Token reports a value cut short inside an array or
			// object, and an empty input, as a plain EOF.
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				err, off = io.ErrUnexpectedEOF, int64(len(data))
			}
			return nil, posError(data, off, err)
		}

		if t == json.Delim(']') || t == json.Delim('}') {
			open = open[:len(open)-1]
		} else {
			tok, err := newToken(t)
			if err != nil {
				// A number's token ends where the decoder now is.
				off := dec.InputOffset() - int64(len(t.(json.Number)))
				return nil, posError(data, off, err)
			}
			if len(open) > 0 {
				toks[open[len(open)-1]].v++
			}
			toks = append(toks, tok)
			if tok.kind == kindArray || tok.kind == kindObject {
				if len(open) == MaxDepth {
					return nil, posError(data, dec.InputOffset()-1, ErrTooDeep)
				}
				open = append(open, len(toks)-1)
			}
		}
		if len(open) == 0 {
			break
		}
	}

	// Decoder accepts a stream of values; FromJSON wants exactly one.
	off := dec.InputOffset()
	if rest := bytes.TrimLeft(data[off:], " \t\r\n"); len(rest) > 0 {
		off = int64(len(data) - len(rest))
		if strings.IndexByte(`{["-0123456789tfn`, rest[0]) >= 0 {
			return nil, posError(data, off, errors.New("more than one JSON value"))
		}
		return nil, posError(data, off, fmt.Errorf("invalid character %q after top-level value", rest[0]))
	}

	// The count of an object's tokens includes both keys and values.
	for i := range toks {
		if toks[i].kind == kindObject {
			toks[i].v /= 2
		}
	}
	return toks, nil
}

// newToken converts a json.Token other than a closing delimiter.
func newToken(t json.Token) (token, error) {
	switch t := t.(type) {
	case nil:
		return token{kind: kindNull}, nil
	case bool:
		if t {
			return token{kind: kindBool, v: 1}, nil
		}
		return token{kind: kindBool}, nil
	case string:
		return token{kind: kindString, s: t}, nil
	case json.Delim:
		if t == '[' {
			return token{kind: kindArray}, nil
		}
		return token{kind: kindObject}, nil
	case json.Number:
		return numberToken(string(t))
	}
	panic(fmt.Sprintf("msgjson: unexpected JSON token %T", t))
}

// numberToken converts a number as Python's json module would: to an int if
// it has neither fraction nor exponent, to a float otherwise.
func numberToken(s string) (token, error) {
	if strings.ContainsAny(s, ".eE") {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return token{}, fmt.Errorf("%w: %s", ErrRange, s)
		}
		return token{kind: kindFloat, v: math.Float64bits(f)}, nil
	}
	// Python's ints are unbounded, but msgpack's are not; "-0" is 0.
	if strings.HasPrefix(s, "-") {
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return token{}, fmt.Errorf("%w: %s", ErrRange, s)
		}
		if i < 0 {
			return token{kind: kindInt, v: uint64(i)}, nil
		}
		return token{kind: kindUint}, nil
	}
	u, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return token{}, fmt.Errorf("%w: %s", ErrRange, s)
	}
	return token{kind: kindUint, v: u}, nil
}

// appendTo appends the msgpack encoding of t, choosing formats as
// msgpack-python's packer does.
func (t token) appendTo(dst []byte) []byte {
	switch t.kind {
	case kindNull:
		return append(dst, 0xc0)
	case kindBool:
		if t.v == 1 {
			return append(dst, 0xc3)
		}
		return append(dst, 0xc2)
	case kindString:
		return append(t.appendHeader(dst, len(t.s)), t.s...)
	case kindUint:
		u := t.v
		switch {
		case u < 128:
			return append(dst, byte(u))
		case u <= math.MaxUint8:
			return append(dst, 0xcc, byte(u))
		case u <= math.MaxUint16:
			return binary.BigEndian.AppendUint16(append(dst, 0xcd), uint16(u))
		case u <= math.MaxUint32:
			return binary.BigEndian.AppendUint32(append(dst, 0xce), uint32(u))
		default:
			return binary.BigEndian.AppendUint64(append(dst, 0xcf), u)
		}
	case kindInt:
		i := int64(t.v)
		switch {
		case i >= -32:
			return append(dst, byte(i))
		case i >= math.MinInt8:
			return append(dst, 0xd0, byte(i))
		case i >= math.MinInt16:
			return binary.BigEndian.AppendUint16(append(dst, 0xd1), uint16(i))
		case i >= math.MinInt32:
			return binary.BigEndian.AppendUint32(append(dst, 0xd2), uint32(i))
		default:
			return binary.BigEndian.AppendUint64(append(dst, 0xd3), uint64(i))
		}
	case kindFloat:
		return binary.BigEndian.AppendUint64(append(dst, 0xcb), t.v)
	case kindArray:
		return appendHeader(dst, 0x90, 0xdc, t.v)
	case kindObject:
		return appendHeader(dst, 0x80, 0xde, t.v)
	}
	panic("msgjson: unknown token kind")
}

// appendHeader appends the header of a string of n bytes, t being one.
func (t token) appendHeader(dst []byte, n int) []byte {
	// Old spec: no str8 between fixstr and str16.
	switch {
	case n < 32:
		return append(dst, 0xa0|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, 0xda), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(dst, 0xdb), uint32(n))
}

// appendHeader appends an array or map header for n elements: fix is the
// fixarray or fixmap prefix, and the 32-bit format follows the 16-bit one.
func appendHeader(dst []byte, fix, prefix16 byte, n uint64) []byte {
	switch {
	case n < 16:
		return append(dst, fix|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, prefix16), uint16(n))
	default:
		return binary.BigEndian.AppendUint32(append(dst, prefix16+1), uint32(n))
	}
}

// posError prefixes err with the line and column of offset off in data.
func posError(data []byte, off int64, err error) error {
	off = min(max(off, 0), int64(len(data)))
	before := data[:off]
	line := 1 + bytes.Count(before, []byte{'\n'})
	col := len(before) - bytes.LastIndexByte(before, '\n')
	return fmt.Errorf("line %d, column %d: %w", line, col, err)
}
