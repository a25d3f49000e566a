package netfault

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/mcl-go/mcl/sandbox"
)

// Every test sends only from a socket whose multicast interface is a
// sandbox link named explicitly, after sandbox.Require: nothing is ever
// sent on a host interface.

// family is IPv4 or IPv6 with the group the tests use.
type family struct {
	name    string
	network string // "udp4" or "udp6"
	group   netip.Addr
}

var families = []family{
	{"IPv4", "udp4", netip.MustParseAddr("239.192.0.52")},
	{"IPv6", "udp6", netip.MustParseAddr("ff15::1234")},
}

// sent is how many datagrams a flow sends.
const sent = 2000

// A route says how datagrams travel from sender to receiver.
type route struct {
	name     string
	sendIf   string // the sender's multicast interface
	loopback bool   // the sender's multicast loopback
	joinIf   string // where the receiver joins the group
}

// routes of the sandbox: which copy of a datagram the receiver gets, and
// the interface whose rule drops it (see the package documentation).
func routes(n *sandbox.Network) []struct {
	route
	ruleIf string
} {
	return []struct {
		route
		ruleIf string
	}{
		// mcl's default: the loopback copy, seen on the sending interface.
		{route{"loopback", n.Iface, true, n.Iface}, n.Iface},
		// the copy that crossed the veth pair, seen on the peer.
		{route{"peer", n.Iface, false, n.Peer}, n.Peer},
	}
}

// result is what a flow of datagrams came to.
type result struct {
	received   int    // distinct datagrams the receiver got
	duplicates int    // datagrams it got more than once
	overflow   uint32 // datagrams its socket dropped for a full buffer (SO_RXQ_OVFL)
	dropped    uint64 // Dropped() of the rule
}

// flow sends `sent` numbered datagrams along rt to a receiver, installing
// the rule that install returns (given the receiver's port) first, and
// returns what came of it once every datagram is accounted for (received
// or dropped by the rule), or after a timeout.
func flow(t *testing.T, fam family, rt route, install func(port uint16) *Rule) result {
	t.Helper()
	rc := listen(t, fam, rt.joinIf)
	port := uint16(rc.LocalAddr().(*net.UDPAddr).Port)
	rule := install(port)
	sc := dial(t, fam, rt.sendIf, rt.loopback)

	type got struct {
		seen       []bool
		duplicates int
		overflow   uint32
		received   int
	}
	progress := make(chan int, 1)
	done := make(chan got, 1)
	go func() {
		g := got{seen: make([]bool, sent)}
		buf := make([]byte, 64)
		oob := make([]byte, 128)
		for {
			n, oobn, _, _, err := rc.ReadMsgUDP(buf, oob)
			if err != nil {
				done <- g // closed
				return
			}
			if n != 4 {
				continue
			}
			if o, ok := rxqOverflow(oob[:oobn]); ok {
				g.overflow = max(g.overflow, o)
			}
			seq := binary.BigEndian.Uint32(buf)
			if seq >= sent {
				continue
			}
			if g.seen[seq] {
				g.duplicates++
			} else {
				g.seen[seq] = true
				g.received++
			}
			select {
			case <-progress:
			default:
			}
			progress <- g.received
		}
	}()

	dst := &net.UDPAddr{IP: fam.group.AsSlice(), Port: int(port)}
	d := make([]byte, 4)
	for i := range sent {
		binary.BigEndian.PutUint32(d, uint32(i))
		if _, err := sc.WriteTo(d, dst); err != nil {
			t.Fatalf("sending datagram %d: %v", i, err)
		}
		// A modest pace, so that neither the receiver's buffer nor the
		// kernel's backlog overflows.
		if i%10 == 9 {
			time.Sleep(500 * time.Microsecond)
		}
	}

	// Wait until received + dropped is all that was sent, then a little
	// longer for anything extra (such as a second copy).
	received := 0
	deadline := time.After(10 * time.Second)
wait:
	for {
		dropped, err := rule.Dropped()
		if err != nil {
			t.Fatalf("Dropped: %v", err)
		}
		if uint64(received)+dropped >= sent {
			break
		}
		select {
		case received = <-progress:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			break wait
		}
	}
	time.Sleep(100 * time.Millisecond)
	rc.Close()
	g := <-done
	dropped, err := rule.Dropped()
	if err != nil {
		t.Fatalf("Dropped: %v", err)
	}
	return result{received: g.received, duplicates: g.duplicates, overflow: g.overflow, dropped: dropped}
}

// listen opens a receiver bound to the group and an ephemeral port, joined
// on the named interface, reporting its buffer overflows (SO_RXQ_OVFL).
func listen(t *testing.T, fam family, ifname string) *net.UDPConn {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var err error
		cerr := rc.Control(func(fd uintptr) {
			err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RXQ_OVFL, 1)
		})
		return errors.Join(cerr, err)
	}}
	pc, err := lc.ListenPacket(context.Background(), fam.network, netip.AddrPortFrom(fam.group, 0).String())
	if err != nil {
		t.Fatalf("listen on %s: %v", fam.group, err)
	}
	c := pc.(*net.UDPConn)
	t.Cleanup(func() { c.Close() })
	ifi := mustInterface(t, ifname)
	g := &net.UDPAddr{IP: fam.group.AsSlice()}
	if fam.group.Is4() {
		err = ipv4.NewPacketConn(c).JoinGroup(ifi, g)
	} else {
		err = ipv6.NewPacketConn(c).JoinGroup(ifi, g)
	}
	if err != nil {
		t.Fatalf("joining %s on %s: %v", fam.group, ifname, err)
	}
	return c
}

// dial opens a sender whose multicast interface is the named sandbox link,
// with hop limit 1 and multicast loopback as asked.
func dial(t *testing.T, fam family, ifname string, loopback bool) net.PacketConn {
	t.Helper()
	wildcard := "0.0.0.0:0"
	if fam.group.Is6() {
		wildcard = "[::]:0"
	}
	c, err := net.ListenPacket(fam.network, wildcard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ifi := mustInterface(t, ifname)
	if fam.group.Is4() {
		p := ipv4.NewPacketConn(c)
		err = errors.Join(p.SetMulticastInterface(ifi), p.SetMulticastTTL(1), p.SetMulticastLoopback(loopback))
	} else {
		p := ipv6.NewPacketConn(c)
		err = errors.Join(p.SetMulticastInterface(ifi), p.SetMulticastHopLimit(1), p.SetMulticastLoopback(loopback))
	}
	if err != nil {
		t.Fatalf("setting the sender up on %s: %v", ifname, err)
	}
	return c
}

func mustInterface(t *testing.T, name string) *net.Interface {
	t.Helper()
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		t.Fatalf("interface %s: %v", name, err)
	}
	return ifi
}

// rxqOverflow returns the drop count of SO_RXQ_OVFL in a datagram's
// control messages.
func rxqOverflow(oob []byte) (uint32, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_RXQ_OVFL && len(m.Data) >= 4 {
			return binary.NativeEndian.Uint32(m.Data), true
		}
	}
	return 0, false
}

// TestDropRandom drops 5 % of the datagrams a receiver would get, over
// IPv4 and IPv6, for the copy that loops back to the sending interface
// and for the copy that crosses the veth pair: every datagram is either
// received, once, or counted as dropped, and about 5 % are dropped.
func TestDropRandom(t *testing.T) {
	n := sandbox.Require(t)
	for _, fam := range families {
		for _, rt := range routes(n) {
			t.Run(fam.name+"/"+rt.name, func(t *testing.T) {
				res := flow(t, fam, rt.route, func(port uint16) *Rule {
					return DropRandom(t, rt.ruleIf, port, 5)
				})
				t.Logf("%s, rule on %s: received %d, dropped %d of %d", rt.name, rt.ruleIf, res.received, res.dropped, sent)
				if res.overflow != 0 || res.duplicates != 0 {
					t.Errorf("the receiver's buffer overflowed %d times and it got %d duplicates; want neither", res.overflow, res.duplicates)
				}
				if uint64(res.received)+res.dropped != sent {
					t.Errorf("received %d + dropped %d = %d, want %d", res.received, res.dropped, uint64(res.received)+res.dropped, sent)
				}
				if res.dropped < sent*2/100 || res.dropped > sent*9/100 {
					t.Errorf("dropped %d of %d, want 2 %% to 9 %%", res.dropped, sent)
				}
			})
		}
	}
}

// TestDropNone: with percent 0 the rule is installed and drops nothing.
func TestDropNone(t *testing.T) {
	n := sandbox.Require(t)
	for _, fam := range families {
		for _, rt := range routes(n) {
			t.Run(fam.name+"/"+rt.name, func(t *testing.T) {
				res := flow(t, fam, rt.route, func(port uint16) *Rule {
					return DropRandom(t, rt.ruleIf, port, 0)
				})
				if res.dropped != 0 || res.received != sent || res.duplicates != 0 || res.overflow != 0 {
					t.Errorf("%+v, want all %d received once and none dropped", res, sent)
				}
			})
		}
	}
}

// TestDropOtherCopy shows the trap the package documentation warns of: a
// rule on the interface the receiver's copy does not come in on drops, and
// counts, copies that no socket receives. Here the receiver gets the
// loopback copy (seen on the sending interface, mcl0) and the rule, on
// mcl1, drops all the copies that crossed the pair.
func TestDropOtherCopy(t *testing.T) {
	n := sandbox.Require(t)
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			rt := route{"loopback", n.Iface, true, n.Iface}
			res := flow(t, fam, rt, func(port uint16) *Rule {
				return DropRandom(t, n.Peer, port, 100)
			})
			if res.received != sent || res.dropped != sent || res.duplicates != 0 || res.overflow != 0 {
				t.Errorf("%+v, want all %d received and all %d copies on %s dropped", res, sent, sent, n.Peer)
			}
		})
	}
}

// TestCleanup checks that the rule's table exists while the test runs and
// is gone after it, and that Dropped then reports the last count.
func TestCleanup(t *testing.T) {
	n := sandbox.Require(t)
	var (
		r     *Rule
		table string
	)
	t.Run("install", func(t *testing.T) {
		r = DropRandom(t, n.Iface, 9, 100)
		table = r.table.Name
		if !slices.Contains(inetTables(t), table) {
			t.Fatalf("table inet %s not listed after DropRandom", table)
		}
		// Something for the counter, sent to port 9 (discard) over
		// the loopback path of the sandbox link.
		c := dial(t, families[0], n.Iface, true)
		listen(t, families[0], n.Iface) // a member on mcl0, so the copy loops back
		for range 3 {
			if _, err := c.WriteTo([]byte("x"), &net.UDPAddr{IP: families[0].group.AsSlice(), Port: 9}); err != nil {
				t.Fatal(err)
			}
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			d, err := r.Dropped()
			if err != nil {
				t.Fatal(err)
			}
			if d == 3 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Dropped = %d, want 3", d)
			}
			time.Sleep(time.Millisecond)
		}
	})
	if r == nil {
		t.FailNow()
	}
	if slices.Contains(inetTables(t), table) {
		t.Errorf("table inet %s still listed after the test finished", table)
	}
	if d, err := r.Dropped(); d != 3 || err != nil {
		t.Errorf("after removal Dropped = %d, %v; want 3, nil", d, err)
	}
}

func inetTables(t *testing.T) []string {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	ts, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tb := range ts {
		names = append(names, tb.Name)
	}
	return names
}

// fakeTB records Fatalf and Skipf, which end the goroutine as they do in
// a test, and passes everything else to the test.
type fakeTB struct {
	testing.TB
	fatal, skip string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (f *fakeTB) Skipf(format string, args ...any) {
	f.skip = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// TestRefuses checks that DropRandom fails, installing nothing, outside the
// sandbox and when given nonsense.
func TestRefuses(t *testing.T) {
	n := sandbox.Require(t)
	before := inetTables(t)
	call := func(iface string, port uint16, percent int) *fakeTB {
		f := &fakeTB{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			DropRandom(f, iface, port, percent)
		}()
		<-done
		return f
	}
	for _, c := range []struct {
		name    string
		iface   string
		port    uint16
		percent int
		want    string
	}{
		{"percent below", n.Iface, 1234, -1, "drop percentage -1"},
		{"percent above", n.Iface, 1234, 101, "drop percentage 101"},
		{"port 0", n.Iface, 0, 5, "port 0"},
		{"no such interface", "nosuch0", 1234, 5, `interface "nosuch0"`},
	} {
		if f := call(c.iface, c.port, c.percent); !strings.Contains(f.fatal, c.want) {
			t.Errorf("%s: Fatalf(%q), want it to say %q", c.name, f.fatal, c.want)
		}
	}
	t.Run("outside", func(t *testing.T) {
		t.Setenv("MCL_SANDBOX", "") // as if outside
		if f := call(n.Iface, 1234, 5); !strings.Contains(f.fatal, "refusing") {
			t.Errorf("outside the sandbox: Fatalf(%q), want a refusal", f.fatal)
		}
	})
	if after := inetTables(t); !slices.Equal(before, after) {
		t.Errorf("tables inet %v before, %v after", before, after)
	}
}
