package reassembly

import "errors"

// ErrMalformed is wire.ErrMalformed: every format error matches it under
// errors.Is. It is defined here, and wire's is this one, so that the
// errors of reassembly and those of decoding are one family.
var ErrMalformed = errors.New("wire: malformed datagram")

// malformed is the type of the format errors (see wire's errors.go).
type malformed struct{ msg string }

func (e *malformed) Error() string { return e.msg }

// Is reports whether target is ErrMalformed, the family every reason
// belongs to.
func (e *malformed) Is(target error) bool { return target == ErrMalformed }

// The errors of Add, which wire exports under the same names, and
// documents; the first five are format errors that Decode returns too.
var (
	ErrFragmentCount error = &malformed{"wire: fragment count out of range"}
	ErrFragmentIndex error = &malformed{"wire: fragment number out of range"}
	ErrPayload       error = &malformed{"wire: payload is not one msgpack value"}
	ErrPieceTooLong  error = &malformed{"wire: fragment piece longer than MTU"}
	ErrPieceSize     error = &malformed{"wire: fragment piece length differs from the first piece's"}

	ErrNotFragment = errors.New("wire: frame is not a fragment")
	ErrTooLarge    = errors.New("wire: message larger than the limit")
	ErrDuplicate   = errors.New("wire: duplicate fragment")
	ErrIncomplete  = errors.New("wire: fragment of an incomplete message")
)
