package msgjson

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// ToJSON appends to dst the JSON rendering (see the package documentation)
// of the single msgpack value at the start of msg, and returns the extended
// buffer and the rest of msg after that value.
//
// ToJSON accepts any input without panicking, and on success allocates
// nothing beyond growing dst: strings are validated in place, and lengths
// read from msg are checked against the bytes actually present before use,
// never used to size anything. Output grows at most linearly with the
// input (about 16 bytes per input byte in the worst case). Errors give the
// offset in msg of the value at fault and wrap ErrTruncated, ErrInvalid or
// ErrTooDeep. On error out is dst unchanged and rest is msg.
func ToJSON(dst, msg []byte) (out, rest []byte, err error) {
	out, rest, err = appendValue(dst, msg, 0, false)
	if err != nil {
		return dst, msg, fmt.Errorf("payload byte %d: %w", len(msg)-len(rest), err)
	}
	return out, rest, nil
}

// appendValue appends the rendering of the value at the start of b, which is
// nested in depth arrays and maps, and is part of a map key if inKey. On
// error rest is b from the value at fault, so that ToJSON can tell where it
// is.
func appendValue(dst, b []byte, depth int, inKey bool) (out, rest []byte, err error) {
	if len(b) == 0 {
		return dst, b, ErrTruncated
	}
	c := b[0]
	switch {
	case c <= 0x7f: // positive fixint
		return strconv.AppendUint(dst, uint64(c), 10), b[1:], nil
	case c >= 0xe0: // negative fixint
		return strconv.AppendInt(dst, int64(int8(c)), 10), b[1:], nil
	case c <= 0x8f: // fixmap
		return appendMap(dst, b, 1, uint64(c&0x0f), depth, inKey)
	case c <= 0x9f: // fixarray
		return appendArray(dst, b, 1, uint64(c&0x0f), depth, inKey)
	case c <= 0xbf: // fixstr
		p, rest, ok := payload(b, 1, uint64(c&0x1f))
		if !ok {
			return dst, b, ErrTruncated
		}
		return appendStr(dst, p), rest, nil
	}

	switch c {
	case 0xc0:
		return append(dst, "null"...), b[1:], nil
	case 0xc2:
		return append(dst, "false"...), b[1:], nil
	case 0xc3:
		return append(dst, "true"...), b[1:], nil
	case 0xc4, 0xc5, 0xc6: // bin 8, 16, 32
		p, rest, ok := sized(b, 1<<(c-0xc4))
		if !ok {
			return dst, b, ErrTruncated
		}
		return appendBytes(dst, p), rest, nil
	case 0xc7, 0xc8, 0xc9: // ext 8, 16, 32: length, then type
		w := 1 << (c - 0xc7)
		if len(b) < 2+w {
			return dst, b, ErrTruncated
		}
		n := uint64(be(b[1 : 1+w]))
		p, rest, ok := payload(b, 2+w, n)
		if !ok {
			return dst, b, ErrTruncated
		}
		return appendExt(dst, int8(b[1+w]), p), rest, nil
	case 0xca:
		if len(b) < 5 {
			return dst, b, ErrTruncated
		}
		f := math.Float32frombits(binary.BigEndian.Uint32(b[1:]))
		return appendFloat(dst, float64(f), 32), b[5:], nil
	case 0xcb:
		if len(b) < 9 {
			return dst, b, ErrTruncated
		}
		f := math.Float64frombits(binary.BigEndian.Uint64(b[1:]))
		return appendFloat(dst, f, 64), b[9:], nil
	case 0xcc, 0xcd, 0xce, 0xcf: // uint 8 to 64
		w := 1 << (c - 0xcc)
		if len(b) < 1+w {
			return dst, b, ErrTruncated
		}
		return strconv.AppendUint(dst, be(b[1:1+w]), 10), b[1+w:], nil
	case 0xd0, 0xd1, 0xd2, 0xd3: // int 8 to 64
		w := 1 << (c - 0xd0)
		if len(b) < 1+w {
			return dst, b, ErrTruncated
		}
		// Shift the sign bit to the top and back to sign-extend.
		shift := 64 - 8*w
		i := int64(be(b[1:1+w])<<shift) >> shift
		return strconv.AppendInt(dst, i, 10), b[1+w:], nil
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1 to 16: type, then data
		p, rest, ok := payload(b, 2, 1<<(c-0xd4))
		if !ok {
			return dst, b, ErrTruncated
		}
		return appendExt(dst, int8(b[1]), p), rest, nil
	case 0xd9, 0xda, 0xdb: // str 8, 16, 32
		p, rest, ok := sized(b, 1<<(c-0xd9))
		if !ok {
			return dst, b, ErrTruncated
		}
		return appendStr(dst, p), rest, nil
	case 0xdc, 0xdd: // array 16, 32
		w := 2 << (c - 0xdc)
		if len(b) < 1+w {
			return dst, b, ErrTruncated
		}
		return appendArray(dst, b, 1+w, be(b[1:1+w]), depth, inKey)
	case 0xde, 0xdf: // map 16, 32
		w := 2 << (c - 0xde)
		if len(b) < 1+w {
			return dst, b, ErrTruncated
		}
		return appendMap(dst, b, 1+w, be(b[1:1+w]), depth, inKey)
	}
	return dst, b, ErrInvalid // 0xc1, the one byte left
}

// appendArray appends the array of n elements whose header of hdr bytes
// starts b.
func appendArray(dst, b []byte, hdr int, n uint64, depth int, inKey bool) (out, rest []byte, err error) {
	if depth >= MaxDepth {
		return dst, b, ErrTooDeep
	}
	// n comes from the input and may be huge, but every element takes at
	// least one byte, so the loop fails once the input runs out.
	dst = append(dst, '[')
	rest = b[hdr:]
	for i := uint64(0); i < n; i++ {
		if i > 0 {
			dst = append(dst, ',')
		}
		if dst, rest, err = appendValue(dst, rest, depth+1, inKey); err != nil {
			return dst, rest, err
		}
	}
	return append(dst, ']'), rest, nil
}

// appendMap appends the map of n members whose header of hdr bytes starts b.
func appendMap(dst, b []byte, hdr int, n uint64, depth int, inKey bool) (out, rest []byte, err error) {
	if depth >= MaxDepth {
		return dst, b, ErrTooDeep
	}
	dst = append(dst, '{')
	rest = b[hdr:]
	for i := uint64(0); i < n; i++ {
		if i > 0 {
			dst = append(dst, ',')
		}
		if dst, rest, err = appendKey(dst, rest, depth+1, inKey); err != nil {
			return dst, rest, err
		}
		dst = append(dst, ':')
		if dst, rest, err = appendValue(dst, rest, depth+1, inKey); err != nil {
			return dst, rest, err
		}
	}
	return append(dst, '}'), rest, nil
}

// appendKey appends the value at the start of b as an object member name,
// or as the bare rendering of one if the map is itself part of a key.
func appendKey(dst, b []byte, depth int, inKey bool) (out, rest []byte, err error) {
	if p, rest, ok := rawBytes(b); ok {
		if isBin := b[0] >= 0xc4 && b[0] <= 0xc6; !isBin && utf8.Valid(p) {
			return appendString(dst, p), rest, nil
		}
		// Not {"$bytes":...}, which would need quoting as a name.
		dst = append(dst, `"$bytes:`...)
		return append(base64.StdEncoding.AppendEncode(dst, p), '"'), rest, nil
	}

	start := len(dst)
	if dst, rest, err = appendValue(dst, b, depth, true); err != nil {
		return dst, rest, err
	}
	// Only the outermost key is quoted: quoting keys within keys again
	// would double their backslashes at every level, and a few bytes of
	// hostile input could then render as gigabytes.
	if inKey || dst[start] == '"' { // already a string, like NaN's "NaN"
		return dst, rest, nil
	}
	// Quote the rendering just written: append the quoted copy after it,
	// reading the original where it is (or in the old array if dst grows),
	// then move the copy down over the original.
	end := len(dst)
	dst = appendString(dst, dst[start:end])
	n := copy(dst[start:], dst[end:])
	return dst[:start+n], rest, nil
}

// rawBytes returns the data of the str or bin at the start of b, and the
// bytes after it; ok is false if b does not start with a whole str or bin.
func rawBytes(b []byte) (p, rest []byte, ok bool) {
	if len(b) == 0 {
		return nil, b, false
	}
	switch c := b[0]; {
	case c&0xe0 == 0xa0: // fixstr
		return payload(b, 1, uint64(c&0x1f))
	case c >= 0xd9 && c <= 0xdb: // str 8, 16, 32
		return sized(b, 1<<(c-0xd9))
	case c >= 0xc4 && c <= 0xc6: // bin 8, 16, 32
		return sized(b, 1<<(c-0xc4))
	}
	return nil, b, false
}

// appendStr appends a str whose data is p.
func appendStr(dst, p []byte) []byte {
	// Python 2 peers put arbitrary bytes in str.
	if !utf8.Valid(p) {
		return appendBytes(dst, p)
	}
	return appendString(dst, p)
}

// appendBytes appends binary data as {"$bytes":"<base64>"}.
func appendBytes(dst, p []byte) []byte {
	dst = append(dst, `{"$bytes":"`...)
	return append(base64.StdEncoding.AppendEncode(dst, p), `"}`...)
}

// appendExt appends an ext as {"$ext":<type>,"$bytes":"<base64>"}.
func appendExt(dst []byte, typ int8, p []byte) []byte {
	dst = append(dst, `{"$ext":`...)
	dst = strconv.AppendInt(dst, int64(typ), 10)
	dst = append(dst, `,"$bytes":"`...)
	return append(base64.StdEncoding.AppendEncode(dst, p), `"}`...)
}

// appendString appends the valid UTF-8 s as a JSON string, escaping only
// what JSON requires.
func appendString(dst, s []byte) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0 // of the bytes not yet appended
	for i, c := range s {
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		start = i + 1
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, `\n`...)
		case '\r':
			dst = append(dst, `\r`...)
		case '\t':
			dst = append(dst, `\t`...)
		default:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendFloat appends f, of the given bit size, as Python's repr writes a
// float: the shortest digits that read back as f, in positional notation
// with at least one fractional digit if 1e-4 <= |f| < 1e16, and in
// scientific notation otherwise.
func appendFloat(dst []byte, f float64, bitSize int) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(dst, `"Infinity"`...)
	case math.IsInf(f, -1):
		return append(dst, `"-Infinity"`...)
	}
	abs := math.Abs(f)
	small, large := abs < 1e-4, abs >= 1e16
	if bitSize == 32 {
		// Compare with the float32 nearest the bounds, as that is
		// what the shortest float32 digits round to.
		small, large = float32(abs) < 1e-4, float32(abs) >= 1e16
	}
	if f != 0 && (small || large) {
		return strconv.AppendFloat(dst, f, 'e', -1, bitSize)
	}
	start := len(dst)
	dst = strconv.AppendFloat(dst, f, 'f', -1, bitSize)
	for _, c := range dst[start:] {
		if c == '.' {
			return dst
		}
	}
	return append(dst, ".0"...)
}

// sized returns the data of the str or bin at the start of b whose length
// takes the w bytes after the leading byte, as payload does.
func sized(b []byte, w int) (p, rest []byte, ok bool) {
	if len(b) < 1+w {
		return nil, b, false
	}
	return payload(b, 1+w, be(b[1:1+w]))
}

// payload returns the n bytes after a header of hdr bytes at the start of b,
// and the bytes after them, or ok false if b is too short. It compares in
// uint64 so that no length from the input overflows an int.
func payload(b []byte, hdr int, n uint64) (p, rest []byte, ok bool) {
	if len(b) < hdr || uint64(len(b)-hdr) < n {
		return nil, b, false
	}
	end := hdr + int(n) // fits: n <= len(b)-hdr
	return b[hdr:end], b[end:], true
}

// be decodes the big-endian unsigned integer p of at most 8 bytes.
func be(p []byte) uint64 {
	var v uint64
	for _, c := range p {
		v = v<<8 | uint64(c)
	}
	return v
}
