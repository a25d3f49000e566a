package netfault

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// priority of the chain: that of the raw table (-300), before connection
// tracking and every ordinary filter, so a dropped datagram is seen by
// nothing else in the namespace.
const priority = nftables.ChainPriority(-300)

// tables numbers the tables this process creates; with the process id it
// makes their names unique in the sandbox, which several processes may
// share.
var tables atomic.Uint64

// A Rule is a packet-dropping nftables rule installed by DropRandom. Its
// methods may be called from several goroutines.
type Rule struct {
	conn  *nftables.Conn
	table *nftables.Table
	chain *nftables.Chain

	mu      sync.Mutex
	removed bool   // the table is gone
	final   uint64 // the count read just before removal
	lastErr error  // why that read failed, if it did
}

// DropRandom installs a rule that drops, at random, percent in 100 of the
// UDP datagrams to port that arrive on the network interface iface (IPv4
// and IPv6 alike), and counts what it drops (see Dropped). Which interface
// a subscriber's copy arrives on is in the package documentation. The rule
// is removed when the test and its subtests finish (t.Cleanup).
//
// The rule lives in a table of its own, of family inet, named
// mcl_netfault_<pid>_<n>, in a chain that hooks prerouting at priority -300:
//
//	table inet mcl_netfault_<pid>_<n> {
//		chain prerouting {
//			type filter hook prerouting priority -300; policy accept;
//			iifname iface meta l4proto udp udp dport port numgen random mod 100 < percent counter drop
//		}
//	}
//
// DropRandom fails the test unless the process runs inside a working
// sandbox network (sandbox.Inside, and sandbox.Current without error), so it
// never touches the host's firewall; call sandbox.Require first. It fails
// the test, too, if percent is outside 0..100, port is 0 or iface names no
// interface. If nftables cannot be used (a kernel without nf_tables or one
// of the expressions, or no permission), it skips the test saying why, or
// fails it when MCL_REQUIRE_SANDBOX=1.
func DropRandom(t testing.TB, iface string, port uint16, percent int) *Rule {
	t.Helper()
	check(t, iface, port, percent)

	conn, err := nftables.New()
	if err != nil {
		unusable(t, "opening a netlink connection", err, hint(err))
	}
	r := &Rule{conn: conn}
	r.table = &nftables.Table{
		Name:   fmt.Sprintf("mcl_netfault_%d_%d", os.Getpid(), tables.Add(1)),
		Family: nftables.TableFamilyINet,
	}
	r.chain = &nftables.Chain{
		Name:     "prerouting",
		Table:    r.table,
		Type:     nftables.ChainTypeFilter,
		Hooknum:  nftables.ChainHookPrerouting,
		Priority: nftables.ChainPriorityRef(priority),
	}
	conn.AddTable(r.table)
	conn.AddChain(r.chain)
	conn.AddRule(&nftables.Rule{Table: r.table, Chain: r.chain, Exprs: dropExprs(iface, port, percent)})
	// One batch, one transaction: on error nothing was installed.
	if err := conn.Flush(); err != nil {
		unusable(t, "installing table inet "+r.table.Name, err, hint(err))
	}
	t.Cleanup(func() {
		if err := r.remove(); err != nil {
			t.Errorf("netfault: removing table inet %s: %v", r.table.Name, err)
		}
	})
	return r
}

// dropExprs is the rule:
//
//	iifname iface meta l4proto udp udp dport port numgen random mod 100 < percent counter drop
//
// as nft would compile it (nft --debug=netlink).
func dropExprs(iface string, port uint16, percent int) []expr.Any {
	name := make([]byte, unix.IFNAMSIZ) // iifname compares the whole, zero-padded name
	copy(name, iface)
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: name},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(port)},
		// numgen leaves a 32-bit number in host byte order, and cmp
		// orders like memcmp, that is, big-endian: convert first.
		&expr.Numgen{Type: unix.NFT_NG_RANDOM, Modulus: 100, Register: 1},
		&expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: 4, Size: 4},
		&expr.Cmp{Op: expr.CmpOpLt, Register: 1, Data: binaryutil.BigEndian.PutUint32(uint32(percent))},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}
}

// hint guesses, from the error of a netlink request, what stops nftables.
func hint(err error) string {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return "no permission: the process needs CAP_NET_ADMIN in the sandbox's namespaces"
	case errors.Is(err, unix.EPROTONOSUPPORT), errors.Is(err, unix.EAFNOSUPPORT):
		return "the kernel has no nf_tables: CONFIG_NF_TABLES"
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.EOPNOTSUPP):
		return "the kernel lacks part of nf_tables: CONFIG_NF_TABLES_INET, CONFIG_NFT_NUMGEN, CONFIG_NFT_COUNTER"
	}
	return ""
}

// Dropped returns how many datagrams the rule has dropped: the packet count
// of its counter. After the rule was removed (the test finished), it
// returns the count read just before removal.
func (r *Rule) Dropped() (packets uint64, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.removed {
		return r.final, r.lastErr
	}
	return r.read()
}

// read reads the counter; r.mu is held.
func (r *Rule) read() (uint64, error) {
	rules, err := r.conn.GetRules(r.table, r.chain)
	if err != nil {
		return 0, fmt.Errorf("netfault: listing the rules of table inet %s: %w", r.table.Name, err)
	}
	for _, rule := range rules {
		for _, e := range rule.Exprs {
			if c, ok := e.(*expr.Counter); ok {
				return c.Packets, nil
			}
		}
	}
	return 0, fmt.Errorf("netfault: table inet %s has no rule with a counter", r.table.Name)
}

// remove reads the counter a last time and deletes the table.
func (r *Rule) remove() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.removed {
		return nil
	}
	r.final, r.lastErr = r.read()
	r.removed = true
	r.conn.DelTable(r.table)
	return r.conn.Flush()
}
