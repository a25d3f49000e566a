// Package mcl2 encodes and decodes mcl/2 datagrams, the opt-in framing for
// groups where every node runs this library: a header with a sender id and
// a sequence number, then records, each a whole message or a fragment of a
// large one. docs/mcl2.md is the specification; this package follows it
// and is pure (no sockets, no clocks), like package wire for the seed
// format.
//
// Encoding appends to a caller's buffer; decoding returns slices of the
// datagram and never allocates.
package mcl2

import (
	"encoding/binary"
	"math"
)

// Format constants.
const (
	// Magic is the first byte of every mcl/2 datagram: a byte msgpack
	// never uses, so that seed receivers fail to unpack the datagram and
	// drop it.
	Magic = 0xc1
	// Version is the version byte of this specification.
	Version = 0x02
	// FlagSealed marks a datagram of the authenticated mode, which this
	// version reserves and does not define.
	FlagSealed = 0x01
	// HeaderLen is the length of the datagram header.
	HeaderLen = 24
	// TagLen is the length of the tag that ends a sealed datagram.
	TagLen = 16
	// PrefixLen is the length of every record's prefix: type and length.
	PrefixLen = 5
	// MessageOverhead is the bytes a message record adds to its topic and
	// payload.
	MessageOverhead = PrefixLen + 2
	// FragmentOverhead is the bytes a fragment record adds to its topic
	// and piece.
	FragmentOverhead = PrefixLen + 22
	// MaxTopic is the longest topic a record may carry, as in the seed
	// format.
	MaxTopic = 4096
	// MinPiece is the shortest piece but the last a fragment may carry:
	// it bounds the pieces a message claims, and so what a receiver
	// keeps to know which arrived, to one per 64 bytes of the message.
	MinPiece = 64
)

// Record types.
const (
	TypeMessage  = 0x01
	TypeFragment = 0x02
)

// Header is a datagram's header.
type Header struct {
	Flags  uint8
	KeyID  uint32
	Sender uint64 // the sender's id, not 0
	Seq    uint64 // the sender's datagram number
}

// Is reports whether datagram is an mcl/2 datagram, by its first byte: a
// seed datagram never starts with Magic.
func Is(datagram []byte) bool { return len(datagram) > 0 && datagram[0] == Magic }

// AppendHeader appends an unsealed header for sender and seq.
func AppendHeader(dst []byte, sender, seq uint64) []byte {
	dst = append(dst, Magic, Version, 0, 0, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint64(dst, sender)
	return binary.BigEndian.AppendUint64(dst, seq)
}

// SetSeq writes seq into the header at the start of datagram, which must
// be at least HeaderLen long: a sender numbers a datagram when it sends
// it, not when it starts filling it.
func SetSeq(datagram []byte, seq uint64) {
	binary.BigEndian.PutUint64(datagram[16:24], seq)
}

// ParseHeader returns the header of datagram and its records. Errors:
// ErrNotMCL2 when it does not start with Magic, ErrTruncated when it is
// shorter than a header and one record prefix, ErrUnsupported for another
// version, a flag this version does not know, or a sealed datagram, and
// ErrHeader when the reserved byte or, unsealed, the key id is not 0, or
// the sender id is 0.
func ParseHeader(datagram []byte) (Header, []byte, error) {
	if !Is(datagram) {
		return Header{}, nil, ErrNotMCL2
	}
	if len(datagram) < HeaderLen+PrefixLen {
		return Header{}, nil, ErrTruncated
	}
	h := Header{
		Flags:  datagram[2],
		KeyID:  binary.BigEndian.Uint32(datagram[4:8]),
		Sender: binary.BigEndian.Uint64(datagram[8:16]),
		Seq:    binary.BigEndian.Uint64(datagram[16:24]),
	}
	if datagram[1] != Version || h.Flags != 0 {
		return h, nil, ErrUnsupported
	}
	if datagram[3] != 0 || h.KeyID != 0 || h.Sender == 0 {
		return h, nil, ErrHeader
	}
	return h, datagram[HeaderLen:], nil
}

// Record is one decoded record. For a message, Payload is the message's
// payload; for a fragment, it is the piece, and Message, Index, Count and
// Size say which piece of which message.
type Record struct {
	Type    byte
	Topic   []byte
	Payload []byte
	Message uint64 // fragments: the message id
	Index   int    // fragments: the piece index, from 0
	Count   int    // fragments: the number of pieces, at least 2
	Size    int    // fragments: the message's length in bytes
}

// IsFragment reports whether r is a fragment.
func (r *Record) IsFragment() bool { return r.Type == TypeFragment }

// Next decodes the record at the start of records, and returns the
// records after it. Errors: ErrTruncated when a prefix or body runs past
// the end (the rest is unreadable), ErrUnknownType for a record of
// another type (rest is still valid: skip it), ErrTopicTooLong, ErrRecord
// for a body shorter than its fixed fields and topic, ErrEmptyPayload,
// and, for fragments, ErrPiece when index, count, size and the piece's
// length disagree with each other or with the rules of the format. The
// payload is not checked to be one msgpack value: receivers check
// messages they deliver, and the joined payload of fragments.
func Next(records []byte) (r Record, rest []byte, err error) {
	if len(records) < PrefixLen {
		return r, nil, ErrTruncated
	}
	n := binary.BigEndian.Uint32(records[1:5])
	if uint64(n) > uint64(len(records)-PrefixLen) {
		return r, nil, ErrTruncated
	}
	r.Type = records[0]
	body, rest := records[PrefixLen:PrefixLen+int(n)], records[PrefixLen+int(n):]
	switch r.Type {
	case TypeMessage:
		err = r.message(body)
	case TypeFragment:
		err = r.fragment(body)
	default:
		err = ErrUnknownType
	}
	return r, rest, err
}

func (r *Record) message(body []byte) error {
	if len(body) < 2 {
		return ErrRecord
	}
	t := int(binary.BigEndian.Uint16(body))
	if t > MaxTopic {
		return ErrTopicTooLong
	}
	if len(body) < 2+t {
		return ErrRecord
	}
	r.Topic, r.Payload = body[2:2+t], body[2+t:]
	if len(r.Payload) == 0 {
		return ErrEmptyPayload
	}
	return nil
}

func (r *Record) fragment(body []byte) error {
	const fixed = 22
	if len(body) < fixed {
		return ErrRecord
	}
	t := int(binary.BigEndian.Uint16(body))
	if t > MaxTopic {
		return ErrTopicTooLong
	}
	if len(body) < fixed+t {
		return ErrRecord
	}
	r.Message = binary.BigEndian.Uint64(body[2:10])
	index := binary.BigEndian.Uint32(body[10:14])
	count := binary.BigEndian.Uint32(body[14:18])
	size := binary.BigEndian.Uint32(body[18:22])
	r.Topic, r.Payload = body[fixed:fixed+t], body[fixed+t:]
	// Checked in 64 bits, so that no claim overflows an int on 32-bit
	// machines.
	off, n, ok := pieceBounds(uint64(size), uint64(count), uint64(index))
	if !ok || n != uint64(len(r.Payload)) || off+n > uint64(size) || size > math.MaxInt32 {
		return ErrPiece
	}
	r.Index, r.Count, r.Size = int(index), int(count), int(size)
	return nil
}

// pieceBounds returns where piece index of a size-byte message cut into
// count pieces starts, and its length; ok is false when the cut breaks the
// format's rules (count below 2, index out of range, pieces shorter than
// MinPiece, an empty last piece).
func pieceBounds(size, count, index uint64) (off, n uint64, ok bool) {
	if count < 2 || index >= count || size < count {
		return 0, 0, false
	}
	p := (size + count - 1) / count
	if p < MinPiece || (count-1)*p >= size { // too short, or the last piece would be empty
		return 0, 0, false
	}
	if index == count-1 {
		return index * p, size - index*p, true
	}
	return index * p, p, true
}

// Piece returns where piece index of a size-byte message cut into count
// pieces lies in it: bytes [off, off+n). ok is false when count, index and
// size break the format's rules.
func Piece(size, count, index int) (off, n int, ok bool) {
	if size < 0 || count < 0 || index < 0 {
		return 0, 0, false
	}
	o, l, ok := pieceBounds(uint64(size), uint64(count), uint64(index))
	return int(o), int(l), ok
}

// Cut returns the number of pieces a sender cuts a size-byte message into
// when a datagram has room for at most room piece bytes: ceil(size/room),
// with which no piece is empty and every piece is at least room/2 long. It
// returns 0 when room < 2*MinPiece, which the format does not allow, or
// the message fits in one piece (send it whole).
func Cut(size, room int) int {
	if room < 2*MinPiece || size <= room {
		return 0
	}
	return (size + room - 1) / room
}

// AppendMessage appends a message record of topic and payload. The
// caller checks the topic's length (at most MaxTopic) and that the payload
// is one msgpack value.
func AppendMessage(dst []byte, topic string, payload []byte) []byte {
	dst = AppendMessageHeader(dst, topic, len(payload))
	return append(dst, payload...)
}

// AppendMessageHeader appends a message record of topic up to its payload
// of length n, for a writer that sends the payload from where it lies.
func AppendMessageHeader(dst []byte, topic string, n int) []byte {
	dst = append(dst, TypeMessage)
	dst = binary.BigEndian.AppendUint32(dst, uint32(2+len(topic)+n))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(topic)))
	return append(dst, topic...)
}

// AppendFragmentHeader appends a fragment record up to its piece: piece
// index of count of message id, a size-byte message, with a piece n bytes
// long (see Piece).
func AppendFragmentHeader(dst []byte, topic string, id uint64, index, count, size, n int) []byte {
	dst = append(dst, TypeFragment)
	dst = binary.BigEndian.AppendUint32(dst, uint32(22+len(topic)+n))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(topic)))
	dst = binary.BigEndian.AppendUint64(dst, id)
	dst = binary.BigEndian.AppendUint32(dst, uint32(index))
	dst = binary.BigEndian.AppendUint32(dst, uint32(count))
	dst = binary.BigEndian.AppendUint32(dst, uint32(size))
	return append(dst, topic...)
}
