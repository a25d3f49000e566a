package sandbox

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Namespace is a second network inside the sandbox: a network namespace of
// its own, such as the other site of a bridge or a remote host, with a
// network set up like the sandbox's (lo, and the veth pair mcl0-mcl1 with
// the same addresses, MTU and multicast routes) and no link to any other
// namespace. Nothing sent in it reaches the sandbox's namespace or another
// Namespace, and nothing reaches it from them, unless a program carries it
// across over sockets of both, as a bridge does.
//
// A socket belongs for life to the network namespace of the thread that
// created it, and a process starts in that of the thread that started it.
// Do runs a function on a thread in the Namespace, for that.
type Namespace struct {
	mu  sync.RWMutex // guards fd against Close
	fd  int          // the namespace's /proc/thread-self/ns/net; -1 once closed
	net *Network
}

// NewNamespace creates a Namespace and sets its network up. It works only
// inside a working sandbox: errors wrap ErrUnavailable when the process does
// not run in one (see Current), and are the kernel's when the namespace or
// its links cannot be made. Close it when done.
func NewNamespace() (*Namespace, error) {
	if _, err := Current(); err != nil {
		return nil, err
	}
	type made struct {
		ns  *Namespace
		err error
	}
	c := make(chan made, 1)
	go func() {
		// Never unlocked: the thread ends with this goroutine, so no other
		// goroutine ever runs in the new namespace by accident.
		runtime.LockOSThread()
		ns, err := newNamespace()
		c <- made{ns, err}
	}()
	m := <-c
	return m.ns, m.err
}

// newNamespace makes the namespace from the calling thread, which it moves into
// it, and sets the network up there (netlink, sysctls and the readiness
// check all act on the thread's namespace).
func newNamespace() (*Namespace, error) {
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return nil, fmt.Errorf("sandbox: new network namespace: %w", err)
	}
	fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("sandbox: opening the new network namespace: %w", err)
	}
	h, err := netlink.NewHandle()
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("sandbox: netlink in the new namespace: %w", err)
	}
	defer h.Close()
	n, err := create(h)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("sandbox: setting up the new namespace's network: %w", err)
	}
	return &Namespace{fd: fd, net: n}, nil
}

// Network returns the Namespace's network: the same names and addresses as
// the sandbox's, on links of its own.
func (ns *Namespace) Network() *Network {
	n := *ns.net
	return &n
}

// ErrNamespaceClosed is returned by Do after Close.
var ErrNamespaceClosed = errors.New("sandbox: namespace closed")

// Do runs fn on a goroutine locked to an OS thread in the Namespace, waits
// for it and returns its error. The sockets fn opens on that goroutine
// (including those that constructors it calls open before returning), and
// the processes it starts with os/exec, belong to the Namespace for their
// whole life, wherever they are used later; goroutines fn starts run in
// the sandbox's namespace. The thread ends with fn, so it never runs
// anything else. A test's fn must not call t.Fatal (it runs on another
// goroutine): return an error instead. Errors: ErrNamespaceClosed, the
// kernel's if the thread cannot enter the namespace, and fn's.
func (ns *Namespace) Do(fn func() error) error {
	c := make(chan error, 1)
	go func() {
		// Not unlocked, as in NewNamespace: leaving the namespace again is
		// not needed when the thread goes away.
		runtime.LockOSThread()
		ns.mu.RLock()
		if ns.fd < 0 {
			ns.mu.RUnlock()
			c <- ErrNamespaceClosed
			return
		}
		err := unix.Setns(ns.fd, unix.CLONE_NEWNET)
		ns.mu.RUnlock()
		if err != nil {
			c <- fmt.Errorf("sandbox: entering the namespace: %w", err)
			return
		}
		c <- fn()
	}()
	return <-c
}

// Close lets the Namespace go: it and its links vanish once no socket or
// process is left in it. Do fails afterwards. Close is safe to call more
// than once.
func (ns *Namespace) Close() error {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if ns.fd < 0 {
		return nil
	}
	err := unix.Close(ns.fd)
	ns.fd = -1
	return err
}
