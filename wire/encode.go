package wire

import (
	"math"

	"github.com/tinylib/msgp/msgp"
)

// MTU is the seed's MTU: the largest frame sent as a single datagram and
// the size of every fragment piece but the last.
const MTU = 60000

// MaxDatagram is a receive buffer size that holds any UDP datagram (the
// 16-bit UDP length bounds every datagram below 65536 bytes), so a
// datagram is never truncated by the read.
const MaxDatagram = 65536

// MaxTopic is the longest topic the encoder accepts. A fragment datagram
// carries a full MTU piece plus the topic and at most 25 bytes of msgpack
// headers; with a 4096-byte topic that is 64121 bytes, under the
// 65507-byte limit of an IPv4 UDP payload.
const MaxTopic = 4096

// CheckTopic returns ErrTopicTooLong when topic is longer than MaxTopic,
// else nil. Publishers call it once per topic: AppendMessage and
// AppendFragment do not check.
func CheckTopic(topic string) error {
	if len(topic) > MaxTopic {
		return ErrTopicTooLong
	}
	return nil
}

// AppendStr appends s as a msgpack raw str the way Python 2 packs every
// string: fixstr up to 31 bytes, str16 (0xda) up to 65535, str32 (0xdb)
// beyond; never str8 (0xd9), which the old spec did not have. It panics if
// s is 4 GiB or longer, which msgpack cannot encode.
func AppendStr(dst []byte, s []byte) []byte {
	return appendStr(dst, s)
}

// appendStr is AppendStr for strings too, so a string topic is appended
// without being converted (and maybe copied) to []byte first.
func appendStr[S string | []byte](dst []byte, s S) []byte {
	return append(appendStrHeader(dst, len(s)), s...)
}

// appendStrHeader appends the old-spec str header for n bytes.
func appendStrHeader(dst []byte, n int) []byte {
	switch {
	case n <= 31:
		return append(dst, 0xa0|byte(n))
	case n <= math.MaxUint16:
		return append(dst, 0xda, byte(n>>8), byte(n))
	case uint64(n) <= math.MaxUint32:
		return append(dst, 0xdb, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	panic("wire: string too long for msgpack")
}

// strHeaderLen is the length of the header appendStr writes for n bytes.
func strHeaderLen(n int) int {
	switch {
	case n <= 31:
		return 1
	case n <= math.MaxUint16:
		return 3
	default:
		return 5
	}
}

// AppendMessage appends the datagram [topic, payload] to dst and returns
// the extended slice. payload must already be msgpack-encoded; it is
// copied verbatim. It allocates only when dst lacks capacity.
func AppendMessage(dst []byte, topic string, payload []byte) []byte {
	dst = append(dst, 0x92)
	dst = appendStr(dst, topic)
	return append(dst, payload...)
}

// AppendFragment appends the datagram [topic, n, count, piece] to dst,
// with piece as a raw str like Python 2, and returns the extended slice.
// It panics unless 1 <= n <= count: that is a bug in the caller, not bad
// input from the network. It allocates only when dst lacks capacity.
func AppendFragment(dst []byte, topic string, n, count int, piece []byte) []byte {
	return append(AppendFragmentHeader(dst, topic, n, count, len(piece)), piece...)
}

// AppendFragmentHeader appends what AppendFragment writes before the
// piece's bytes, for a piece of pieceLen bytes, so that a sender can send
// the header and the piece from where they lie (scatter-gather) instead of
// copying the piece. It panics as AppendFragment does.
func AppendFragmentHeader(dst []byte, topic string, n, count, pieceLen int) []byte {
	if n < 1 || n > count {
		panic("wire: fragment number out of range")
	}
	dst = append(dst, 0x94)
	dst = appendStr(dst, topic)
	dst = msgp.AppendUint(dst, uint(n))
	dst = msgp.AppendUint(dst, uint(count))
	return appendStrHeader(dst, pieceLen)
}

// IndexLen returns the length of fragment number n in a fragment's header,
// msgpack's shortest encoding of it, as AppendFragmentHeader and Python's
// msgpack write it. A receiver that knows one fragment's header length
// knows the next one's from it.
func IndexLen(n int) int {
	switch {
	case n < 1<<7:
		return 1
	case n < 1<<8:
		return 2
	case n < 1<<16:
		return 3
	case uint64(n) < 1<<32: // as uint64: 1<<32 overflows a 32-bit int
		return 5
	}
	return 9
}

// Fits reports whether the datagram [topic, payload] is at most MTU bytes,
// in which case it is sent whole, and otherwise as fragments. It computes
// the size without encoding.
func Fits(topic string, payload []byte) bool {
	return 1+strHeaderLen(len(topic))+len(topic)+len(payload) <= MTU
}

// FragmentCount returns the number of fragments of an encoded payload of
// payloadLen bytes: payloadLen/MTU + 1, the seed's formula, which gives an
// empty last piece when payloadLen is a multiple of MTU (0 included).
func FragmentCount(payloadLen int) int {
	return payloadLen/MTU + 1
}

// Piece returns piece n (1-based) of an encoded payload:
// payload[(n-1)*MTU : min(len(payload), n*MTU)], capped so appending to it
// cannot overwrite the next piece. It panics unless
// 1 <= n <= FragmentCount(len(payload)).
func Piece(payload []byte, n int) []byte {
	if n < 1 || n > FragmentCount(len(payload)) {
		panic("wire: piece number out of range")
	}
	start := (n - 1) * MTU
	end := min(len(payload), start+MTU)
	return payload[start:end:end]
}
