package mcl2

import (
	"bytes"
	"errors"
	"testing"

	"github.com/mcl-go/mcl/wire"
)

// TestCutTiles checks the sender's rule against the receiver's: for any
// message size and room per datagram, Cut's pieces are non-empty, at
// most room long, and tile the message exactly, each as Piece places it.
func TestCutTiles(t *testing.T) {
	for size := 1; size < 3000; size += 7 {
		for room := 100; room < 700; room += 13 {
			n := Cut(size, room)
			if size <= room || room < 2*MinPiece {
				if n != 0 {
					t.Fatalf("Cut(%d, %d) = %d, want 0: it fits", size, room, n)
				}
				continue
			}
			at := 0
			for i := range n {
				off, l, ok := Piece(size, n, i)
				if !ok || off != at || l < 1 || l > room || (i < n-1 && 2*l < room) {
					t.Fatalf("Cut(%d, %d) = %d: piece %d at %d, %d bytes, ok %v; want at %d, 1..%d bytes", size, room, n, i, off, l, ok, at, room)
				}
				at += l
			}
			if at != size {
				t.Fatalf("Cut(%d, %d) = %d pieces cover %d bytes", size, room, n, at)
			}
		}
	}
	for _, c := range []struct{ size, count, index int }{{5, 4, 0}, {1000, 1, 0}, {1000, 3, 3}, {1000, 3, -1}, {-1, 2, 0}, {2, 3, 0}, {100, 2, 0}, {193, 4, 0}} {
		if _, _, ok := Piece(c.size, c.count, c.index); ok {
			t.Errorf("Piece(%d, %d, %d) ok, want refused", c.size, c.count, c.index)
		}
	}
}

// TestRoundTrip encodes a datagram of both record types and decodes it.
func TestRoundTrip(t *testing.T) {
	b := AppendHeader(nil, 42, 7)
	b = AppendMessage(b, "a/b", []byte{0x91, 0x01})
	b = append(AppendFragmentHeader(b, "big", 3, 1, 2, 200, 100), make([]byte, 100)...)
	h, rs, err := ParseHeader(b)
	if err != nil || h.Sender != 42 || h.Seq != 7 {
		t.Fatalf("ParseHeader: %+v, %v", h, err)
	}
	SetSeq(b, 8)
	if h, _, _ := ParseHeader(b); h.Seq != 8 {
		t.Fatalf("SetSeq: seq %d", h.Seq)
	}
	r, rs, err := Next(rs)
	if err != nil || string(r.Topic) != "a/b" || !bytes.Equal(r.Payload, []byte{0x91, 0x01}) || r.IsFragment() {
		t.Fatalf("first record %+v, %v", r, err)
	}
	r, rs, err = Next(rs)
	if err != nil || !r.IsFragment() || r.Message != 3 || r.Index != 1 || r.Count != 2 || r.Size != 200 || len(r.Payload) != 100 || len(rs) != 0 {
		t.Fatalf("second record %+v, rest %d, %v", r, len(rs), err)
	}
	if !errors.Is(ErrPiece, wire.ErrMalformed) || errors.Is(ErrUnsupported, wire.ErrMalformed) {
		t.Fatal("format errors must match wire.ErrMalformed, and only they")
	}
}

// FuzzDecode decodes arbitrary datagrams as a receiver does: it must
// never panic, every record it accepts must re-encode to its own bytes,
// and every fragment must lie inside its message.
func FuzzDecode(f *testing.F) {
	f.Add(AppendMessage(AppendHeader(nil, 1, 0), "t", []byte{1}))
	f.Add(append(AppendFragmentHeader(AppendHeader(nil, 1, 0), "t", 0, 1, 2, 130, 65), make([]byte, 65)...))
	f.Add([]byte{Magic, Version})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, records, err := ParseHeader(b)
		if err != nil {
			return
		}
		for len(records) > 0 {
			r, rest, err := Next(records)
			if rest == nil {
				return
			}
			if err == nil {
				var enc []byte
				if r.IsFragment() {
					off, n, ok := Piece(r.Size, r.Count, r.Index)
					if !ok || n != len(r.Payload) || off+n > r.Size {
						t.Fatalf("accepted fragment %+v out of its message", r)
					}
					enc = append(AppendFragmentHeader(nil, string(r.Topic), r.Message, r.Index, r.Count, r.Size, len(r.Payload)), r.Payload...)
				} else {
					enc = AppendMessage(nil, string(r.Topic), r.Payload)
				}
				if !bytes.Equal(enc, records[:len(records)-len(rest)]) {
					t.Fatalf("record %+v re-encodes to %x, was %x", r, enc, records[:len(records)-len(rest)])
				}
			}
			records = rest
		}
	})
}

func BenchmarkNext(b *testing.B) {
	d := AppendHeader(nil, 1, 0)
	for range 16 {
		d = AppendMessage(d, "bench/topic", make([]byte, 64))
	}
	b.SetBytes(int64(len(d)))
	for b.Loop() {
		_, rs, _ := ParseHeader(d)
		for len(rs) > 0 {
			_, rs, _ = Next(rs)
		}
	}
}
