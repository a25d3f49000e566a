package mcap

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Chunk compression formats, as named in the MCAP registry.
const (
	CompressionNone = ""
	CompressionZstd = "zstd"
	CompressionLZ4  = "lz4" // the LZ4 frame format, as other MCAP implementations use
)

// compressor turns a chunk's records into the bytes stored in the file. The
// result may alias internal buffers and is valid until the next call.
type compressor interface {
	compress(src []byte) ([]byte, error)
}

func newCompressor(name string) (compressor, error) {
	switch name {
	case CompressionNone:
		return nil, nil
	case CompressionZstd:
		// Concurrency 1 makes EncodeAll synchronous: no goroutines to leak if
		// the caller never closes the Writer, and chunks are big enough that
		// per-chunk parallelism would buy little.
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		return &zstdCompressor{enc: enc}, nil
	case CompressionLZ4:
		return &lz4Compressor{w: lz4.NewWriter(nil)}, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrUnsupportedCompression, name)
}

type zstdCompressor struct {
	enc *zstd.Encoder
	buf []byte
}

func (c *zstdCompressor) compress(src []byte) ([]byte, error) {
	c.buf = c.enc.EncodeAll(src, c.buf[:0])
	return c.buf, nil
}

type lz4Compressor struct {
	w   *lz4.Writer
	buf bytes.Buffer
}

func (c *lz4Compressor) compress(src []byte) ([]byte, error) {
	c.buf.Reset()
	c.w.Reset(&c.buf)
	// Readers allocate a buffer of the frame's block size, so use the
	// smallest block size that holds the whole chunk rather than always 4 MiB.
	size := lz4.Block4Mb
	for _, s := range []lz4.BlockSize{lz4.Block64Kb, lz4.Block256Kb, lz4.Block1Mb} {
		if len(src) <= int(s) {
			size = s
			break
		}
	}
	if err := c.w.Apply(lz4.BlockSizeOption(size)); err != nil {
		return nil, err
	}
	if _, err := c.w.Write(src); err != nil {
		return nil, err
	}
	if err := c.w.Close(); err != nil {
		return nil, err
	}
	return c.buf.Bytes(), nil
}

// lz4Readers recycles frame decoders: each holds block buffers of up to 4 MiB
// that are worth reusing from chunk to chunk.
var lz4Readers = sync.Pool{New: func() any { return lz4.NewReader(nil) }}

// decompress inflates a chunk's records into buf, grown if needed, and
// returns exactly size bytes. The caller has checked size against its
// allocation cap, so the only allocation here is bounded; data that
// inflates to anything but size bytes is an error.
func decompress(compression string, src []byte, size uint64, buf []byte) ([]byte, error) {
	buf = slices.Grow(buf[:0], int(size))[:size:size]
	switch compression {
	case CompressionZstd:
		v := zstdDecoders.Get()
		dec, ok := v.(*zstd.Decoder)
		if !ok {
			return nil, v.(error)
		}
		defer zstdDecoders.Put(dec)
		// The decoder is limited to dst's capacity, the declared size: a
		// frame claiming more fails instead of growing it.
		out, err := dec.DecodeAll(src, buf[:0])
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		if uint64(len(out)) != size {
			return nil, fmt.Errorf("zstd data inflates to %d bytes, chunk declares %d", len(out), size)
		}
		return out, nil
	case CompressionLZ4:
		zr := lz4Readers.Get().(*lz4.Reader)
		defer lz4Readers.Put(zr)
		zr.Reset(bytes.NewReader(src))
		out := buf
		if _, err := io.ReadFull(zr, out); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("lz4 data inflates to fewer bytes than the %d the chunk declares", size)
			}
			return nil, err // pierrec/lz4 errors already say "lz4: "
		}
		var extra [1]byte
		if n, err := zr.Read(extra[:]); n > 0 || (err != nil && err != io.EOF) {
			if err != nil && err != io.EOF {
				return nil, err
			}
			return nil, fmt.Errorf("lz4 data inflates to more than the %d bytes the chunk declares", size)
		}
		return out, nil
	}
	return nil, ErrUnsupportedCompression
}

// zstdDecoders recycles zstd decoders, which are costly to create. Each has
// concurrency 1, so it starts no goroutines and needs no Close, and the cap
// limit makes DecodeAll stop at dst's capacity, the declared chunk size.
var zstdDecoders = sync.Pool{New: func() any {
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecodeAllCapLimit(true))
	if err != nil {
		return err
	}
	return dec
}}
