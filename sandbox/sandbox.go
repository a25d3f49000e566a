package sandbox

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
)

// Network describes the sandbox network the process runs in.
type Network struct {
	// Iface is "mcl0", the default multicast interface: the routes for
	// 224.0.0.0/4 and ff00::/8 point here.
	Iface string
	// Peer is "mcl1", the other end of the veth pair, also in this
	// namespace. A datagram sent out of Iface arrives on Peer.
	Peer string
	// Addr4 (198.18.0.1) is Iface's IPv4 address and PeerAddr4
	// (198.18.0.2) Peer's, both in 198.18.0.0/24 (RFC 2544 benchmark range).
	Addr4, PeerAddr4 netip.Addr
	// Addr6 (fd6d:636c::1) is Iface's IPv6 address and PeerAddr6
	// (fd6d:636c::2) Peer's, both in fd6d:636c::/64. They were added
	// without duplicate address detection, so they are usable at once.
	Addr6, PeerAddr6 netip.Addr
	// MTU is the MTU of both links: 65535, unless the kernel's veth driver
	// allows less, in which case it is the largest the driver accepts.
	MTU int
}

// ErrUnavailable means the process does not run in a sandbox network: no
// network namespace could be created or set up, or Enter was not called.
// Enter, Current and Require return it wrapped in an error that tells why
// and what to do about it; test for it with errors.Is.
var ErrUnavailable = errors.New("sandbox network unavailable")

// Names and addresses of the sandbox network.
const (
	ifaceName = "mcl0"
	peerName  = "mcl1"
	wantMTU   = 65535
	prefix4   = 24
	prefix6   = 64
)

var (
	addr4     = netip.MustParseAddr("198.18.0.1")
	peerAddr4 = netip.MustParseAddr("198.18.0.2")
	addr6     = netip.MustParseAddr("fd6d:636c::1")
	peerAddr6 = netip.MustParseAddr("fd6d:636c::2")
)

// markerEnv is the environment variable that tells a process it runs
// inside the sandbox. Enter sets it for the child it starts.
const markerEnv = "MCL_SANDBOX"

// requireEnv, when "1", makes Require fail rather than skip.
const requireEnv = "MCL_REQUIRE_SANDBOX"

var state struct {
	mu      sync.Mutex
	entered bool // Enter has finished (inside, or failed outside)
	net     *Network
	err     error
}

// Enter makes sure the process runs inside a sandbox network.
//
// Outside the sandbox (the marker variable MCL_SANDBOX is not set), Enter
// re-executes the current program (/proc/self/exe, same os.Args, same
// environment plus the marker) in new namespaces: a network namespace
// (CLONE_NEWNET) when the process has CAP_SYS_ADMIN, as root normally does;
// otherwise, or if that fails, a user namespace and a network namespace
// (CLONE_NEWUSER|CLONE_NEWNET) in which the current user and group are mapped
// to root. Stdin, stdout and stderr are passed through; SIGINT, SIGTERM,
// SIGHUP and SIGQUIT are forwarded to the child (except that SIGINT, SIGQUIT
// and SIGHUP are not forwarded while the process is in the foreground of its
// terminal, because the terminal sends them to the child as well). Enter then
// waits for the child and exits the process with the child's exit status; if
// the child was killed by SIGINT, SIGTERM, SIGHUP or SIGKILL, the process
// kills itself with the same signal, otherwise it exits with 128+signal.
// Enter does not return in that case. If the parent is killed, the child
// gets SIGKILL.
//
// If neither kind of namespace can be created (or a child reports that it
// could not set its network up, in which case the next kind is tried), Enter
// returns an error wrapping ErrUnavailable with the reason, for example
// "unprivileged user namespaces are disabled:
// kernel.apparmor_restrict_unprivileged_userns=1" or "user namespaces are
// disabled: user.max_user_namespaces=0", and how to fix it (run as root, or
// which sysctl to change). The process then goes on outside the sandbox,
// and must not use the network as if it were the sandbox's.
//
// Inside the sandbox (marker set), Enter sets the network up, the first time
// it is called, and returns it; if another process of the same sandbox has
// set it up already, Enter checks it and returns it. Enter refuses, with an
// error wrapping ErrUnavailable, to touch a network namespace that is
// neither fresh nor a sandbox's (see Safety in the package documentation).
//
// Call Enter before anything else in main or TestMain; later calls return
// the result of the first.
func Enter() (*Network, error) {
	state.mu.Lock()
	defer state.mu.Unlock()
	if !state.entered {
		if Inside() {
			state.net, state.err = enterInside()
		} else {
			state.err = enterOutside() // returns only on failure
		}
		state.entered = true
	}
	return state.net, state.err
}

// Inside reports whether the marker variable MCL_SANDBOX is present, that
// is, whether the process was started by Enter (or by a process inside the
// sandbox). It does not say whether the network was set up: Current does.
func Inside() bool {
	return os.Getenv(markerEnv) != ""
}

// Current returns the Network that Enter set up, or the error Enter
// returned. It is for code that runs after Enter, such as tests. Inside the
// sandbox, if Enter has not been called yet, Current calls it. Outside, if
// Enter has not been called, Current returns an error wrapping
// ErrUnavailable.
func Current() (*Network, error) {
	state.mu.Lock()
	entered := state.entered
	n, err := state.net, state.err
	state.mu.Unlock()
	if entered {
		return n, err
	}
	if Inside() {
		return Enter()
	}
	return nil, fmt.Errorf("%w: sandbox.Enter was not called; call it first thing in main or TestMain", ErrUnavailable)
}

// TB is the part of testing.TB that Require uses, so that this package need
// not import "testing". *testing.T and *testing.B satisfy it.
type TB interface {
	Helper()
	Skipf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// Require returns the sandbox network for a test. If the test does not run
// in a working sandbox (Enter failed or was not called, or the network could
// not be set up), Require skips the test saying why, or, when the
// environment variable MCL_REQUIRE_SANDBOX is set to 1, fails it, so that a
// CI run can never silently skip the network tests. With a testing.TB,
// Require does not return in those cases; with another TB whose Skipf and
// Fatalf return, it returns nil.
func Require(t TB) *Network {
	t.Helper()
	n, err := Current()
	return require(t, n, err)
}

func require(t TB, n *Network, err error) *Network {
	t.Helper()
	if err == nil && n != nil {
		return n
	}
	if err == nil {
		err = fmt.Errorf("%w: no network", ErrUnavailable)
	}
	if os.Getenv(requireEnv) == "1" {
		t.Fatalf("sandbox network required (%s=1) but unavailable: %v", requireEnv, err)
		return nil
	}
	t.Skipf("skipping, the test needs the sandbox network (set %s=1 to fail instead): %v", requireEnv, err)
	return nil
}

func newNetwork(mtu int) *Network {
	return &Network{
		Iface:     ifaceName,
		Peer:      peerName,
		Addr4:     addr4,
		PeerAddr4: peerAddr4,
		Addr6:     addr6,
		PeerAddr6: peerAddr6,
		MTU:       mtu,
	}
}

// SetMTU sets the MTU of both links of the sandbox network, for a test or
// benchmark that wants an Ethernet link's 1500 bytes, say, instead of the
// 64 KiB default, and returns the Network with its MTU updated. It changes
// the network of every process of the sandbox. Errors: those of Current,
// when the process is not in a working sandbox (nothing outside it is
// ever changed), and the kernel's for an MTU the veth driver refuses (68
// to 65535).
func SetMTU(mtu int) (*Network, error) {
	n, err := Current()
	if err != nil {
		return nil, err
	}
	if err := setLinkMTU(mtu); err != nil {
		return nil, err
	}
	state.mu.Lock()
	defer state.mu.Unlock()
	c := *n
	c.MTU = mtu
	state.net = &c
	return &c, nil
}
