package wire

import (
	"encoding/binary"
	"errors"
	"math"

	"github.com/tinylib/msgp/msgp"
)

// Frame is one decoded datagram: a whole message or one fragment. Its
// slices point into the datagram it was decoded from.
type Frame struct {
	// Topic is the topic's bytes (str or bin content; empty for nil).
	Topic []byte
	// Payload is, for a whole message, the raw msgpack encoding of the
	// payload, checked to be exactly one well-formed msgpack value. For a
	// fragment it is the piece's content bytes.
	Payload []byte
	// Index is the fragment number n, 1-based; 0 for a whole message.
	Index int
	// Count is the fragment count N; 0 for a whole message.
	Count int
}

// IsFragment reports whether f is one fragment of a larger message rather
// than a whole message.
func (f Frame) IsFragment() bool { return f.Count != 0 }

// Topic returns the topic of a datagram without looking past it, so a
// subscriber can filter before decoding the payload. It does not
// allocate; the result points into datagram. A nil topic returns an empty
// (nil) slice. Errors: ErrTruncated, ErrNotArray, ErrArrayLen, ErrTopicType.
// Topic succeeding does not mean Decode will.
func Topic(datagram []byte) ([]byte, error) {
	_, rest, err := readArrayHeader(datagram)
	if err != nil {
		return nil, err
	}
	topic, _, err := readTopic(rest)
	return topic, err
}

// Decode parses one datagram into a Frame. It does not allocate; the
// Frame points into datagram. Errors, all matching ErrMalformed:
// ErrTruncated, ErrNotArray, ErrArrayLen, ErrTopicType, ErrPayload
// (whole message whose payload is not a msgpack value), ErrIndexType,
// ErrCountType, ErrFragmentCount (N < 1), ErrFragmentIndex (n outside
// 1..N), ErrPieceType, ErrTrailing.
func Decode(datagram []byte) (Frame, error) {
	size, rest, err := readArrayHeader(datagram)
	if err != nil {
		return Frame{}, err
	}
	topic, rest, err := readTopic(rest)
	if err != nil {
		return Frame{}, err
	}
	if size == 2 {
		end, err := msgp.Skip(rest)
		if errors.Is(err, msgp.ErrShortBytes) {
			return Frame{}, ErrTruncated
		}
		if err != nil {
			return Frame{}, ErrPayload
		}
		if len(end) != 0 {
			return Frame{}, ErrTrailing
		}
		return Frame{Topic: topic, Payload: rest}, nil
	}

	index, rest, err := readInt(rest, ErrIndexType, ErrFragmentIndex)
	if err != nil {
		return Frame{}, err
	}
	count, rest, err := readInt(rest, ErrCountType, ErrFragmentCount)
	if err != nil {
		return Frame{}, err
	}
	if count < 1 {
		return Frame{}, ErrFragmentCount
	}
	if index < 1 || index > count {
		return Frame{}, ErrFragmentIndex
	}
	piece, rest, err := readRaw(rest, ErrPieceType)
	if err != nil {
		return Frame{}, err
	}
	if len(rest) != 0 {
		return Frame{}, ErrTrailing
	}
	return Frame{Topic: topic, Payload: piece, Index: index, Count: count}, nil
}

// FragmentHeader is what precedes a fragment's piece in its datagram.
type FragmentHeader struct {
	Topic    []byte // the topic's bytes, pointing into the datagram
	Index    int    // n, 1-based
	Count    int    // N
	PieceLen int    // the length of the piece that follows
	Len      int    // the header's length: the piece starts this far in
}

// DecodeFragmentHeader parses the header of a fragment datagram from a
// prefix of it that reaches at least to the start of the piece; the piece
// itself need not be there. It lets a receiver that read a fragment's
// header and its piece into different buffers check what it got. Errors
// are those of Decode, and ErrNotFragment for a whole message.
func DecodeFragmentHeader(b []byte) (FragmentHeader, error) {
	size, rest, err := readArrayHeader(b)
	if err != nil {
		return FragmentHeader{}, err
	}
	if size != 4 {
		return FragmentHeader{}, ErrNotFragment
	}
	var h FragmentHeader
	if h.Topic, rest, err = readTopic(rest); err != nil {
		return FragmentHeader{}, err
	}
	if h.Index, rest, err = readInt(rest, ErrIndexType, ErrFragmentIndex); err != nil {
		return FragmentHeader{}, err
	}
	if h.Count, rest, err = readInt(rest, ErrCountType, ErrFragmentCount); err != nil {
		return FragmentHeader{}, err
	}
	if h.Count < 1 {
		return FragmentHeader{}, ErrFragmentCount
	}
	if h.Index < 1 || h.Index > h.Count {
		return FragmentHeader{}, ErrFragmentIndex
	}
	hdr, n, err := readRawHeader(rest, ErrPieceType)
	if err != nil {
		return FragmentHeader{}, err
	}
	if n > MaxDatagram {
		return FragmentHeader{}, ErrTruncated // no datagram holds it
	}
	h.PieceLen = int(n)
	h.Len = len(b) - len(rest) + hdr
	return h, nil
}

// readArrayHeader reads the frame's array header, which must announce 2
// or 4 elements. Checking the count here, before any element, means a
// header claiming 2^32-1 elements costs nothing.
func readArrayHeader(b []byte) (int, []byte, error) {
	if len(b) == 0 {
		return 0, nil, ErrTruncated
	}
	if msgp.NextType(b) != msgp.ArrayType {
		return 0, nil, ErrNotArray
	}
	size, rest, err := msgp.ReadArrayHeaderBytes(b)
	if err != nil {
		return 0, nil, ErrTruncated // the type is known, so only shortness is left
	}
	if size != 2 && size != 4 {
		return 0, nil, ErrArrayLen
	}
	return int(size), rest, nil
}

// readTopic reads a str, bin or nil topic. nil, Python's default topic
// None, reads as an empty topic.
func readTopic(b []byte) (topic, rest []byte, err error) {
	if len(b) > 0 && b[0] == 0xc0 {
		return nil, b[1:], nil
	}
	return readRaw(b, ErrTopicType)
}

// readRaw reads a str or bin value of any header size (old-spec peers send
// str, Python 3 peers bin, new-spec encoders str8) and returns its content
// without checking UTF-8: Python 2 strings are bytes. It is written by
// hand rather than with msgp.ReadStringZC/ReadBytesZC so that one function
// takes both types, a 32-bit length can never turn negative in an int,
// and no error value is allocated. typeErr is returned for other types.
func readRaw(b []byte, typeErr error) (v, rest []byte, err error) {
	hdr, n, err := readRawHeader(b, typeErr)
	if err != nil {
		return nil, nil, err
	}
	if uint64(len(b)-hdr) < n {
		return nil, nil, ErrTruncated
	}
	end := hdr + int(n)
	return b[hdr:end:end], b[end:], nil
}

// readRawHeader reads the header of a str or bin value: its length and
// the length of its content.
func readRawHeader(b []byte, typeErr error) (hdr int, n uint64, err error) {
	if len(b) == 0 {
		return 0, 0, ErrTruncated
	}
	switch c := b[0]; {
	case c&0xe0 == 0xa0: // fixstr
		hdr, n = 1, uint64(c&0x1f)
	case c == 0xd9 || c == 0xc4: // str8, bin8
		hdr = 2
	case c == 0xda || c == 0xc5: // str16, bin16
		hdr = 3
	case c == 0xdb || c == 0xc6: // str32, bin32
		hdr = 5
	default:
		return 0, 0, typeErr
	}
	if len(b) < hdr {
		return 0, 0, ErrTruncated
	}
	switch hdr {
	case 2:
		n = uint64(b[1])
	case 3:
		n = uint64(binary.BigEndian.Uint16(b[1:]))
	case 5:
		n = uint64(binary.BigEndian.Uint32(b[1:]))
	}
	return hdr, n, nil
}

// readInt reads any msgpack integer into an int. typeErr is returned for
// a non-integer, rangeErr for a value beyond int, which can only be out
// of range for n and N anyway. The type is checked before msgp reads the
// value so msgp never builds (allocates) a type error.
func readInt(b []byte, typeErr, rangeErr error) (int, []byte, error) {
	switch msgp.NextType(b) {
	case msgp.IntType: // fixint, negative fixint, int8..int64
		v, rest, err := msgp.ReadInt64Bytes(b)
		if err != nil {
			return 0, nil, ErrTruncated
		}
		if v < math.MinInt || v > math.MaxInt {
			return 0, nil, rangeErr
		}
		return int(v), rest, nil
	case msgp.UintType: // uint8..uint64
		v, rest, err := msgp.ReadUint64Bytes(b)
		if err != nil {
			return 0, nil, ErrTruncated
		}
		if v > math.MaxInt {
			return 0, nil, rangeErr
		}
		return int(v), rest, nil
	case msgp.InvalidType:
		if len(b) == 0 {
			return 0, nil, ErrTruncated
		}
	}
	return 0, nil, typeErr
}
