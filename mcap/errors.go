package mcap

import (
	"errors"
	"fmt"
	"io"
)

// Sentinel errors. Errors about the content of a file are returned as
// *FormatError values that wrap one of the first six sentinels, so callers
// test for a class of damage with errors.Is and still get the offset from the
// *FormatError.
var (
	// ErrBadMagic means the file does not start with the MCAP magic bytes, so it
	// is not an MCAP file (or not of a major version this package reads).
	ErrBadMagic = errors.New("mcap: bad magic")

	// ErrCRC means a stored CRC32 does not match the bytes it covers: a chunk's
	// uncompressed records, the data section (Data End record) or the summary
	// section (Footer).
	ErrCRC = errors.New("mcap: CRC mismatch")

	// ErrTruncated means the file ends before a record, or before the Data End
	// record, is complete: typically a recording whose writer was killed. It
	// wraps io.ErrUnexpectedEOF, so errors.Is(err, io.ErrUnexpectedEOF) holds
	// too.
	ErrTruncated = fmt.Errorf("mcap: file truncated: %w", io.ErrUnexpectedEOF)

	// ErrMalformed means a record does not decode: a field runs past the end of
	// its record, a message names an unknown channel, and the like.
	ErrMalformed = errors.New("mcap: malformed record")

	// ErrTooLarge means a record or a decompressed chunk exceeds the size this
	// package is willing to hold in memory (1 GiB), so it refuses to allocate.
	ErrTooLarge = errors.New("mcap: record too large")

	// ErrUnsupportedCompression means a chunk (or WriterOptions) names a
	// compression other than "", "zstd" and "lz4".
	ErrUnsupportedCompression = errors.New("mcap: unsupported compression")

	// ErrUnknownSchema is returned by Writer.AddChannel for a schema ID that
	// AddSchema did not return.
	ErrUnknownSchema = errors.New("mcap: unknown schema ID")

	// ErrUnknownChannel is returned by Writer.WriteMessage for a channel ID that
	// AddChannel did not return.
	ErrUnknownChannel = errors.New("mcap: unknown channel ID")

	// ErrTooMany is returned by Writer.AddSchema and Writer.AddChannel once the
	// 65535 IDs that the format's uint16 ID fields allow are used up.
	ErrTooMany = errors.New("mcap: too many schemas or channels")

	// ErrClosed is returned by Writer methods called after Close.
	ErrClosed = errors.New("mcap: writer closed")
)

// FormatError reports damage in an MCAP file: what is wrong and the file
// offset of the record where it was found. Err is the sentinel that classifies
// the damage (ErrBadMagic, ErrCRC, ErrTruncated, ErrMalformed, ErrTooLarge or
// ErrUnsupportedCompression); errors.Is sees through to it.
type FormatError struct {
	Offset int64  // file offset of the damaged record (or of the cut)
	Reason string // human-readable description
	Err    error  // classifying sentinel
}

// Error implements error.
func (e *FormatError) Error() string {
	return fmt.Sprintf("mcap: offset %d: %s", e.Offset, e.Reason)
}

// Unwrap returns the classifying sentinel, for errors.Is.
func (e *FormatError) Unwrap() error { return e.Err }

func formatErr(sentinel error, off int64, format string, args ...any) error {
	return &FormatError{Offset: off, Reason: fmt.Sprintf(format, args...), Err: sentinel}
}
