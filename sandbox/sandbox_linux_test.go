package sandbox

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestNetworkValues(t *testing.T) {
	n := Require(t)
	want := Network{
		Iface: "mcl0", Peer: "mcl1",
		Addr4: netip.MustParseAddr("198.18.0.1"), PeerAddr4: netip.MustParseAddr("198.18.0.2"),
		Addr6: netip.MustParseAddr("fd6d:636c::1"), PeerAddr6: netip.MustParseAddr("fd6d:636c::2"),
		MTU: n.MTU,
	}
	if *n != want {
		t.Errorf("network = %+v, want %+v", *n, want)
	}
	if !Inside() {
		t.Error("Inside() = false in the sandbox")
	}
	// 60000-byte datagrams must fit without fragmentation.
	if n.MTU < 60000+40+8 {
		t.Errorf("MTU = %d, too small for 60000-byte datagrams", n.MTU)
	}
	t.Logf("MTU %d", n.MTU)
	if again, err := Enter(); err != nil || again != n {
		t.Errorf("Enter again = %v, %v; want the same network", again, err)
	}
}

func TestInterfaces(t *testing.T) {
	n := Require(t)
	checkInterfaces(t, n)
}

// checkInterfaces checks that lo, mcl0 and mcl1 are up and have the
// addresses, none of them tentative.
func checkInterfaces(t *testing.T, n *Network) {
	t.Helper()
	lo := mustInterface(t, "lo")
	if lo.Flags&net.FlagUp == 0 {
		t.Error("lo is down")
	}
	for _, want := range []struct {
		name   string
		a4, a6 netip.Addr
	}{
		{n.Iface, n.Addr4, n.Addr6},
		{n.Peer, n.PeerAddr4, n.PeerAddr6},
	} {
		ifi := mustInterface(t, want.name)
		if ifi.Flags&net.FlagUp == 0 || ifi.Flags&net.FlagMulticast == 0 {
			t.Errorf("%s flags = %v, want up and multicast", want.name, ifi.Flags)
		}
		if ifi.MTU != n.MTU {
			t.Errorf("%s MTU = %d, want %d", want.name, ifi.MTU, n.MTU)
		}
		l, err := netlink.LinkByName(want.name)
		if err != nil {
			t.Fatal(err)
		}
		if l.Type() != "veth" {
			t.Errorf("%s is a %s, want veth", want.name, l.Type())
		}
		if l.Attrs().OperState != netlink.OperUp {
			t.Errorf("%s operstate = %v, want up", want.name, l.Attrs().OperState)
		}
		addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		linkLocal := false
		for _, a := range addrs {
			got = append(got, a.IPNet.String())
			if a.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) != 0 {
				t.Errorf("%s: address %v is tentative (flags %#x)", want.name, a.IPNet, a.Flags)
			}
			linkLocal = linkLocal || a.IP.IsLinkLocalUnicast()
		}
		for _, w := range []string{
			netip.PrefixFrom(want.a4, 24).String(),
			netip.PrefixFrom(want.a6, 64).String(),
		} {
			if !slices.Contains(got, w) {
				t.Errorf("%s addresses = %v, want %s among them", want.name, got, w)
			}
		}
		if !linkLocal {
			t.Errorf("%s has no IPv6 link-local address: %v", want.name, got)
		}
	}
	if l, err := netlink.LinkByName(n.Iface); err == nil {
		if p, err := netlink.LinkByName(n.Peer); err == nil {
			if l.Attrs().ParentIndex != p.Attrs().Index {
				t.Errorf("%s's peer is link %d, want %s (%d)", n.Iface, l.Attrs().ParentIndex, n.Peer, p.Attrs().Index)
			}
		}
	}
}

func TestSysctls(t *testing.T) {
	n := Require(t)
	for key, want := range map[string]string{
		"ipv4/conf/all/rp_filter":                "0",
		"ipv4/conf/default/rp_filter":            "0",
		"ipv4/conf/" + n.Iface + "/rp_filter":    "0",
		"ipv4/conf/" + n.Peer + "/rp_filter":     "0",
		"ipv4/conf/all/accept_local":             "1",
		"ipv4/conf/default/accept_local":         "1",
		"ipv4/conf/" + n.Iface + "/accept_local": "1",
		"ipv4/conf/" + n.Peer + "/accept_local":  "1",
		"ipv6/conf/" + n.Iface + "/disable_ipv6": "0",
		"ipv6/conf/" + n.Peer + "/disable_ipv6":  "0",
		"ipv6/conf/" + n.Iface + "/accept_dad":   "0",
		"ipv6/conf/" + n.Peer + "/accept_dad":    "0",
	} {
		b, err := os.ReadFile("/proc/sys/net/" + key)
		if err != nil {
			t.Error(err)
			continue
		}
		if got := strings.TrimSpace(string(b)); got != want {
			t.Errorf("net.%s = %s, want %s", strings.ReplaceAll(key, "/", "."), got, want)
		}
	}
}

// TestPrivate checks that the namespace is not the host's: only lo and the
// sandbox links are there (a fresh namespace may also hold fallback tunnel
// devices, which are down and have no addresses).
func TestPrivate(t *testing.T) {
	n := Require(t)
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ifi := range ifs {
		names = append(names, ifi.Name)
		switch ifi.Name {
		case "lo", n.Iface, n.Peer:
			continue
		}
		addrs, _ := ifi.Addrs()
		if ifi.Flags&net.FlagUp != 0 || len(addrs) > 0 {
			t.Errorf("interface %s (flags %v, addresses %v) is not the sandbox's", ifi.Name, ifi.Flags, addrs)
		}
	}
	t.Logf("interfaces: %v", names)
	for _, want := range []string{"lo", n.Iface, n.Peer} {
		if !slices.Contains(names, want) {
			t.Errorf("interfaces = %v, want %s among them", names, want)
		}
	}

	m, err := parseMarker(os.Getenv(markerEnv))
	if err != nil {
		t.Fatal(err)
	}
	id, err := netnsID()
	if err != nil {
		t.Fatal(err)
	}
	if id == m.outer {
		t.Errorf("network namespace %s is the one Enter started from", id)
	}
	// As root without a user namespace, init's namespace is visible.
	var init, self unix.Stat_t
	if unix.Stat("/proc/1/ns/net", &init) == nil && unix.Stat("/proc/self/ns/net", &self) == nil {
		if init.Ino == self.Ino && init.Dev == self.Dev {
			t.Error("the process is in init's network namespace")
		}
	}
}

func TestRoutes(t *testing.T) {
	n := Require(t)
	idx := mustInterface(t, n.Iface).Index
	for _, fam := range families {
		routes, err := netlink.RouteGet(fam.group.AsSlice())
		if err != nil {
			t.Fatal(err)
		}
		if len(routes) == 0 || routes[0].LinkIndex != idx {
			t.Errorf("route to %s = %v, want dev %s (%d)", fam.group, routes, n.Iface, idx)
		}
	}
}

// TestLoopback: a socket joined on mcl0 receives a datagram sent out of
// mcl0 with multicast loopback on.
func TestLoopback(t *testing.T) {
	n := Require(t)
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			r := listen(t, fam, 0, sockOpts{})
			r.join(t, n.Iface)
			s := newSender(t, n, fam, n.Iface, true)
			msg := nonce()
			s.send(t, r.port(), msg)
			dg := r.readPayload(t, msg)
			if want := mustInterface(t, n.Iface).Index; dg.ifindex != want {
				t.Errorf("received on interface %d, want %s (%d)", dg.ifindex, n.Iface, want)
			}
			if want := srcAddr(n, fam, n.Iface); dg.src != want {
				t.Errorf("source = %s, want %s", dg.src, want)
			}
			if dg.dst != fam.group {
				t.Errorf("destination = %s, want %s", dg.dst, fam.group)
			}
		})
	}
}

// TestAcrossVeth: a socket joined on mcl1 receives a datagram sent out of
// mcl0 with loopback off, so the datagram really crossed the pair. The
// sender does not choose an interface in the "default route" case, which
// checks that multicast leaves through mcl0 by default.
func TestAcrossVeth(t *testing.T) {
	n := Require(t)
	for _, fam := range families {
		for _, ifname := range []string{n.Iface, ""} {
			name := fam.name + "/" + ifname
			if ifname == "" {
				name = fam.name + "/default_route"
			}
			t.Run(name, func(t *testing.T) {
				r := listen(t, fam, 0, sockOpts{})
				r.join(t, n.Peer)
				s := newSender(t, n, fam, ifname, false)
				msg := nonce()
				s.send(t, r.port(), msg)
				dg := r.readPayload(t, msg)
				if want := mustInterface(t, n.Peer).Index; dg.ifindex != want {
					t.Errorf("received on interface %d, want %s (%d)", dg.ifindex, n.Peer, want)
				}
				if want := srcAddr(n, fam, n.Iface); dg.src != want {
					t.Errorf("source = %s, want %s (sent out of %s)", dg.src, want, n.Iface)
				}
			})
		}
	}
}

// TestBigDatagram: a 60000-byte datagram crosses the pair unfragmented
// (don't-fragment is set, so a datagram over the MTU would fail to send).
func TestBigDatagram(t *testing.T) {
	n := Require(t)
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			r := listen(t, fam, 0, sockOpts{})
			r.join(t, n.Peer)
			s := newSender(t, n, fam, n.Iface, false)
			rc, err := s.c.SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			var serr error
			rc.Control(func(fd uintptr) {
				if fam.group.Is4() {
					serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO)
				} else {
					serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_DONTFRAG, 1)
				}
			})
			if serr != nil {
				t.Fatal(serr)
			}
			msg := nonce() + strings.Repeat("x", 60000-len(nonce()))
			s.send(t, r.port(), msg)
			dg := r.readPayload(t, msg)
			if len(dg.payload) != 60000 {
				t.Errorf("received %d bytes, want 60000", len(dg.payload))
			}
			// Over the MTU, the send must fail rather than fragment: this
			// shows don't-fragment is in force.
			over := strings.Repeat("y", n.MTU)
			if _, err := s.c.WriteTo([]byte(over), &net.UDPAddr{IP: fam.group.AsSlice(), Port: r.port()}); !errors.Is(err, unix.EMSGSIZE) {
				t.Errorf("sending %d bytes with don't-fragment: err = %v, want EMSGSIZE", len(over), err)
			}
		})
	}
}

func srcAddr(n *Network, fam family, ifname string) netip.Addr {
	switch {
	case fam.group.Is4() && ifname == n.Iface:
		return n.Addr4
	case fam.group.Is4():
		return n.PeerAddr4
	case ifname == n.Iface:
		return n.Addr6
	default:
		return n.PeerAddr6
	}
}

// TestDuplicateDelivery finds out how often a receiver gets a datagram sent
// out of mcl0. Both ends of the pair are in this namespace: a datagram sent
// with loopback on comes back once through loopback (as if received on
// mcl0) and once more off the wire on mcl1, where it is delivered if any
// socket joined the group on mcl1. The kernel's behaviour is logged; what
// the package documentation promises is asserted.
func TestDuplicateDelivery(t *testing.T) {
	n := Require(t)
	type result struct{ a, b int }
	for _, fam := range families {
		for _, c := range []struct {
			name    string
			loop    bool
			peerToo bool // a second socket B joins on mcl1
			opts    func(ifname string) sockOpts
			want    *result // asserted if not nil
		}{
			{"loop/only_mcl0_joined", true, false, func(string) sockOpts { return sockOpts{} }, &result{1, 0}},
			{"loop/both_joined", true, true, func(string) sockOpts { return sockOpts{} }, nil},
			{"loop/both_joined/multicast_all_0", true, true, func(string) sockOpts { return sockOpts{noMulticastAll: true} }, nil},
			{"loop/both_joined/bindtodevice", true, true, func(ifname string) sockOpts { return sockOpts{noMulticastAll: true, bindToDevice: ifname} }, &result{1, 1}},
			{"noloop/both_joined", false, true, func(string) sockOpts { return sockOpts{} }, nil},
			{"noloop/both_joined/multicast_all_0", false, true, func(string) sockOpts { return sockOpts{noMulticastAll: true} }, nil},
			{"noloop/both_joined/bindtodevice", false, true, func(ifname string) sockOpts { return sockOpts{noMulticastAll: true, bindToDevice: ifname} }, &result{0, 1}},
		} {
			t.Run(fam.name+"/"+c.name, func(t *testing.T) {
				a := listen(t, fam, 0, c.opts(n.Iface))
				a.join(t, n.Iface)
				// The fence is seen by every receiver: it goes to a
				// socket on mcl1 too, so it crosses the pair after the
				// datagram.
				var b *receiver
				if c.peerToo {
					b = listen(t, fam, a.port(), c.opts(n.Peer))
					b.join(t, n.Peer)
				}
				s := newSender(t, n, fam, n.Iface, c.loop)
				msg, fence := nonce(), nonce()
				s.send(t, a.port(), msg)
				fs := newSender(t, n, fam, n.Iface, true)
				fs.send(t, a.port(), fence)
				var got result
				got.a = a.count(t, msg, fence)
				if b != nil {
					got.b = b.count(t, msg, fence)
				}
				t.Logf("%s, loopback %v: socket joined on %s got %d, socket joined on %s got %d (peer socket: %v)",
					fam.name, c.loop, n.Iface, got.a, n.Peer, got.b, c.peerToo)
				if c.want != nil && got != *c.want {
					t.Errorf("got %+v copies, want %+v", got, *c.want)
				}
			})
		}
	}
}

// fakeTB records what Require does with it.
type fakeTB struct{ skipped, failed string }

func (f *fakeTB) Helper()                           {}
func (f *fakeTB) Skipf(format string, args ...any)  { f.skipped = format }
func (f *fakeTB) Fatalf(format string, args ...any) { f.failed = format }

func TestRequire(t *testing.T) {
	errNo := errors.New("no namespace for you")
	t.Run("skip", func(t *testing.T) {
		t.Setenv(requireEnv, "")
		var f fakeTB
		if n := require(&f, nil, errNo); n != nil || f.skipped == "" || f.failed != "" {
			t.Errorf("require = %v, skipped %q, failed %q; want a skip", n, f.skipped, f.failed)
		}
	})
	t.Run("fail", func(t *testing.T) {
		t.Setenv(requireEnv, "1")
		var f fakeTB
		if n := require(&f, nil, errNo); n != nil || f.failed == "" || f.skipped != "" {
			t.Errorf("require = %v, skipped %q, failed %q; want a failure", n, f.skipped, f.failed)
		}
	})
	t.Run("ok", func(t *testing.T) {
		t.Setenv(requireEnv, "1")
		var f fakeTB
		want := newNetwork(1500)
		if n := require(&f, want, nil); n != want || f.failed != "" || f.skipped != "" {
			t.Errorf("require = %v, skipped %q, failed %q; want the network", n, f.skipped, f.failed)
		}
	})
}

func TestMarker(t *testing.T) {
	for _, s := range []string{"netns,1:2", "userns,3:4,3"} {
		m, err := parseMarker(s)
		if err != nil || m.String() != s {
			t.Errorf("parseMarker(%q) = %v, %v", s, m, err)
		}
	}
	for _, s := range []string{"", "1", "netns", "bogus,1:2", "netns,12", "netns,1:2,x", "netns,1:2,1", "netns,1:2,3,4"} {
		if _, err := parseMarker(s); err == nil {
			t.Errorf("parseMarker(%q) succeeded", s)
		}
	}
}

// TestSetUpRefusesOuterNamespace: with a marker naming the current
// namespace as the one Enter started from (a marker set by hand on the
// host), setUp refuses before touching anything. It runs in the sandbox
// all the same, in case it did not refuse.
func TestSetUpRefusesOuterNamespace(t *testing.T) {
	Require(t)
	id, err := netnsID()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := setUp(marker{kind: kindNetns, outer: id}); err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Errorf("setUp in the outer namespace: err = %v, want a refusal", err)
	}
}

func TestDiagnose(t *testing.T) {
	files := func(m map[string]string) func(string) ([]byte, error) {
		return func(p string) ([]byte, error) {
			if v, ok := m[p]; ok {
				return []byte(v + "\n"), nil
			}
			return nil, os.ErrNotExist
		}
	}
	base := map[string]string{"/proc/self/ns/user": "", "/proc/sys/user/max_user_namespaces": "1000"}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		m[k] = v
		return m
	}
	for _, c := range []struct {
		files map[string]string
		euid  int
		want  []string
	}{
		{with("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1"), 1000,
			[]string{"kernel.apparmor_restrict_unprivileged_userns=1", "run as root", "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"}},
		{with("/proc/sys/kernel/unprivileged_userns_clone", "0"), 1000,
			[]string{"kernel.unprivileged_userns_clone=0", "sysctl -w kernel.unprivileged_userns_clone=1"}},
		{with("/proc/sys/user/max_user_namespaces", "0"), 1000,
			[]string{"user.max_user_namespaces=0", "sysctl -w user.max_user_namespaces="}},
		{base, 0, []string{"seccomp", "SYS_ADMIN"}},
		{map[string]string{}, 1000, []string{"CONFIG_USER_NS"}},
	} {
		got := diagnose(files(c.files), c.euid)
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("diagnose(%v, euid %d) = %q, want it to mention %q", c.files, c.euid, got, w)
			}
		}
		if c.euid == 0 && strings.Contains(got, "run as root") {
			t.Errorf("diagnose as root = %q, tells root to run as root", got)
		}
	}
}
