package wire

import (
	"errors"

	"github.com/mcl-go/mcl/internal/reassembly"
)

// ErrMalformed matches, through errors.Is, every error that says a
// datagram, a fragment or a reassembled payload breaks the format:
// ErrTruncated, ErrNotArray, ErrArrayLen, ErrTopicType, ErrIndexType,
// ErrCountType, ErrFragmentCount, ErrFragmentIndex, ErrPieceType,
// ErrPayload, ErrTrailing, ErrPieceTooLong and ErrPieceSize.
var ErrMalformed = reassembly.ErrMalformed

// malformed is the type of the format errors. Each one is a package-level
// pointer, so errors.Is finds the exact reason by identity, returning one
// never allocates, and the Is method makes every one also match
// ErrMalformed without wrapping (wrapping would allocate per datagram).
type malformed struct{ msg string }

func (e *malformed) Error() string { return e.msg }

// Is reports whether target is ErrMalformed, the family every reason
// belongs to.
func (e *malformed) Is(target error) bool { return target == ErrMalformed }

// Format errors, returned by Decode, Topic and Reassembler.Add. Each
// matches itself and ErrMalformed under errors.Is.
var (
	// ErrTruncated: the msgpack data ends before the value it started.
	ErrTruncated error = &malformed{"wire: truncated msgpack"}
	// ErrNotArray: the datagram is not a msgpack array.
	ErrNotArray error = &malformed{"wire: datagram is not an array"}
	// ErrArrayLen: the array has neither 2 nor 4 elements.
	ErrArrayLen error = &malformed{"wire: array has neither 2 nor 4 elements"}
	// ErrTopicType: the topic is not str, bin or nil.
	ErrTopicType error = &malformed{"wire: topic is not a string"}
	// ErrIndexType: the fragment number n is not an integer.
	ErrIndexType error = &malformed{"wire: fragment number is not an integer"}
	// ErrCountType: the fragment count N is not an integer.
	ErrCountType error = &malformed{"wire: fragment count is not an integer"}
	// ErrFragmentCount: the fragment count N is below 1 (or beyond int).
	ErrFragmentCount = reassembly.ErrFragmentCount
	// ErrFragmentIndex: the fragment number n is outside 1..N.
	ErrFragmentIndex = reassembly.ErrFragmentIndex
	// ErrPieceType: the fragment's piece is not str or bin.
	ErrPieceType error = &malformed{"wire: fragment piece is not a string"}
	// ErrPayload: the payload is not exactly one well-formed msgpack value.
	ErrPayload = reassembly.ErrPayload
	// ErrTrailing: bytes follow the array. The Python receiver's
	// msgpack.loads refuses such datagrams ("extra data"), so do we.
	ErrTrailing error = &malformed{"wire: bytes after the array"}
	// ErrPieceTooLong: a fragment's piece is longer than MTU, which no
	// sender of this format produces.
	ErrPieceTooLong = reassembly.ErrPieceTooLong
	// ErrPieceSize: a fragment's piece is longer than the first piece of
	// its message, or, before piece N, of another length. Senders of this
	// format cut every piece but the last to one length (MTU).
	ErrPieceSize = reassembly.ErrPieceSize
)

// Errors that are not about the format.
var (
	// ErrTopicTooLong is returned by CheckTopic for a topic longer than
	// MaxTopic.
	ErrTopicTooLong = errors.New("wire: topic longer than MaxTopic")
	// ErrNotFragment is returned by Reassembler.Add for a whole message.
	ErrNotFragment = reassembly.ErrNotFragment
	// ErrTooLarge is returned by Reassembler.Add for a fragment of a
	// message larger than Limits.MaxMessageBytes.
	ErrTooLarge = reassembly.ErrTooLarge
	// ErrDuplicate is returned by Reassembler.Add for a repeat of the
	// fragment received just before for the same message.
	ErrDuplicate = reassembly.ErrDuplicate
	// ErrIncomplete is returned by Reassembler.Add for a fragment of a
	// message that is missing a piece (lost, or out of order), which is
	// dropped and counted once, whichever of its fragments shows it.
	ErrIncomplete = reassembly.ErrIncomplete
)
