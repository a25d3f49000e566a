package relay

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/mcl-go/mcl/internal/sock"
	"github.com/mcl-go/mcl/sandbox"
)

func TestMain(m *testing.M) {
	if _, err := sandbox.Enter(); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox:", err)
	}
	os.Exit(m.Run())
}

// TestDraw checks that fates come from the seed alone, in the shares
// asked for.
func TestDraw(t *testing.T) {
	f := Faults{Loss: 0.1, Duplicate: 0.2, Delay: 0.3, Seed: 9}
	draw := func() []Fate {
		r := &Relay{faults: f, rng: rand.New(rand.NewPCG(f.Seed, 0x6d636c))}
		fates := make([]Fate, 100000)
		for i := range fates {
			fates[i] = r.draw()
		}
		return fates
	}
	a, b := draw(), draw()
	counts := map[Fate]int{}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("fate %d differs between two draws with one seed", i)
		}
		counts[a[i]]++
	}
	for fate, share := range map[Fate]float64{Lost: 0.1, Duplicated: 0.2, Delayed: 0.3, Forwarded: 0.4} {
		if got := float64(counts[fate]) / float64(len(a)); got < share-0.01 || got > share+0.01 {
			t.Errorf("%v: %.3f of datagrams, want %.2f", fate, got, share)
		}
	}
}

func TestStartBadFaults(t *testing.T) {
	for _, f := range []Faults{{Loss: -0.1}, {Delay: 1.5}, {Loss: 0.6, Duplicate: 0.5}} {
		if _, err := Start(netip.AddrPort{}, netip.AddrPort{}, nil, f); !errors.Is(err, ErrBadFaults) {
			t.Errorf("%+v: %v, want ErrBadFaults", f, err)
		}
	}
}

// TestOutcome counts by hand what a relay's log means for a workload of
// four messages.
func TestOutcome(t *testing.T) {
	w := NewWorkload(1, 4, 2)
	if w.Datagrams() != 8 {
		t.Fatalf("%d datagrams, want 8", w.Datagrams())
	}
	if _, err := w.Outcome(Log{Fates: make([]Fate, 7)}, time.Second); err == nil {
		t.Error("Outcome with a fate missing: no error")
	}
	if _, err := w.Outcome(Log{Fates: make([]Fate, 8), Held: make([]time.Duration, 8), Sent: []int{0, 1, 2}}, time.Second); err == nil {
		t.Error("Outcome with datagrams not sent yet: no error")
	}
	// Message 0 lost whole; 1 duplicated; 2's first piece held past its
	// second and 3's first: 2 crossed, 3 whole.
	fates := []Fate{Lost, Lost, Duplicated, Forwarded, Delayed, Forwarded, Forwarded, Forwarded}
	held := []time.Duration{0, 0, 0, 0, 3 * time.Millisecond, 0, 0, 0}
	sent := []int{2, 2, 3, 5, 6, 4, 7}
	o, err := w.Outcome(Log{Fates: fates, Held: held, Sent: sent}, time.Second)
	if want := (Outcome{Arrived: 3, Intact: 2, Disturbed: 1}); err != nil || o != want {
		t.Errorf("Outcome = %+v, %v; want %+v", o, err, want)
	}
	// Held in order but longer than the gap, it disturbs its message too.
	sent = []int{2, 2, 3, 4, 5, 6, 7}
	o, err = w.Outcome(Log{Fates: fates, Held: held, Sent: sent}, 2*time.Millisecond)
	if want := (Outcome{Arrived: 3, Intact: 2, Disturbed: 1}); err != nil || o != want {
		t.Errorf("held past the gap: Outcome = %+v, %v; want %+v", o, err, want)
	}
	if i := w.Index(w.Payloads[1]); i != 1 {
		t.Errorf("Index of payload 1 = %d", i)
	}
	if i := w.Index([]byte{0xc0}); i != -1 {
		t.Errorf("Index of another payload = %d", i)
	}
}

// TestRelay forwards datagrams through a relay that loses and duplicates
// them, and checks that what arrives is what its fates say.
func TestRelay(t *testing.T) {
	n := sandbox.Require(t)
	ifi, err := net.InterfaceByName(n.Iface)
	if err != nil {
		t.Fatal(err)
	}
	from := netip.MustParseAddrPort("[ff15::6d63:6c72]:26910")
	to := netip.MustParseAddrPort("[ff15::6d63:6c72]:26911")
	r, err := Start(from, to, ifi, Faults{Loss: 0.2, Duplicate: 0.2, Delay: 0.2, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	in, err := sock.Listen(sock.Config{Group: to, Interface: ifi, ReadBuffer: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := sock.Dial(sock.Config{Group: from, Interface: ifi, Hops: 1, Loopback: true})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	const sent = 200
	for i := range sent {
		if err := out.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	ms := make([]sock.Message, 16)
	for i := range ms {
		ms[i].Buf = make([]byte, 65536)
	}
	got := map[byte]int{}
	for {
		in.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		k, err := in.ReadBatch(ms)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms[:k] {
			got[m.Buf[0]]++
		}
	}
	fates := r.Log().Fates
	if len(fates) != sent {
		t.Fatalf("relay saw %d datagrams of %d", len(fates), sent)
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	for i, f := range fates {
		want := map[Fate]int{Forwarded: 1, Lost: 0, Duplicated: 2, Delayed: 1}[f]
		if got[byte(i)] != want {
			t.Errorf("datagram %d, %v, arrived %d times", i, f, got[byte(i)])
		}
	}
	if err := r.Close(); err != nil {
		t.Error(err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
