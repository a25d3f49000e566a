package reassembly

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"
)

// FuzzReassemble reads its input as a stream of fragments from a few
// senders and topics and checks that the Reassembler never panics, stays
// within its limits and returns only valid payloads.
//
// Each fragment is 5 bytes, then a piece: ctl (bits 0-1 sender, bit 2
// topic, bits 3-4 seconds to advance the clock, bit 7 a full MTU piece
// filled with the length byte), n and N as signed bytes, a length byte,
// a fill byte; the piece is the next length bytes of input, or MTU fill
// bytes.
func FuzzReassemble(f *testing.F) {
	f.Add([]byte{0x00, 1, 2, 2, 0, 0x01, 0x00, 2, 2, 0, 0})
	f.Add([]byte{0x80, 1, 2, 0, 0, 0x00, 2, 2, 1, 0, 0x01})
	f.Add([]byte{0x81, 2, 3, 0, 0, 0x82, 1, 3, 0, 0, 0x01, 3, 3, 1, 0, 0xc0, 0x80, 1, 3, 0, 7})
	f.Add([]byte{0x00, 1, 1, 1, 0, 0x01, 0x18, 1, 1, 1, 0, 0x01, 0x00, 0, 0, 0, 0})
	f.Add([]byte{0x00, 0xff, 0x80, 1, 0, 0x00, 1, 0x7f, 1, 0, 0x00})
	// Messages of three 10-byte pieces (a bin8 of 28 bytes): the second
	// has pieces 2 and 3 read into place, after garbage in the region of
	// piece 2; the third and fourth have piece 1 read into place (First),
	// the fourth after garbage there.
	msg := func(ctl1, ctl2, ctl3 byte) []byte {
		b := append([]byte{ctl1, 1, 3, 10, 0, 0xc4, 28}, make([]byte, 8)...)
		b = append(append(b, ctl2, 2, 3, 10, 0), make([]byte, 10)...)
		return append(append(b, ctl3, 3, 3, 10, 0), make([]byte, 10)...)
	}
	f.Add(append(append(append(msg(0, 0, 0), msg(0, 0x60, 0x40)...), msg(0x40, 0x40, 0x40)...), msg(0x60, 0x40, 0)...))

	lim := Limits{MaxMessageBytes: 3 * MTU, MaxPendingBytes: 5 * MTU, MaxPending: 3, Timeout: 10 * time.Second}
	senders := []netip.AddrPort{
		netip.MustParseAddrPort("10.0.0.1:1000"),
		netip.MustParseAddrPort("10.0.0.1:1001"),
		netip.MustParseAddrPort("10.0.0.2:1000"),
		netip.MustParseAddrPort("[::1]:1000"),
	}
	topics := [][]byte{[]byte("a"), nil}
	full := make([]byte, MTU)
	lastFill := byte(0)

	f.Fuzz(func(t *testing.T, data []byte) {
		r, plain := New(lim), New(lim)
		now := time.Unix(1e9, 0)
		// 200 fragments are plenty to fill and churn 3 pending messages;
		// the cap keeps each run, and so minimisation, fast.
		for k := 0; k < 200 && len(data) >= 5; k++ {
			ctl, n, count, l, fill := data[0], int(int8(data[1])), int(int8(data[2])), int(data[3]), data[4]
			data = data[5:]
			var piece []byte
			if ctl&0x80 != 0 {
				if fill != lastFill {
					for i := range full {
						full[i] = fill
					}
					lastFill = fill
				}
				piece = full
			} else {
				l = min(l, len(data))
				piece, data = data[:l], data[l:]
			}
			now = now.Add(time.Duration(ctl>>3&3) * time.Second)
			src := senders[ctl&3]
			fr := Frame{Topic: topics[ctl>>2&1], Payload: piece, Index: n, Count: count}
			// The same fragment, read into place where Ahead offers a
			// region for it (bit 6), after another datagram's bytes
			// landed in the next region (bit 5), must come out as it
			// does from a Reassembler fed the usual way.
			// First's region for a message not begun is used, or
			// overwritten, the same way.
			placed := fr
			if ctl&0x20 != 0 {
				if _, into := r.Ahead(src, fr.Topic, count, 1); into != nil {
					clear(into)
				}
				clear(r.First(src, fr.Topic, count, MTU))
			}
			if ctl&0x40 != 0 {
				for k := 1; k <= 4; k++ {
					if m, into := r.Ahead(src, fr.Topic, count, k); m == n && len(piece) <= len(into) {
						placed.Payload = into[:copy(into, piece)]
						break
					}
				}
				if into := r.First(src, fr.Topic, count, len(piece)); n == 1 && into != nil {
					placed.Payload = into[:copy(into, piece)]
				}
			}
			want, werr := plain.Add(src, fr, now)
			out, err := r.Add(src, placed, now)
			if !bytes.Equal(out, want) || (out == nil) != (want == nil) || err != werr {
				t.Fatalf("fragment %d/%d: read into place gave %d bytes, %v; the usual way %d bytes, %v", n, count, len(out), err, len(want), werr)
			}
			if out != nil {
				if err != nil {
					t.Fatalf("Add returned a payload and %v", err)
				}
				if len(out) > lim.MaxMessageBytes {
					t.Fatalf("payload of %d bytes over MaxMessageBytes", len(out))
				}
				if rest, err := msgp.Skip(out); err != nil || len(rest) != 0 {
					t.Fatalf("returned payload is not one msgpack value")
				}
			}
			checkInvariants(t, r)
		}
	})
}

func checkInvariants(t *testing.T, r *Reassembler) {
	t.Helper()
	m, b := r.Pending()
	if m > r.lim.MaxPending || b > r.lim.MaxPendingBytes || r.total > r.lim.MaxPendingBytes {
		t.Fatalf("over limits: %d messages, %d bytes held, %d bytes total", m, b, r.total)
	}
	held, total := 0, 0
	for _, e := range r.active {
		if len(e.seen) != (e.count+63)/64 || e.index < 1 || e.index > e.count || !e.has(e.index) {
			t.Fatalf("bad entry: latest piece %d of %d, %d bitmap words", e.index, e.count, len(e.seen))
		}
		if !e.assembling {
			if e.buf != nil {
				t.Fatalf("entry not assembling holds a %d-byte buffer", cap(e.buf))
			}
			continue
		}
		held += len(e.buf)
		total += cap(e.buf)
		// Pieces 1..index, all of piece 1's length, and nothing else.
		if e.index >= e.count || len(e.buf) != e.index*e.size || e.last != e.size {
			t.Fatalf("bad entry: %d bytes for pieces 1..%d of %d bytes (latest %d), N = %d",
				len(e.buf), e.index, e.size, e.last, e.count)
		}
		for n := 1; n <= e.count; n++ {
			if e.has(n) != (n <= e.index) {
				t.Fatalf("bad entry: pieces 1..%d held, bit of piece %d is %v", e.index, n, e.has(n))
			}
		}
	}
	for _, s := range r.spare {
		total += cap(s)
	}
	if held != r.held || total != r.total {
		t.Fatalf("accounting: held %d (counted %d), total %d (counted %d)", r.held, held, r.total, total)
	}
	if len(r.active)+len(r.free) > r.lim.MaxPending || len(r.spare) > r.lim.MaxPending {
		t.Fatalf("%d entries, %d spare buffers: over MaxPending", len(r.active)+len(r.free), len(r.spare))
	}
}
