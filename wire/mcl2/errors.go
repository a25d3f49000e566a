package mcl2

import (
	"errors"

	"github.com/mcl-go/mcl/wire"
)

// formatError is the type of the errors that say a datagram breaks the
// format: each matches itself and wire.ErrMalformed under errors.Is,
// without wrapping, so that returning one never allocates.
type formatError struct{ msg string }

func (e *formatError) Error() string { return e.msg }

// Is reports whether target is wire.ErrMalformed.
func (e *formatError) Is(target error) bool { return target == wire.ErrMalformed }

// Errors of ParseHeader and Next. Those that break the format match
// wire.ErrMalformed; ErrNotMCL2, ErrUnsupported and ErrUnknownType do
// not: they are datagrams and records of other formats and versions.
var (
	// ErrNotMCL2: the datagram does not start with Magic.
	ErrNotMCL2 = errors.New("mcl2: not an mcl/2 datagram")
	// ErrUnsupported: another version, a flag this version does not know,
	// or a sealed datagram, which this version does not define.
	ErrUnsupported = errors.New("mcl2: unsupported version or flags")
	// ErrUnknownType: a record of a type this version does not know; the
	// records after it are still readable.
	ErrUnknownType = errors.New("mcl2: unknown record type")
	// ErrTruncated: the datagram ends inside its header or a record.
	ErrTruncated error = &formatError{"mcl2: truncated datagram"}
	// ErrHeader: the reserved byte or, unsealed, the key id is not 0, or
	// the sender id is 0.
	ErrHeader error = &formatError{"mcl2: bad header"}
	// ErrTopicTooLong: a topic longer than MaxTopic.
	ErrTopicTooLong error = &formatError{"mcl2: topic longer than 4096 bytes"}
	// ErrRecord: a record's body is shorter than its fields and topic.
	ErrRecord error = &formatError{"mcl2: record shorter than its fields"}
	// ErrEmptyPayload: a message record without payload.
	ErrEmptyPayload error = &formatError{"mcl2: empty payload"}
	// ErrPiece: a fragment's index, count, message length and piece
	// length disagree with each other or with the format's rules.
	ErrPiece error = &formatError{"mcl2: fragment piece does not fit its message"}
)
