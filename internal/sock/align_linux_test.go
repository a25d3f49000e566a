package sock

import (
	"bytes"
	"testing"
	"unsafe"
)

func TestBuffer(t *testing.T) {
	for _, n := range []int{1, 100, 5000, 70000} {
		b := Buffer(n)
		if len(b) != n || cap(b) != n {
			t.Errorf("Buffer(%d): len %d cap %d", n, len(b), cap(b))
		}
		if got := addr(b) % aliasPage; got != aliasGood {
			t.Errorf("Buffer(%d) starts at %d in its page; want %d", n, got, aliasGood)
		}
	}
}

func TestSlowCopy(t *testing.T) {
	page := Buffer(3 * aliasPage)
	base := aliasPage - aliasGood // page[base] starts a page
	for _, c := range []struct {
		off, at, n, drift int
		slow              bool
	}{
		{0, 0, 4096, 0, false},                    // same place: fast
		{0, 14, 4096, 0, true},                    // 14 bytes past: slow
		{0, 31, 4096, 0, true},                    // the measured window's end
		{0, aliasSlow, 4096, 0, false},            // past the window
		{0, 14, aliasMin - 1, 0, false},           // too short to matter
		{100, 100 + 20, 4096, 0, true},            // relative, not absolute
		{4000, 4000 + 30, 2000, 0, true},          // across a page
		{4000, (4000 + 30) % 4096, 2000, 0, true}, // the kernel's offset is within its page
		{20, 0, 4096, 0, false},                   // destination before the source: fast
		{0, 0, 4096, 512, true},                   // the kernel may write a little further in
		{20, 0, 4096, 512, true},                  // ... up to drift bytes
		{600, 0, 4096, 512, false},                // but not this far
		{0, 100, 4096, 512, false},                // too far past already
		{0, 2048, 4096, 512, false},               // half a page off: safe either way
	} {
		body := page[base+c.off : base+c.off+c.n]
		if got := slowCopy(body, c.at, c.drift); got != c.slow {
			t.Errorf("slowCopy(body at %d, kernel at %d, %d bytes, drift %d) = %v; want %v", c.off, c.at, c.n, c.drift, got, c.slow)
		}
	}
}

// TestDodge lays out a fragmented message whose payload starts a page, as
// large Go allocations do: the first pieces, behind headers of under 64
// bytes in all, would be copied slowly, and go out copied whole to a good
// place; the rest go out from where they lie.
func TestDodge(t *testing.T) {
	payload := Buffer(5*60000 + aliasPage)
	payload = payload[aliasPage-aliasGood : aliasPage-aliasGood] // starts a page
	for i := range 5 * 60000 {
		payload = append(payload, byte(i*7))
	}
	var heads, bodies [][]byte
	for i := range 5 {
		heads = append(heads, bytes.Repeat([]byte{byte('a' + i)}, 20))
		bodies = append(bodies, payload[i*60000:(i+1)*60000])
	}
	b := &batch{}
	// Bodies land 20, 40, 60, 80 and 100 bytes past their sources.
	if n := b.layout(heads, bodies, true); n != 3 {
		t.Fatalf("dodged %d datagrams; want 3", n)
	}
	at := 0
	for i := range heads {
		h := &b.hdrs[i].Hdr
		iov := unsafe.Slice(h.Iov, h.Iovlen)
		var got []byte
		for _, v := range iov {
			got = append(got, unsafe.Slice(v.Base, v.Len)...)
		}
		want := append(append([]byte(nil), heads[i]...), bodies[i]...)
		if !bytes.Equal(got, want) {
			t.Errorf("datagram %d: content differs", i)
		}
		if dodged := i < 3; dodged != (len(iov) == 1) {
			t.Errorf("datagram %d: %d iovecs", i, len(iov))
		} else if dodged && (at-int(uintptr(unsafe.Pointer(iov[0].Base))))&(aliasPage-1) != aliasGood {
			t.Errorf("datagram %d copied to a bad place", i)
		}
		at += len(want)
	}
	if n := b.layout(heads, bodies, false); n != 0 {
		t.Errorf("dodged %d datagrams when told not to", n)
	}
}
