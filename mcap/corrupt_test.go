package mcap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"slices"
	"strings"
	"testing"
)

// firstRecord returns the offset of the first data-section record with op.
func firstRecord(t *testing.T, file []byte, op byte) int64 {
	t.Helper()
	r := open(t, file)
	for off := r.dataStart; off < int64(len(file)); off = recordEnd(file, off) {
		if file[off] == op {
			return off
		}
		if file[off] == opDataEnd {
			break
		}
	}
	t.Fatalf("no record with opcode %#x", op)
	return 0
}

func wantFormatErr(t *testing.T, err, sentinel error, off int64) {
	t.Helper()
	var fe *FormatError
	if !errors.As(err, &fe) || !errors.Is(err, sentinel) {
		t.Fatalf("error %v, want a *FormatError wrapping %v", err, sentinel)
	}
	if off >= 0 && fe.Offset != off {
		t.Fatalf("error %v names offset %d, want %d", err, fe.Offset, off)
	}
	if !strings.Contains(err.Error(), "offset") {
		t.Fatalf("error %q does not mention the offset", err)
	}
	t.Logf("got: %v", err)
}

func TestChunkCRC(t *testing.T) {
	wr := writeSample(t, modes[1].opts, 500) // uncompressed chunks: flip a payload byte
	file := slices.Clone(wr.file)
	chunk := firstRecord(t, file, opChunk)
	end := recordEnd(file, chunk)
	file[end-1] ^= 0xFF // last byte of the last message's data in the chunk
	_, err := readAll(open(t, file), ReadOptions{})
	wantFormatErr(t, err, ErrCRC, chunk)
}

func TestCompressedChunkDamage(t *testing.T) {
	for _, m := range modes[2:] {
		t.Run(m.name, func(t *testing.T) {
			wr := writeSample(t, m.opts, 500)
			file := slices.Clone(wr.file)
			chunk := firstRecord(t, file, opChunk)
			end := recordEnd(file, chunk)
			file[(chunk+end)/2] ^= 0x55
			got, err := readAll(open(t, file), ReadOptions{})
			// Either the decompressor or the CRC notices; nothing from the
			// broken chunk comes out.
			var fe *FormatError
			if !errors.As(err, &fe) || fe.Offset != chunk || !(errors.Is(err, ErrCRC) || errors.Is(err, ErrMalformed)) {
				t.Fatalf("got %v", err)
			}
			if len(got) != 0 {
				t.Fatalf("%d messages from a damaged first chunk", len(got))
			}
			t.Logf("got: %v", err)
		})
	}
}

func TestDataEndCRC(t *testing.T) {
	wr := writeSample(t, modes[0].opts, 100) // unchunked: only Data End's CRC covers messages
	file := slices.Clone(wr.file)
	msg := firstRecord(t, file, opMessage)
	file[recordEnd(file, msg)-1] ^= 0x01
	dataEnd := firstRecord(t, file, opDataEnd)
	got, err := readAll(open(t, file), ReadOptions{})
	wantFormatErr(t, err, ErrCRC, dataEnd)
	if len(got) != 100 {
		t.Fatalf("%d messages before the CRC error", len(got))
	}

	// A zero CRC means "not computed" and is not checked.
	binary.LittleEndian.PutUint32(file[dataEnd+recordHeaderLen:], 0)
	if _, err := readAll(open(t, file), ReadOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestSummaryCRC(t *testing.T) {
	wr := writeSample(t, modes[1].opts, 100)
	file := slices.Clone(wr.file)
	footer := len(file) - tailLen
	summaryStart := int64(binary.LittleEndian.Uint64(file[footer+recordHeaderLen:]))
	file[summaryStart+20] ^= 0x10
	_, err := NewReader(bytes.NewReader(file), int64(len(file)))
	wantFormatErr(t, err, ErrCRC, summaryStart)

	// Recover does not need the summary.
	var out bytes.Buffer
	res, err := Recover(&out, bytes.NewReader(file), int64(len(file)), WriterOptions{})
	if err != nil || res.Damage != nil || res.Messages != 100 {
		t.Fatalf("Recover = %+v, %v", res, err)
	}
}

func TestBadMagic(t *testing.T) {
	wr := writeSample(t, modes[0].opts, 10)
	file := slices.Clone(wr.file)
	file[1] = 'm'
	_, err := NewReader(bytes.NewReader(file), int64(len(file)))
	wantFormatErr(t, err, ErrBadMagic, 0)

	// (An empty file is not refused: see TestHeaderCut.)
	for _, s := range []string{"h", "hello world, not an MCAP file at all"} {
		_, err := NewReader(strings.NewReader(s), int64(len(s)))
		wantFormatErr(t, err, ErrBadMagic, 0)
	}
	// Version 1 would be a different major version.
	v1 := []byte("\x89MCAP1\r\n")
	_, err = NewReader(bytes.NewReader(v1), int64(len(v1)))
	wantFormatErr(t, err, ErrBadMagic, 0)
}

func TestRecordLengthBeyondFile(t *testing.T) {
	for _, m := range []mode{modes[0], modes[3]} {
		t.Run(m.name, func(t *testing.T) {
			wr := writeSample(t, m.opts, 50)
			op := byte(opMessage)
			if m.opts.Chunked {
				op = opChunk
			}
			for _, n := range []uint64{uint64(len(wr.file)), 1 << 40, 1<<64 - 1} {
				file := slices.Clone(wr.file)
				off := firstRecord(t, file, op)
				binary.LittleEndian.PutUint64(file[off+1:], n)
				_, err := readAll(open(t, file), ReadOptions{})
				wantFormatErr(t, err, ErrTruncated, off)
			}
		})
	}
}

func TestTooLarge(t *testing.T) {
	wr := writeSample(t, modes[2].opts, 500)
	r := open(t, wr.file)
	r.maxAlloc = 1000 // smaller than a chunk
	_, err := readAll(r, ReadOptions{})
	wantFormatErr(t, err, ErrTooLarge, firstRecord(t, wr.file, opChunk))

	// A chunk claiming a huge uncompressed size is refused before allocating.
	file := slices.Clone(wr.file)
	chunk := firstRecord(t, file, opChunk)
	binary.LittleEndian.PutUint64(file[chunk+recordHeaderLen+16:], 1<<50)
	_, err = readAll(open(t, file), ReadOptions{})
	wantFormatErr(t, err, ErrTooLarge, chunk)

	// One claiming a little more than it holds is caught by the decompressor.
	binary.LittleEndian.PutUint64(file[chunk+recordHeaderLen+16:], 5000)
	_, err = readAll(open(t, file), ReadOptions{})
	wantFormatErr(t, err, ErrMalformed, chunk)
}

func TestUnknownCompression(t *testing.T) {
	wr := writeSample(t, modes[3].opts, 100)
	file := slices.Clone(wr.file)
	chunk := firstRecord(t, file, opChunk)
	name := chunk + recordHeaderLen + chunkFixedLen + 4
	if string(file[name:name+3]) != "lz4" {
		t.Fatalf("compression field holds %q", file[name:name+3])
	}
	copy(file[name:], "xz9")
	_, err := readAll(open(t, file), ReadOptions{})
	wantFormatErr(t, err, ErrUnsupportedCompression, chunk)
}

func TestUndefinedChannel(t *testing.T) {
	wr := writeSample(t, modes[0].opts, 10)
	file := slices.Clone(wr.file)
	msg := firstRecord(t, file, opMessage)
	binary.LittleEndian.PutUint16(file[msg+recordHeaderLen:], 999)
	_, err := readAll(open(t, file), ReadOptions{})
	wantFormatErr(t, err, ErrMalformed, msg)
}

// A Chunk whose records length does not fit its record is malformed. (The
// library's ParseChunk slices by that length and would panic.)
func TestChunkRecordsLength(t *testing.T) {
	wr := writeSample(t, modes[1].opts, 100) // uncompressed: the compression string is empty
	chunk := firstRecord(t, wr.file, opChunk)
	at := chunk + recordHeaderLen + chunkFixedLen + 4
	size := binary.LittleEndian.Uint64(wr.file[at:])
	for _, n := range []uint64{size + 1, 1 << 40, 1<<63 + 5, 1<<64 - 1} {
		file := slices.Clone(wr.file)
		binary.LittleEndian.PutUint64(file[at:], n)
		_, err := readAll(open(t, file), ReadOptions{})
		wantFormatErr(t, err, ErrMalformed, chunk)
	}
}

// A string length of 2 GiB or more is malformed, on 32-bit platforms too,
// where the library's parsers would turn it negative and panic.
func TestStringLengthOverflow(t *testing.T) {
	wr := writeSample(t, modes[0].opts, 10)
	for _, n := range []uint32{1 << 31, 1<<32 - 1} {
		file := slices.Clone(wr.file)
		ch := firstRecord(t, file, opChannel)
		binary.LittleEndian.PutUint32(file[ch+recordHeaderLen+4:], n) // the topic's length
		_, err := readAll(open(t, file), ReadOptions{})
		wantFormatErr(t, err, ErrMalformed, ch)
	}
}

// Records the Lexer skips (unknown opcodes, attachments) count in the data
// section CRC too, also right before the Data End record.
func TestDataEndCRCOverSkipped(t *testing.T) {
	wr := writeSample(t, WriterOptions{SkipSummary: true}, 20) // no offsets to shift
	dataEnd := firstRecord(t, wr.file, opDataEnd)
	private, s := beginRecord(nil, 0x80)
	private = endRecord(append(private, "private"...), s)
	file := slices.Concat(wr.file[:dataEnd], private, wr.file[dataEnd:])
	newEnd := dataEnd + int64(len(private))
	binary.LittleEndian.PutUint32(file[newEnd+recordHeaderLen:], crc32.ChecksumIEEE(file[:newEnd]))
	if got, err := readAll(open(t, file), ReadOptions{}); err != nil || len(got) != 20 {
		t.Fatalf("%d messages, %v", len(got), err)
	}
	file[newEnd-1] ^= 1 // inside the private record
	_, err := readAll(open(t, file), ReadOptions{})
	wantFormatErr(t, err, ErrCRC, newEnd)
}
