package sandbox

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// inNamespace runs fn in ns, or in the sandbox's own namespace for nil.
func inNamespace(ns *Namespace, fn func() error) error {
	if ns == nil {
		return fn()
	}
	return ns.Do(fn)
}

// TestNamespace: two Namespaces have networks like the sandbox's, and
// multicast sent in one reaches neither the sandbox nor the other; TCP to
// the sandbox's loopback does not get out either.
func TestNamespace(t *testing.T) {
	Require(t)
	outer, err := netnsID()
	if err != nil {
		t.Fatal(err)
	}
	var spaces []*Namespace
	for range 2 {
		ns, err := NewNamespace()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ns.Close() })
		spaces = append(spaces, ns)
		if n := ns.Network(); n.Iface != ifaceName || n.Addr4 != addr4 || n.MTU < 1500 {
			t.Fatalf("network %+v", n)
		}
		var inner, spawned string
		err = ns.Do(func() error {
			if inner, err = netnsID(); err != nil {
				return err
			}
			h, err := netlink.NewHandle()
			if err != nil {
				return err
			}
			defer h.Close()
			if what, err := linksNotReady(h); err != nil || what != "" {
				return fmt.Errorf("not ready: %q, %v", what, err)
			}
			c := make(chan string)
			go func() { id, _ := netnsID(); c <- id }()
			spawned = <-c
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if inner == outer || spawned != outer {
			t.Fatalf("namespace %s in Do, %s in a goroutine it started; the sandbox's is %s", inner, spawned, outer)
		}
	}
	if err := spaces[0].Do(func() error {
		id, _ := netnsID()
		return spaces[1].Do(func() error {
			if id2, _ := netnsID(); id2 == id {
				return errors.New("two Namespaces are one")
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}

	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			port := 28500
			if fam.group.Is6() {
				port++
			}
			group := &net.UDPAddr{IP: fam.group.AsSlice(), Port: port}
			// A receiver in each of the three namespaces, on the same
			// group and port.
			where := []*Namespace{nil, spaces[0], spaces[1]}
			conns := make([]*net.UDPConn, len(where))
			for i, ns := range where {
				err := inNamespace(ns, func() error {
					ifi, err := net.InterfaceByName(ifaceName)
					if err != nil {
						return err
					}
					conns[i], err = net.ListenMulticastUDP(fam.network, ifi, group)
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { conns[i].Close() })
			}
			// Each namespace sends its own name, the first one first: the
			// others hear only their own, which came after.
			for i, ns := range where {
				err := inNamespace(ns, func() error {
					c, err := net.DialUDP(fam.network, nil, group)
					if err != nil {
						return err
					}
					defer c.Close()
					_, err = c.Write([]byte(strconv.Itoa(i)))
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			for i, c := range conns {
				c.SetReadDeadline(time.Now().Add(waitFor))
				buf := make([]byte, 16)
				n, err := c.Read(buf)
				if err != nil {
					t.Fatalf("receiver %d: %v", i, err)
				}
				if got := string(buf[:n]); got != strconv.Itoa(i) {
					t.Errorf("receiver %d got namespace %s's datagram first", i, got)
				}
			}
		})
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	err = spaces[0].Do(func() error {
		c, err := net.DialTimeout("tcp", l.Addr().String(), waitFor)
		if err == nil {
			c.Close()
		}
		return err
	})
	if err == nil {
		t.Error("a Namespace reached the sandbox's loopback")
	}

	spaces[1].Close()
	if err := spaces[1].Do(func() error { return nil }); !errors.Is(err, ErrNamespaceClosed) {
		t.Errorf("Do after Close: %v", err)
	}
	if err := spaces[1].Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
