package reassembly_test

import (
	"bytes"
	"testing"

	"github.com/mcl-go/mcl/internal/reassembly"
)

// TestAhead reads pieces straight into the regions Ahead gives, as a
// receiver with scattered reads does, and checks that the message comes
// out whole, that a region holding other bytes does no harm, and that
// Ahead declines whenever the pieces cannot go where it would say.
func TestAhead(t *testing.T) {
	r := reassembly.New(reassembly.Limits{})
	payload := payloadOfLen(5*reassembly.MTU+123, 1)
	frames := fragments(t, "cam", payload) // 6 pieces
	topic := []byte("cam")
	if n, into := r.Ahead(sender1, topic, 6, 1); n != 0 || into != nil {
		t.Fatalf("Ahead with no message held = %d, %d bytes", n, len(into))
	}
	// A first message leaves its buffer for reuse: room for the next.
	if got, err := feed(t, r, sender1, frames, []int{0, 1, 2, 3, 4, 5}); err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("first message: %v", err)
	}
	if _, err := r.Add(sender1, frames[0], t0); err != nil {
		t.Fatal(err)
	}
	if n, _ := r.Ahead(sender2, topic, 6, 1); n != 0 {
		t.Errorf("Ahead for another sender = %d", n)
	}
	if n, _ := r.Ahead(sender1, topic, 6, 6); n != 0 {
		t.Errorf("Ahead past the last piece = %d", n)
	}
	var regions [][]byte
	for k := 1; k <= 5; k++ {
		n, into := r.Ahead(sender1, topic, 6, k)
		if n != k+1 || len(into) < len(frames[n-1].Payload) {
			t.Fatalf("Ahead k=%d = piece %d, %d bytes; want piece %d", k, n, len(into), k+1)
		}
		regions = append(regions, into)
	}
	// Pieces 2 and 3 arrive where they were expected; the region of piece
	// 4 gets another datagram's bytes, and piece 4 comes later from a
	// buffer of its own, as does everything once that went wrong.
	for k, n := range []int{2, 3} {
		into := regions[k][:copy(regions[k], frames[n-1].Payload)]
		if _, err := r.Add(sender1, reassembly.Frame{Topic: topic, Payload: into, Index: n, Count: 6}, t0); err != nil {
			t.Fatal(err)
		}
	}
	copy(regions[2], bytes.Repeat([]byte{0xee}, len(regions[2])))
	if n, _ := r.Ahead(sender1, topic, 6, 1); n != 4 {
		t.Errorf("Ahead after pieces 1-3 = piece %d, want 4", n)
	}
	got, err := feed(t, r, sender1, frames, []int{3, 4, 5})
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("message read partly in place: %v, equal %v", err, bytes.Equal(got, payload))
	}

	// Once a piece is missing, the message is not assembled any more: it
	// declines.
	if _, err := r.Add(sender1, frames[0], t0); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Add(sender1, frames[2], t0); err != reassembly.ErrIncomplete {
		t.Fatalf("piece 3 after piece 1: %v, want ErrIncomplete", err)
	}
	if n, _ := r.Ahead(sender1, topic, 6, 1); n != 0 {
		t.Errorf("Ahead after a piece went missing = %d", n)
	}
}

// TestFirst reads the first piece of a message into the buffer First
// gives, before the message exists, and checks that Add takes that buffer
// without a copy, that the message comes out whole, and that First
// declines when Add would not take a spare for it.
func TestFirst(t *testing.T) {
	r := reassembly.New(reassembly.Limits{})
	payload := payloadOfLen(3*reassembly.MTU+77, 2)
	frames := fragments(t, "lidar", payload) // 4 pieces
	topic := []byte("lidar")
	size := len(frames[0].Payload)
	if into := r.First(sender1, topic, 4, size); into != nil {
		t.Fatalf("First with no spare buffer = %d bytes", len(into))
	}
	// A completed message leaves its buffer for reuse.
	if got, err := feed(t, r, sender1, frames, []int{0, 1, 2, 3}); err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("first message: %v", err)
	}
	for _, c := range []struct {
		count, size int
	}{{0, size}, {1, size}, {1 << 20, size}, {4, 0}, {4, reassembly.MTU + 1}} {
		if into := r.First(sender1, topic, c.count, c.size); into != nil {
			t.Errorf("First(count %d, size %d) = %d bytes; want nil", c.count, c.size, len(into))
		}
	}
	into := r.First(sender1, topic, 4, size)
	if len(into) != size {
		t.Fatalf("First = %d bytes; want %d", len(into), size)
	}
	// Piece 1 read there; the rest arrive as usual.
	f := frames[0]
	f.Payload = into[:copy(into, f.Payload)]
	if _, err := r.Add(sender1, f, t0); err != nil {
		t.Fatal(err)
	}
	if again := r.First(sender1, topic, 4, size); again != nil {
		t.Errorf("First for a message already begun = %d bytes", len(again))
	}
	got, err := feed(t, r, sender1, frames, []int{1, 2, 3})
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("message read from First's region: %v, equal %v", err, bytes.Equal(got, payload))
	}
	if &got[0] != &into[0] {
		t.Error("the message is not in the buffer First gave: piece 1 was copied")
	}
	// Another datagram's bytes in the region do no harm.
	r.Keep(got)
	r.Recycle(got)
	into = r.First(sender1, topic, 4, size)
	copy(into, bytes.Repeat([]byte{0xee}, len(into)))
	got, err = feed(t, r, sender1, frames, []int{0, 1, 2, 3})
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("message after garbage in First's region: %v", err)
	}
}
