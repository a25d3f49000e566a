package mcap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

// flushedSample writes n small messages, flushing every k, and records how
// many messages were safely out after each Flush.
type flushPoint struct {
	offset int // file size after the Flush
	msgs   int // messages written before it
}

func flushedSample(t testing.TB, opts WriterOptions, n, k int) (*written, []flushPoint) {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, opts)
	if err != nil {
		t.Fatal(err)
	}
	wr := &written{channels: map[uint16]Channel{}}
	for _, topic := range []string{"/a", "/b"} {
		id, err := w.AddChannel(0, topic, "msgpack", map[string]string{"k": topic})
		if err != nil {
			t.Fatal(err)
		}
		wr.channels[id] = Channel{ID: id, Topic: topic}
	}
	var flushes []flushPoint
	for i := range n {
		m := Message{Channel: uint16(1 + i%2), Sequence: uint32(i), LogTime: uint64(i), PublishTime: uint64(i),
			Data: bytes.Repeat([]byte{byte(i)}, i%23)}
		if err := w.WriteMessage(m); err != nil {
			t.Fatal(err)
		}
		wr.msgs = append(wr.msgs, m)
		if (i+1)%k == 0 {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			flushes = append(flushes, flushPoint{buf.Len(), i + 1})
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	wr.file = buf.Bytes()
	return wr, flushes
}

// recordEnd returns the end offset of the record at off.
func recordEnd(file []byte, off int64) int64 {
	return off + recordHeaderLen + int64(binary.LittleEndian.Uint64(file[off+1:]))
}

// TestTruncation cuts a file at every offset, as a killed writer would leave
// it, and checks that the reader returns exactly the messages whose enclosing
// record (message or chunk) is complete, then a truncation error naming an
// offset; never a panic.
func TestTruncation(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			opts := m.opts
			if opts.Chunked {
				opts.ChunkSize = 512 // many chunks, most ended by Flush
			}
			wr, flushes := flushedSample(t, opts, 80, 6)
			file := wr.file
			full := open(t, file)
			all, err := readAll(full, ReadOptions{})
			if err != nil || len(all) != len(wr.msgs) {
				t.Fatalf("full file: %d messages, %v", len(all), err)
			}
			ends := make([]int64, len(all)) // where each message becomes readable
			for i, mv := range all {
				ends[i] = recordEnd(file, mv.Offset)
			}
			// Where the Data End record ends: beyond it nothing can be lost.
			dataEnd := int64(0)
			for off := full.dataStart; ; off = recordEnd(file, off) {
				if file[off] == opDataEnd {
					dataEnd = recordEnd(file, off)
					break
				}
			}

			for cut := 0; cut <= len(file); cut++ {
				b := file[:cut]
				r, err := NewReader(bytes.NewReader(b), int64(cut))
				if cut < int(full.dataStart) {
					// An empty file cut at the start: see TestHeaderCut.
					if err != nil {
						t.Fatalf("cut %d inside the header: NewReader error %v", cut, err)
					}
					if got, err := readAll(r, ReadOptions{}); len(got) != 0 || !errors.Is(err, ErrTruncated) {
						t.Fatalf("cut %d inside the header: %d messages, %v", cut, len(got), err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("cut %d: NewReader: %v", cut, err)
				}
				want := 0
				for want < len(ends) && ends[want] <= int64(cut) {
					want++
				}
				got, err := readAll(r, ReadOptions{})
				if len(got) != want {
					t.Fatalf("cut %d: %d messages, want %d (err %v)", cut, len(got), want, err)
				}
				for i := range got {
					if !sameMessage(got[i].Message, wr.msgs[i]) {
						t.Fatalf("cut %d: message %d differs", cut, i)
					}
				}
				// Everything flushed before the cut must be back.
				for _, f := range flushes {
					if f.offset <= cut && len(got) < f.msgs {
						t.Fatalf("cut %d: %d messages but %d were flushed by offset %d", cut, len(got), f.msgs, f.offset)
					}
				}
				if int64(cut) >= dataEnd {
					if err != nil {
						t.Fatalf("cut %d after Data End: %v", cut, err)
					}
				} else {
					var fe *FormatError
					if !errors.As(err, &fe) || !errors.Is(err, ErrTruncated) || !errors.Is(err, io.ErrUnexpectedEOF) {
						t.Fatalf("cut %d: error %v, want truncation", cut, err)
					}
					if fe.Offset < full.dataStart || fe.Offset > int64(cut) {
						t.Fatalf("cut %d: error names offset %d", cut, fe.Offset)
					}
				}

				info, ierr := r.Info()
				if info.MessageCount != uint64(want) || (ierr == nil) != (int64(cut) >= dataEnd) {
					t.Fatalf("cut %d: Info counts %d messages (err %v), want %d", cut, info.MessageCount, ierr, want)
				}
				if cut == len(file) != info.FromSummary {
					t.Fatalf("cut %d: FromSummary %v", cut, info.FromSummary)
				}

				if cut%17 == 0 {
					var out bytes.Buffer
					res, err := Recover(&out, bytes.NewReader(b), int64(cut), WriterOptions{Chunked: true, Compression: CompressionLZ4})
					if err != nil || res.Messages != uint64(want) {
						t.Fatalf("cut %d: Recover = %+v, %v", cut, res, err)
					}
					rec, err := readAll(open(t, out.Bytes()), ReadOptions{})
					if err != nil || len(rec) != want {
						t.Fatalf("cut %d: recovered file has %d messages, %v", cut, len(rec), err)
					}
				}
			}
			t.Logf("%d bytes, %d flushes, all cuts checked", len(file), len(flushes))
		})
	}
}

// TestHeaderCut reads the files a writer killed before or while it wrote
// the magic and Header leaves, from 0 bytes up: each is an empty file with
// its end missing, like any file cut short, not an error to open. Files
// whose first bytes are not those of an MCAP file are still refused.
func TestHeaderCut(t *testing.T) {
	wr, _ := flushedSample(t, modes[2].opts, 10, 5)
	dataStart := open(t, wr.file).dataStart
	for cut := range dataStart {
		b := wr.file[:cut]
		r, err := NewReader(bytes.NewReader(b), cut)
		if err != nil {
			t.Fatalf("cut %d: NewReader: %v", cut, err)
		}
		wantOff := int64(0) // the magic is incomplete
		if cut >= int64(len(Magic)) {
			wantOff = int64(len(Magic)) // the Header record is
		}
		info, err := r.Info()
		wantFormatErr(t, err, ErrTruncated, wantOff)
		if info.MessageCount != 0 || info.FromSummary || len(info.Channels) != 0 {
			t.Fatalf("cut %d: Info %+v", cut, info)
		}
		got, err := readAll(r, ReadOptions{})
		wantFormatErr(t, err, ErrTruncated, wantOff)
		if !errors.Is(err, io.ErrUnexpectedEOF) || len(got) != 0 {
			t.Fatalf("cut %d: %d messages, %v", cut, len(got), err)
		}
		if _, err := r.Metadata(); !errors.Is(err, ErrTruncated) {
			t.Fatalf("cut %d: Metadata: %v", cut, err)
		}
		var out bytes.Buffer
		res, err := Recover(&out, bytes.NewReader(b), cut, WriterOptions{})
		if err != nil || res.Messages != 0 || !errors.Is(res.Damage, ErrTruncated) {
			t.Fatalf("cut %d: Recover = %+v, %v", cut, res, err)
		}
		if got, err := readAll(open(t, out.Bytes()), ReadOptions{}); err != nil || len(got) != 0 {
			t.Fatalf("cut %d: recovered file: %d messages, %v", cut, len(got), err)
		}
	}
	if _, err := NewReader(bytes.NewReader(nil), 0); err != nil {
		t.Fatalf("empty file: %v", err)
	}

	for _, tc := range []struct {
		name     string
		file     []byte
		sentinel error
	}{
		{"text", []byte("hello"), ErrBadMagic},
		{"magic prefix, then text", []byte("\x89MCAx"), ErrBadMagic},
		{"zeros", make([]byte, 100), ErrBadMagic},
		{"magic, then not a Header", append([]byte(Magic), wr.file[dataStart:]...), ErrMalformed},
	} {
		_, err := NewReader(bytes.NewReader(tc.file), int64(len(tc.file)))
		if !errors.Is(err, tc.sentinel) {
			t.Errorf("%s: NewReader error %v, want %v", tc.name, err, tc.sentinel)
		}
	}
}

// A Reader given a size larger than the data reports truncation, not a panic
// or an I/O error.
func TestShortReaderAt(t *testing.T) {
	wr, _ := flushedSample(t, modes[1].opts, 50, 5)
	b := wr.file[:len(wr.file)/2]
	r, err := NewReader(bytes.NewReader(b), int64(len(wr.file)))
	if err != nil && !errors.Is(err, ErrTruncated) {
		t.Fatal(err)
	}
	if r != nil {
		_, err = readAll(r, ReadOptions{})
	}
	if !errors.Is(err, ErrTruncated) {
		t.Fatalf("got %v", err)
	}
}
