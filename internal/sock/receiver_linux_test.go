package sock

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"
	"unsafe"

	"github.com/mcl-go/mcl/sandbox"
	"golang.org/x/sys/unix"
)

// TestReceiverControl overflows a small receive buffer and reads what it
// kept: every datagram carries the kernel's drop count when it was queued,
// never falling, and kept plus dropped is what was sent; and its arrival
// time, within the time it was being sent.
func TestReceiverControl(t *testing.T) {
	r, s := pair(t, "[ff15::6d63:6c74]:26900", 1) // the kernel's least buffer

	ms := make([]Message, 8)
	for i := range ms {
		ms[i].Buf = make([]byte, 65536)
	}
	// Rounds of more than the buffer holds, each read until empty; a
	// last datagram alone, kept, says how many were dropped in all.
	seq, kept, last, lastSeq := 0, 0, uint32(0), -1
	d := make([]byte, 1000)
	for round := range 6 {
		burst := 50
		if round == 5 {
			burst = 1
		}
		before := time.Now()
		for range burst {
			binary.BigEndian.PutUint32(d, uint32(seq))
			seq++
			if err := s.Write(d); err != nil {
				t.Fatal(err)
			}
		}
		after := time.Now()
		for {
			r.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			got, err := r.ReadBatch(ms)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range ms[:got] {
				n := int(binary.BigEndian.Uint32(m.Buf))
				// The datagrams lost between two kept ones are exactly
				// the rise of the count.
				if m.Drops < last || n-lastSeq-1 != int(m.Drops-last) {
					t.Fatalf("datagram %d after %d: drop count %d after %d", n, lastSeq, m.Drops, last)
				}
				at := time.Unix(0, m.Stamp)
				if at.Before(before.Add(-time.Millisecond)) || at.After(after.Add(time.Millisecond)) {
					t.Errorf("datagram %d stamped %v, sent between %v and %v", n, at, before, after)
				}
				kept, last, lastSeq = kept+1, m.Drops, n
			}
		}
	}
	if last == 0 || lastSeq != seq-1 || kept+int(last) != seq {
		t.Errorf("kept %d, dropped %d, the last kept was %d of %d", kept, last, lastSeq, seq)
	}
	if r.KernelDrops() != uint64(last) {
		t.Errorf("KernelDrops = %d, want %d", r.KernelDrops(), last)
	}
}

// pair opens, in the sandbox network, a Receiver of group on its interface
// with a receive buffer of readBuffer bytes (0: the kernel's default), and
// a Sender to it, both closed with the test.
func pair(t *testing.T, group string, readBuffer int) (*Receiver, *Sender) {
	t.Helper()
	n := sandbox.Require(t)
	ifi, err := net.InterfaceByName(n.Iface)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Group: netip.MustParseAddrPort(group), Interface: ifi, Hops: 1, Loopback: true, ReadBuffer: readBuffer}
	r, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	s, err := Dial(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return r, s
}

// TestParseControl reads control messages laid out by hand, as the kernel
// does, including ones it does not know and a truncated one.
func TestParseControl(t *testing.T) {
	cmsg := func(level, typ int32, data []byte) []byte {
		b := make([]byte, unix.CmsgSpace(len(data)))
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
		h.Level, h.Type = level, typ
		h.SetLen(unix.CmsgLen(len(data)))
		copy(b[unix.CmsgLen(0):], data)
		return b
	}
	drops := binary.NativeEndian.AppendUint32(nil, 42)
	ts := binary.NativeEndian.AppendUint64(binary.NativeEndian.AppendUint64(nil, 3), 4)
	both := append(cmsg(unix.SOL_SOCKET, unix.SO_RXQ_OVFL, drops), cmsg(unix.SOL_SOCKET, unix.SO_TIMESTAMPNS_NEW, ts)...)
	for _, tc := range []struct {
		name  string
		oob   []byte
		drops uint32
		stamp int64
	}{
		{"none", nil, 0, 0},
		{"both", both, 42, 3e9 + 4},
		{"other level first", append(cmsg(unix.IPPROTO_IPV6, unix.SO_RXQ_OVFL, drops), cmsg(unix.SOL_SOCKET, unix.SO_TIMESTAMPNS_NEW, ts)...), 0, 3e9 + 4},
		{"truncated", both[:len(both)-8], 42, 0},
	} {
		d, s, _ := parseControl(tc.oob)
		if d != tc.drops || s != tc.stamp {
			t.Errorf("%s: parseControl = %d, %d; want %d, %d", tc.name, d, s, tc.drops, tc.stamp)
		}
	}
}

// TestSpinningRead reads a datagram with a spinning Receiver whose clock
// moves a microsecond a look, then reads an empty socket: the read tries
// again exactly until the spin has passed since the datagram, 99 times
// for 100 µs, and then waits as any read does, until its deadline.
// Without spin it waits at once.
func TestSpinningRead(t *testing.T) {
	for _, spin := range []time.Duration{0, 100 * time.Microsecond} {
		r, s := pair(t, "[ff15::6d63:6c74]:26903", 0)
		fake := time.Unix(1000, 0)
		r.io.spin.spin = spin // set here, whatever the CPUs (see TestSpinWhereItPays)
		r.io.spin.now = func() time.Time {
			fake = fake.Add(time.Microsecond)
			return fake
		}
		ms := []Message{{Buf: make([]byte, 65536)}}
		if err := s.Write([]byte("spin")); err != nil {
			t.Fatal(err)
		}
		r.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := r.ReadBatch(ms); n != 1 || err != nil {
			t.Fatalf("spin %v: read %d datagrams, %v", spin, n, err)
		}
		r.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if _, err := r.ReadBatch(ms); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("spin %v: reading an empty socket: %v, want the deadline's error", spin, err)
		}
		if want := uint64(max(spin/time.Microsecond-1, 0)); r.io.spin.spins != want {
			t.Errorf("spin %v: tried again %d times, want %d", spin, r.io.spin.spins, want)
		}
		r.Close()
		s.Close()
	}
}
