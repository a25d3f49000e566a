package msgjson

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// ErrTrailing reports bytes after the one msgpack value of a payload.
var ErrTrailing = errors.New("bytes after the msgpack value")

// WrapKey is the member under which ToFoxgloveJSON puts a payload that is
// not a map: Foxglove reads only JSON objects. ROS's std_msgs name their
// one field so.
const WrapKey = "data"

// ToFoxgloveJSON appends to dst the payload msg, which must be exactly one
// msgpack value, as the JSON object Foxglove reads (see "JSON for Foxglove"
// in the package documentation), and widens s, unless it is nil, so that
// it describes that JSON. The rendering does not depend on s.
//
// Like ToJSON, it accepts any input without panicking, and output grows at
// most linearly with the input. Errors give the offset in msg of the value
// at fault and wrap ErrTruncated, ErrInvalid, ErrTooDeep or ErrTrailing;
// on error out is dst. The part of msg before the fault may have widened
// s, as a payload does: every payload rendered stays valid against the
// schema s writes, and the change counts in s.Widenings.
func ToFoxgloveJSON(dst, msg []byte, s *Schema) (out []byte, err error) {
	var root *node
	if s != nil {
		root = &s.root
	}
	var rest []byte
	if len(msg) > 0 && (msg[0]&0xf0 == 0x80 || msg[0] == 0xde || msg[0] == 0xdf) {
		out, rest, err = s.fox(dst, msg, root, 0)
	} else {
		s.mark(root, kObject)
		out = append(dst, `{"`+WrapKey+`":`...)
		out, rest, err = s.fox(out, msg, s.prop(root, []byte(WrapKey)), 1)
		out = append(out, '}')
	}
	if err == nil && len(rest) > 0 {
		err = ErrTrailing
	}
	if err != nil {
		return dst, fmt.Errorf("payload byte %d: %w", len(msg)-len(rest), err)
	}
	return out, nil
}

// fox appends the rendering of the value at the start of b, nested in depth
// arrays and maps, and widens n (nil: not followed) to describe it. On
// error rest is b from the value at fault, as in appendValue.
func (s *Schema) fox(dst, b []byte, n *node, depth int) (out, rest []byte, err error) {
	if len(b) == 0 {
		return dst, b, ErrTruncated
	}
	c := b[0]
	switch {
	case c <= 0x7f || c >= 0xe0 || (c >= 0xcc && c <= 0xd3): // integers
		s.mark(n, kInt)
		return appendValue(dst, b, depth, false)
	case c <= 0x8f: // fixmap
		return s.foxMap(dst, b, 1, uint64(c&0x0f), n, depth)
	case c <= 0x9f: // fixarray
		return s.foxArray(dst, b, 1, uint64(c&0x0f), n, depth)
	}
	switch c {
	case 0xc0:
		s.mark(n, kNull)
		return append(dst, "null"...), b[1:], nil
	case 0xc2, 0xc3:
		s.mark(n, kBool)
		return appendValue(dst, b, depth, false)
	case 0xca, 0xcb:
		start := len(dst)
		if out, rest, err = appendValue(dst, b, depth, false); err != nil {
			return out, rest, err
		}
		if out[start] == '"' { // NaN or an infinity, as a string
			s.mark(n, kText)
		} else {
			s.mark(n, kFloat)
		}
		return out, rest, nil
	case 0xc7, 0xc8, 0xc9, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8:
		typ, p, rest, ok := ext(b)
		if !ok {
			return dst, b, ErrTruncated
		}
		return s.foxExt(dst, typ, p, n, depth), rest, nil
	case 0xdc, 0xdd: // array 16, 32
		w := 2 << (c - 0xdc)
		if len(b) < 1+w {
			return dst, b, ErrTruncated
		}
		return s.foxArray(dst, b, 1+w, be(b[1:1+w]), n, depth)
	case 0xde, 0xdf: // map 16, 32
		w := 2 << (c - 0xde)
		if len(b) < 1+w {
			return dst, b, ErrTruncated
		}
		return s.foxMap(dst, b, 1+w, be(b[1:1+w]), n, depth)
	case 0xc1:
		return dst, b, ErrInvalid
	}
	// What is left is str and bin.
	p, rest, ok := rawBytes(b)
	if !ok {
		return dst, b, ErrTruncated
	}
	if isBin := c >= 0xc4 && c <= 0xc6; !isBin && utf8.Valid(p) {
		s.mark(n, kText)
		return appendString(dst, p), rest, nil
	}
	s.mark(n, kBytes)
	dst = append(dst, '"')
	return append(base64.StdEncoding.AppendEncode(dst, p), '"'), rest, nil
}

// foxArray appends the array of count elements whose header of hdr bytes
// starts b.
func (s *Schema) foxArray(dst, b []byte, hdr int, count uint64, n *node, depth int) (out, rest []byte, err error) {
	if depth >= MaxDepth {
		return dst, b, ErrTooDeep
	}
	s.mark(n, kArray)
	n = s.container(n, depth)
	dst = append(dst, '[')
	rest = b[hdr:]
	// count comes from the input and may be huge, but every element takes
	// at least one byte, so the loop fails once the input runs out.
	for i := uint64(0); i < count; i++ {
		if i > 0 {
			dst = append(dst, ',')
		}
		if dst, rest, err = s.fox(dst, rest, s.items(n), depth+1); err != nil {
			return dst, rest, err
		}
	}
	return append(dst, ']'), rest, nil
}

// foxMap appends the map of count members whose header of hdr bytes starts
// b. Keys are rendered as ToJSON renders them.
func (s *Schema) foxMap(dst, b []byte, hdr int, count uint64, n *node, depth int) (out, rest []byte, err error) {
	if depth >= MaxDepth {
		return dst, b, ErrTooDeep
	}
	s.mark(n, kObject)
	n = s.container(n, depth)
	dst = append(dst, '{')
	rest = b[hdr:]
	for i := uint64(0); i < count; i++ {
		if i > 0 {
			dst = append(dst, ',')
		}
		start := len(dst)
		if dst, rest, err = appendKey(dst, rest, depth+1, false); err != nil {
			return dst, rest, err
		}
		// The member's name as it is written, escaped, without quotes.
		child := s.prop(n, dst[start+1:len(dst)-1])
		dst = append(dst, ':')
		if dst, rest, err = s.fox(dst, rest, child, depth+1); err != nil {
			return dst, rest, err
		}
	}
	return append(dst, '}'), rest, nil
}

// foxExt appends an ext: a valid timestamp (type -1) as {"sec":S,"nsec":N},
// Foxglove's time, and any other as {"$ext":<type>,"$bytes":"<base64>"}.
func (s *Schema) foxExt(dst []byte, typ int8, p []byte, n *node, depth int) []byte {
	s.mark(n, kObject)
	n = s.container(n, depth)
	if sec, nsec, ok := timestamp(typ, p); ok {
		s.mark(s.prop(n, []byte("sec")), kInt)
		s.mark(s.prop(n, []byte("nsec")), kInt)
		dst = append(dst, `{"sec":`...)
		dst = strconv.AppendInt(dst, sec, 10)
		dst = append(dst, `,"nsec":`...)
		dst = strconv.AppendUint(dst, uint64(nsec), 10)
		return append(dst, '}')
	}
	s.mark(s.prop(n, []byte("$ext")), kInt)
	s.mark(s.prop(n, []byte("$bytes")), kBytes)
	return appendExt(dst, typ, p)
}

// ext returns the type and data of the ext at the start of b, and the bytes
// after it; ok is false if b does not hold all of it.
func ext(b []byte) (typ int8, p, rest []byte, ok bool) {
	c := b[0]
	if c >= 0xd4 && c <= 0xd8 { // fixext 1 to 16: type, then data
		if len(b) < 2 {
			return 0, nil, b, false
		}
		p, rest, ok = payload(b, 2, 1<<(c-0xd4))
		return int8(b[1]), p, rest, ok
	}
	w := 1 << (c - 0xc7) // ext 8, 16, 32: length, then type
	if len(b) < 2+w {
		return 0, nil, b, false
	}
	p, rest, ok = payload(b, 2+w, be(b[1:1+w]))
	return int8(b[1+w]), p, rest, ok
}

// timestamp decodes the msgpack timestamp ext (type -1) in its three
// formats; ok is false for other exts and for nanoseconds out of range.
func timestamp(typ int8, p []byte) (sec int64, nsec uint32, ok bool) {
	if typ != -1 {
		return 0, 0, false
	}
	switch len(p) {
	case 4:
		return int64(binary.BigEndian.Uint32(p)), 0, true
	case 8:
		v := binary.BigEndian.Uint64(p)
		sec, nsec = int64(v&(1<<34-1)), uint32(v>>34)
	case 12:
		sec, nsec = int64(binary.BigEndian.Uint64(p[4:])), binary.BigEndian.Uint32(p)
	default:
		return 0, 0, false
	}
	return sec, nsec, nsec < 1e9
}
