package recording

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/mcl-go/mcl/mcap"
)

// ErrOutputExists reports that Recover was asked to write a file that
// exists, without RecoverOptions.Force.
var ErrOutputExists = errors.New("recording: output exists")

// RecoverOptions configures Recover. The zero value writes a chunked,
// zstd-compressed file, as the recorder does, and refuses to replace an
// existing output.
type RecoverOptions struct {
	// Compression of the output's chunks: "zstd" (default), "lz4" or
	// "none". Unused when the input is complete and copied as is.
	Compression string
	// Force replaces the output file if it exists.
	Force bool
}

// RecoverResult reports what Recover did.
type RecoverResult struct {
	// Messages counts the messages in the output.
	Messages uint64
	// Complete is true when the input was already a complete file (a
	// summary section, and no damage in its data section): the output is
	// then a byte-for-byte copy and there was nothing to recover.
	Complete bool
	// Damage is the *mcap.FormatError (wrapped, naming the input) that
	// ended the salvage: where the input was cut or damaged. It is nil
	// when the input's data section was intact to its Data End record,
	// whether or not the summary and Footer after it were.
	Damage error
	// DamageOffset is the file offset of Damage, -1 when Damage is nil.
	DamageOffset int64
}

// RecoverPath is the default output of Recover for in: in with
// ".recovered.mcap" in place of its ".mcap" suffix (or appended when it
// has none).
func RecoverPath(in string) string {
	return strings.TrimSuffix(in, ".mcap") + ".recovered.mcap"
}

// Recover rewrites the recording in, typically one whose recorder was killed
// (kill -9, power loss) and so has no summary and maybe a cut last record,
// into out: a complete MCAP file with a summary section and indexes that
// every reader opens. It copies every intact schema, channel (topic,
// message encoding and metadata, so group, sender and topic_base64 too),
// message (log time, publish time, sequence, data, in file order) and
// metadata record before the first damage. Channel and schema IDs may be
// renumbered. An input that is already complete is copied as is.
//
// in is never modified. out is written to a temporary file next to it and
// renamed into place when complete; an existing out is refused with
// ErrOutputExists unless opts.Force, and out may not be in itself.
//
// The error is non-nil when nothing was written: in cannot be read, is not
// MCAP (mcap.ErrBadMagic) or has a malformed Header, or out cannot be
// written. Damage in in is not an error: see RecoverResult.Damage.
func Recover(in, out string, opts RecoverOptions) (res RecoverResult, err error) {
	res.DamageOffset = -1
	comp := opts.Compression
	switch comp {
	case "":
		comp = mcap.CompressionZstd
	case "none":
		comp = mcap.CompressionNone
	case mcap.CompressionZstd, mcap.CompressionLZ4:
	default:
		return res, fmt.Errorf("recording: compression %q: use zstd, lz4 or none", opts.Compression)
	}
	src, err := os.Open(in)
	if err != nil {
		return res, fmt.Errorf("recording: %w", err)
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return res, fmt.Errorf("recording: %w", err)
	}
	if st.IsDir() {
		return res, fmt.Errorf("recording: %s is a directory", in)
	}
	if ost, err := os.Stat(out); err == nil {
		switch {
		case os.SameFile(st, ost):
			return res, fmt.Errorf("recording: output %s is the input file", out)
		case ost.IsDir():
			return res, fmt.Errorf("recording: output %s is a directory", out)
		case !opts.Force:
			return res, fmt.Errorf("%w: %s (replace it with force)", ErrOutputExists, out)
		}
	}
	size := st.Size()

	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*.tmp")
	if err != nil {
		return res, fmt.Errorf("recording: %w", err)
	}
	defer func() {
		if tmp != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	writeErr := func(err error) error { return fmt.Errorf("recording: write %s: %w", out, err) }

	if n, ok := complete(src, size); ok {
		res.Complete, res.Messages = true, n
		if _, err := io.Copy(tmp, io.NewSectionReader(src, 0, size)); err != nil {
			return res, writeErr(err)
		}
	} else {
		r, err := mcap.Recover(tmp, src, size, mcap.WriterOptions{Chunked: true, Compression: comp})
		if err != nil {
			var fe *mcap.FormatError
			if errors.As(err, &fe) {
				return RecoverResult{DamageOffset: -1}, fmt.Errorf("recording: %s: %w", in, err)
			}
			return RecoverResult{DamageOffset: -1}, fmt.Errorf("recording: recover %s into %s: %w", in, out, err)
		}
		res.Messages = r.Messages
		if r.Damage != nil {
			res.Damage = fmt.Errorf("recording: %s: %w", in, r.Damage)
			var fe *mcap.FormatError
			if errors.As(r.Damage, &fe) {
				res.DamageOffset = fe.Offset
			}
		}
	}
	if err := tmp.Chmod(0o644); err != nil {
		return res, writeErr(err)
	}
	if err := tmp.Sync(); err != nil {
		return res, writeErr(err)
	}
	if err := tmp.Close(); err != nil {
		return res, writeErr(err)
	}
	if err := install(tmp.Name(), out, opts.Force); err != nil {
		return res, err
	}
	tmp = nil
	return res, nil
}

// complete reports whether the file is complete: it has a summary section
// with statistics, and its whole data section reads without damage. It
// returns its message count.
func complete(src io.ReaderAt, size int64) (uint64, bool) {
	r, err := mcap.NewReader(src, size)
	if err != nil {
		return 0, false
	}
	info, err := r.Info()
	if err != nil || !info.FromSummary {
		return 0, false
	}
	var n uint64
	for _, err := range r.Messages(mcap.ReadOptions{}) {
		if err != nil {
			return 0, false
		}
		n++
	}
	return n, n == info.MessageCount
}

// install moves the finished temporary file to name: replacing it with
// force, else only if name still does not exist.
func install(tmp, name string, force bool) error {
	if force {
		if err := os.Rename(tmp, name); err != nil {
			return fmt.Errorf("recording: %w", err)
		}
		return nil
	}
	// A hard link fails if name appeared meanwhile; file systems without
	// links get a check and a rename.
	err := os.Link(tmp, name)
	if err == nil {
		os.Remove(tmp)
		return nil
	}
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%w: %s (replace it with force)", ErrOutputExists, name)
	}
	if _, serr := os.Lstat(name); serr == nil {
		return fmt.Errorf("%w: %s (replace it with force)", ErrOutputExists, name)
	}
	if err := os.Rename(tmp, name); err != nil {
		return fmt.Errorf("recording: %w", err)
	}
	return nil
}
