// Package sandbox runs the current program inside a private network
// namespace, so that mcl's tests, the `mcl demo` command and the benchmarks
// can send multicast without it ever leaving on a real interface of the host.
//
// IPv6 multicast is not delivered over lo on Linux, but it is delivered over
// a veth pair. The sandbox is therefore a fresh network namespace holding lo
// and one veth pair, both ends in the namespace:
//
//	mcl0  198.18.0.1/24  fd6d:636c::1/64  default multicast interface
//	mcl1  198.18.0.2/24  fd6d:636c::2/64  the other end of the pair
//
// Routes for 224.0.0.0/4 and ff00::/8 point at mcl0, so a socket that does
// not choose a multicast interface sends out of mcl0 and the datagram comes
// in again on mcl1. Both links have an MTU of 65535, so a 60000-byte datagram
// is not IP-fragmented. The addresses are usable at once (no duplicate
// address detection), and reverse-path filtering is off and accept_local on,
// so that mcl1 accepts datagrams whose source is mcl0's (local) address.
//
// # Entering the sandbox
//
// A network namespace belongs to a thread, and a Go program has many, so
// Enter does not switch the running process: it starts the program again,
// from /proc/self/exe with the same arguments and environment, in new
// namespaces, passes stdin, stdout and stderr through, forwards SIGINT,
// SIGTERM, SIGHUP and SIGQUIT, and exits with the child's exit status. The
// child finds the marker variable MCL_SANDBOX in its environment, so its call
// of Enter sets the network up and returns it instead.
//
// As root (or with CAP_SYS_ADMIN) only a network namespace is created. Any
// other user gets a user namespace as well, in which it is root: this needs
// unprivileged user namespaces, which most distributions allow. When no
// namespace can be created, Enter returns an error wrapping ErrUnavailable
// that says why and how to fix it, and the program goes on outside the
// sandbox.
//
// Call Enter first thing in main or TestMain: everything before it runs
// twice (once outside, once inside), and possibly once more if the first
// kind of namespace could be created but not set up.
//
//	func main() {
//		if _, err := sandbox.Enter(); err != nil {
//			log.Fatal(err) // refuse to run on the host network
//		}
//		...
//	}
//
// Tests enter the sandbox in TestMain, and each test that needs the network
// asks for it with Require, which skips the test (or fails it, in CI) when
// the program is not running in a working sandbox:
//
//	func TestMain(m *testing.M) {
//		if _, err := sandbox.Enter(); err != nil {
//			fmt.Fprintln(os.Stderr, "sandbox:", err) // tests that need it call Require and skip/fail
//		}
//		os.Exit(m.Run())
//	}
//
//	func TestSomething(t *testing.T) {
//		n := sandbox.Require(t)
//		ifi, err := net.InterfaceByName(n.Iface)
//		...
//	}
//
// The child gets the same -test.* flags as the parent, so `go test -run`,
// -v, -race, -cover and friends work unchanged; the parent exits before
// m.Run, so only the child writes profiles and test logs. Enter must be
// called before m.Run: once tests run, the testing package does not allow
// os.Exit(0).
//
// Setting MCL_REQUIRE_SANDBOX=1 makes Require fail instead of skip, so that a
// CI run cannot silently skip the network tests.
//
// Processes started from inside the sandbox inherit both the namespace and
// the marker; their Enter finds the network already set up and returns it,
// so that several processes can talk to each other in one sandbox.
//
// # More networks: Namespace
//
// A test that needs networks with no route between them (the two sites of
// a bridge, a remote host) makes each with NewNamespace, inside the
// sandbox: a network namespace of its own, set up as the sandbox's, and
// linked to nothing. Namespace.Do runs a function on a thread in it; the
// sockets that function opens, and the processes it starts, belong to
// that namespace for life.
//
// # Safety
//
// The marker records which network namespace the parent ran in, and Enter
// refuses to configure anything when it finds itself still in that namespace
// (a marker set by hand, or copied from elsewhere), or in a namespace in
// which an interface other than lo, mcl0 and mcl1 is up. So the sandbox is
// never set up on the host's network.
//
// # Duplicate delivery
//
// Both ends of the pair are in this one namespace, so a receiver can see a
// datagram twice. A datagram sent out of mcl0 with multicast loopback on is
// delivered through loopback (as if received on mcl0), and again when it
// arrives on mcl1, if any socket joined the group on mcl1; with loopback
// off, only the second delivery happens. Linux hands the copy that arrived
// on mcl1 to sockets that joined the group on mcl0 only, too: IPv4 does
// unless the socket set IP_MULTICAST_ALL to 0, and IPv6 does even with
// IPV6_MULTICAST_ALL at 0 (it matches memberships by group, not by
// interface). A socket bound to its interface with SO_BINDTODEVICE gets only
// what arrived on that interface, so each datagram once. As long as no
// socket joined the group on mcl1, nothing is delivered twice.
package sandbox
