package sandbox

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Destinations used to check that multicast leaves through Iface.
var (
	checkGroup4 = net.ParseIP("239.192.0.1")
	checkGroup6 = net.ParseIP("ff15::1")
)

// setUp sets the sandbox network up in the current network namespace, or,
// if a process of this sandbox already did, checks it and returns it. It
// refuses to touch a namespace that is not a sandbox's.
func setUp(m marker) (*Network, error) {
	id, err := netnsID()
	if err != nil {
		return nil, err
	}
	if id == m.outer {
		return nil, fmt.Errorf("refusing to set up the network: %s is set but the process is still in the network namespace that sandbox.Enter started from, so the namespace was not created by Enter", markerEnv)
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("opening netlink: %w", err)
	}
	defer h.Close()

	links, err := h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("listing links: %w", err)
	}
	existing := false
	for _, l := range links {
		a := l.Attrs()
		switch a.Name {
		case "lo":
		case ifaceName, peerName:
			existing = true
		default:
			// A fresh namespace may hold fallback tunnel devices (sit0,
			// tunl0, ...), which are down. Anything up is not ours.
			if a.Flags&net.FlagUp != 0 {
				return nil, fmt.Errorf("refusing to set up the network: interface %s is up, so this is not a fresh namespace", a.Name)
			}
		}
	}
	if existing {
		return adopt(h)
	}
	return create(h)
}

// create builds the sandbox network in a fresh namespace.
func create(h *netlink.Handle) (*Network, error) {
	if _, err := os.Stat("/proc/sys/net/ipv6"); err != nil {
		return nil, fmt.Errorf("IPv6 is disabled in this kernel (%v); boot without ipv6.disable=1", err)
	}
	// Before the links exist, so that they inherit the defaults: no
	// duplicate address detection (link-local addresses would be tentative
	// for a while), no reverse-path filter, and accept datagrams from our
	// own addresses (mcl0's arrive on mcl1).
	for _, s := range []struct{ key, val string }{
		{"ipv6/conf/all/disable_ipv6", "0"},
		{"ipv6/conf/default/disable_ipv6", "0"},
		{"ipv6/conf/all/accept_dad", "0"},
		{"ipv6/conf/default/accept_dad", "0"},
		{"ipv4/conf/all/rp_filter", "0"},
		{"ipv4/conf/default/rp_filter", "0"},
		{"ipv4/conf/all/accept_local", "1"},
		{"ipv4/conf/default/accept_local", "1"},
	} {
		if err := writeSysctl(s.key, s.val); err != nil {
			return nil, err
		}
	}

	lo, err := h.LinkByName("lo")
	if err != nil {
		return nil, fmt.Errorf("finding lo: %w", err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		return nil, fmt.Errorf("setting lo up: %w", err)
	}

	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: ifaceName}, PeerName: peerName}
	if err := h.LinkAdd(veth); err != nil {
		hint := ""
		if errors.Is(err, unix.EOPNOTSUPP) {
			// In a user namespace the kernel cannot load the module.
			hint = " (is the veth driver available? try: sudo modprobe veth)"
		}
		return nil, fmt.Errorf("creating veth pair %s-%s: %w%s", ifaceName, peerName, err, hint)
	}
	l0, err := h.LinkByName(ifaceName)
	if err != nil {
		return nil, fmt.Errorf("finding %s: %w", ifaceName, err)
	}
	l1, err := h.LinkByName(peerName)
	if err != nil {
		return nil, fmt.Errorf("finding %s: %w", peerName, err)
	}

	// Set explicitly too, in case the defaults did not reach the links.
	for _, name := range []string{ifaceName, peerName} {
		for _, s := range []struct{ key, val string }{
			{"ipv6/conf/" + name + "/disable_ipv6", "0"},
			{"ipv6/conf/" + name + "/accept_dad", "0"},
			{"ipv4/conf/" + name + "/rp_filter", "0"},
			{"ipv4/conf/" + name + "/accept_local", "1"},
		} {
			if err := writeSysctl(s.key, s.val); err != nil {
				return nil, err
			}
		}
	}

	mtu, err := setMTU(h, l0, l1)
	if err != nil {
		return nil, err
	}

	for _, l := range []netlink.Link{l0, l1} {
		if err := h.LinkSetUp(l); err != nil {
			return nil, fmt.Errorf("setting %s up: %w", l.Attrs().Name, err)
		}
	}

	for _, a := range []struct {
		link netlink.Link
		ip   netip.Addr
		bits int
	}{
		{l0, addr4, prefix4},
		{l1, peerAddr4, prefix4},
		{l0, addr6, prefix6},
		{l1, peerAddr6, prefix6},
	} {
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: a.ip.AsSlice(), Mask: net.CIDRMask(a.bits, a.ip.BitLen())}}
		if a.ip.Is6() {
			addr.Flags = unix.IFA_F_NODAD // usable at once, never tentative
		}
		if err := h.AddrAdd(a.link, addr); err != nil {
			return nil, fmt.Errorf("adding %s/%d to %s: %w", a.ip, a.bits, a.link.Attrs().Name, err)
		}
	}

	// IPv4 has no multicast route at all in a fresh namespace.
	r4 := &netlink.Route{
		LinkIndex: l0.Attrs().Index,
		Dst:       &net.IPNet{IP: net.IPv4(224, 0, 0, 0).To4(), Mask: net.CIDRMask(4, 32)},
		Scope:     netlink.SCOPE_LINK,
		Protocol:  unix.RTPROT_STATIC,
	}
	if err := h.RouteAdd(r4); err != nil {
		return nil, fmt.Errorf("adding route 224.0.0.0/4 dev %s: %w", ifaceName, err)
	}
	// The kernel puts ff00::/8 into the local table for every link, all
	// with metric 256, and picks one of them; a lower metric makes mcl0
	// win. The local table is looked up before main, so the route must be
	// there.
	r6 := &netlink.Route{
		LinkIndex: l0.Attrs().Index,
		Dst:       &net.IPNet{IP: net.ParseIP("ff00::"), Mask: net.CIDRMask(8, 128)},
		Table:     unix.RT_TABLE_LOCAL,
		Type:      unix.RTN_MULTICAST,
		Priority:  1,
		Protocol:  unix.RTPROT_STATIC,
	}
	if err := h.RouteAdd(r6); err != nil {
		return nil, fmt.Errorf("adding route multicast ff00::/8 dev %s table local metric 1: %w", ifaceName, err)
	}

	if err := checkRoutes(h, l0.Attrs().Index); err != nil {
		return nil, err
	}
	if err := waitReady(h); err != nil {
		return nil, err
	}
	return newNetwork(mtu), nil
}

// readyTimeout bounds how long waitReady waits. With duplicate address
// detection off, the links are ready in microseconds.
const readyTimeout = 10 * time.Second

// waitReady waits until both links are operationally up and have an IPv6
// link-local address, and no address is tentative. The kernel does these
// things asynchronously after a link goes up, even without duplicate
// address detection; a link-local address is what MLD reports and
// link-local-scope (ff02::) multicast are sent from.
func waitReady(h *netlink.Handle) error {
	// Subscribe first, then look: any change after the look is an event.
	s, err := nl.Subscribe(unix.NETLINK_ROUTE, unix.RTNLGRP_LINK, unix.RTNLGRP_IPV6_IFADDR)
	if err != nil {
		return fmt.Errorf("subscribing to link and address changes: %w", err)
	}
	defer s.Close()
	deadline := time.Now().Add(readyTimeout)
	for {
		notReady, err := linksNotReady(h)
		if err != nil {
			return err
		}
		if notReady == "" {
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("the links did not get ready within %v: %s", readyTimeout, notReady)
		}
		tv := unix.NsecToTimeval(left.Nanoseconds())
		if err := s.SetReceiveTimeout(&tv); err != nil {
			return err
		}
		// Whatever arrives (or a timeout, or ENOBUFS after an overflow)
		// means: look again.
		s.Receive()
	}
}

// linksNotReady says what is not ready yet, or "" if all is.
func linksNotReady(h *netlink.Handle) (string, error) {
	for _, name := range []string{ifaceName, peerName} {
		l, err := h.LinkByName(name)
		if err != nil {
			return "", fmt.Errorf("finding %s: %w", name, err)
		}
		if l.Attrs().OperState != netlink.OperUp {
			return fmt.Sprintf("%s is operationally %v", name, l.Attrs().OperState), nil
		}
		addrs, err := h.AddrList(l, netlink.FAMILY_V6)
		if err != nil {
			return "", fmt.Errorf("listing addresses of %s: %w", name, err)
		}
		linkLocal := false
		for _, a := range addrs {
			if a.Flags&unix.IFA_F_TENTATIVE != 0 {
				return fmt.Sprintf("%s's address %v is tentative", name, a.IPNet), nil
			}
			linkLocal = linkLocal || a.IP.IsLinkLocalUnicast()
		}
		if !linkLocal {
			return fmt.Sprintf("%s has no IPv6 link-local address yet", name), nil
		}
	}
	return "", nil
}

// adopt checks the network another process of this sandbox set up.
func adopt(h *netlink.Handle) (*Network, error) {
	var mtu int
	for _, want := range []struct {
		name   string
		a4, a6 netip.Addr
	}{
		{ifaceName, addr4, addr6},
		{peerName, peerAddr4, peerAddr6},
	} {
		l, err := h.LinkByName(want.name)
		if err != nil {
			return nil, fmt.Errorf("the sandbox network is incomplete: %s: %w", want.name, err)
		}
		if l.Type() != "veth" || l.Attrs().Flags&net.FlagUp == 0 {
			return nil, fmt.Errorf("the sandbox network is broken: %s is not an up veth link", want.name)
		}
		addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return nil, fmt.Errorf("listing addresses of %s: %w", want.name, err)
		}
		for _, a := range []netip.Addr{want.a4, want.a6} {
			if !slices.ContainsFunc(addrs, func(x netlink.Addr) bool { return x.IP.Equal(a.AsSlice()) }) {
				return nil, fmt.Errorf("the sandbox network is broken: %s lacks address %s", want.name, a)
			}
		}
		if want.name == ifaceName {
			mtu = l.Attrs().MTU
			if err := checkRoutes(h, l.Attrs().Index); err != nil {
				return nil, err
			}
		}
	}
	if err := waitReady(h); err != nil {
		return nil, err
	}
	return newNetwork(mtu), nil
}

// checkRoutes makes sure multicast leaves through the link with index idx.
func checkRoutes(h *netlink.Handle, idx int) error {
	for _, dst := range []net.IP{checkGroup4, checkGroup6} {
		routes, err := h.RouteGet(dst)
		if err != nil {
			return fmt.Errorf("looking up the route to %s: %w", dst, err)
		}
		if len(routes) == 0 || routes[0].LinkIndex != idx {
			return fmt.Errorf("multicast to %s does not leave through %s: %v", dst, ifaceName, routes)
		}
	}
	return nil
}

// setMTU sets both links' MTU to wantMTU, or to the largest the driver
// accepts, and returns it.
func setMTU(h *netlink.Handle, links ...netlink.Link) (int, error) {
	mtu := wantMTU
	if err := setMTUs(h, mtu, links); err != nil {
		if !errors.Is(err, unix.EINVAL) {
			return 0, err
		}
		// The driver's maximum is lower (veth lowers it when XDP is
		// attached, for example): find it.
		lo, hi := links[0].Attrs().MTU, wantMTU-1
		for lo < hi {
			mid := (lo + hi + 1) / 2
			if h.LinkSetMTU(links[0], mid) == nil {
				lo = mid
			} else {
				hi = mid - 1
			}
		}
		mtu = lo
		if err := setMTUs(h, mtu, links); err != nil {
			return 0, err
		}
	}
	return mtu, nil
}

func setMTUs(h *netlink.Handle, mtu int, links []netlink.Link) error {
	for _, l := range links {
		if err := h.LinkSetMTU(l, mtu); err != nil {
			return fmt.Errorf("setting the MTU of %s to %d: %w", l.Attrs().Name, mtu, err)
		}
	}
	return nil
}

// writeSysctl sets net.<key> (key is slash-separated) in this namespace.
func writeSysctl(key, val string) error {
	if err := os.WriteFile("/proc/sys/net/"+key, []byte(val), 0); err != nil {
		return fmt.Errorf("sysctl net.%s=%s: %w", strings.ReplaceAll(key, "/", "."), val, err)
	}
	return nil
}

// setLinkMTU sets the MTU of both links of the sandbox network.
func setLinkMTU(mtu int) error {
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("sandbox: netlink: %w", err)
	}
	defer h.Close()
	var links []netlink.Link
	for _, name := range []string{ifaceName, peerName} {
		l, err := h.LinkByName(name)
		if err != nil {
			return fmt.Errorf("sandbox: %s: %w", name, err)
		}
		links = append(links, l)
	}
	return setMTUs(h, mtu, links)
}
