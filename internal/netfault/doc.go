// Package netfault injects packet loss with nftables inside the sandbox
// network namespace, for tests of how mcl copes with lost datagrams.
//
// DropRandom installs a rule that drops a given percentage of the UDP
// datagrams to a port arriving on one interface, IPv4 and IPv6 alike, and
// removes it when the test ends; Dropped says how many it dropped, so a
// test can account for every datagram:
//
//	func TestLoss(t *testing.T) {
//		n := sandbox.Require(t)
//		r := netfault.DropRandom(t, n.Iface, port, 5) // the loopback copy: see below
//		... publish sent datagrams, receive got ...
//		dropped, err := r.Dropped()
//		// got + dropped == sent, if nothing else was lost
//	}
//
// The rule is netlink talk with the kernel (github.com/google/nftables);
// neither the nft program nor the netem qdisc is needed. DropRandom refuses,
// failing the test, to run outside the sandbox (see package sandbox), so it
// can never change the host's firewall. When nftables is unusable (no
// kernel support, no permission) it skips the test, or fails it under
// MCL_REQUIRE_SANDBOX=1, as sandbox.Require does.
//
// # Which interface to name
//
// The rule matches in the prerouting hook, where a multicast datagram sent
// out of one end of the sandbox's veth pair shows up as up to two copies:
//
//   - the copy that crossed the pair, with iifname the other end (sent out
//     of mcl0, it arrives on mcl1). It passes prerouting always, whether or
//     not any socket joined the group there; without such a member the
//     kernel then discards it.
//   - the multicast loopback copy, with iifname the interface it was sent
//     out of (mcl0), not lo. The kernel makes it only when the sending
//     socket has multicast loopback on (the default) and some socket
//     joined the group on that interface.
//
// Name the interface of the copy your subscriber receives:
//
//   - mcl's defaults (no Interface option, Loopback on): the publisher
//     sends out of mcl0, the route's choice, and the subscriber joins on
//     mcl0, so it receives the loopback copy: name sandbox.Network.Iface
//     ("mcl0"). Nobody joined on mcl1, so the copy arriving there reaches
//     no socket.
//   - a subscriber that joined on mcl1 (Interface("mcl1")) receiving from a
//     publisher on mcl0: it gets the copy that crossed the pair: name
//     sandbox.Network.Peer ("mcl1").
//   - members on both ends: a socket may receive both copies (see Duplicate
//     delivery in package sandbox); to lose a datagram for sure, drop on
//     both interfaces, with two rules.
//
// Name the other one and the rule drops, and counts, copies that no socket
// receives: Dropped grows while the subscriber loses nothing
// (TestDropOtherCopy shows it). Dropped counts packets at prerouting, one
// per copy of a datagram, before the kernel delivers it or finds no
// member; a datagram the kernel drops for a full receive buffer is not in
// it.
package netfault
