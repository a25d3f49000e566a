//go:build !linux

package sandbox

import (
	"errors"
	"fmt"
	"runtime"
)

// Namespace is a second network inside the sandbox; see the Linux
// documentation. Elsewhere NewNamespace always fails.
type Namespace struct{}

// ErrNamespaceClosed is returned by Do after Close.
var ErrNamespaceClosed = errors.New("sandbox: namespace closed")

// NewNamespace returns an error wrapping ErrUnavailable: network
// namespaces exist only on Linux.
func NewNamespace() (*Namespace, error) {
	return nil, fmt.Errorf("%w: network namespaces exist only on Linux, not on %s", ErrUnavailable, runtime.GOOS)
}

// Network returns nil.
func (ns *Namespace) Network() *Network { return nil }

// Do returns ErrNamespaceClosed.
func (ns *Namespace) Do(func() error) error { return ErrNamespaceClosed }

// Close does nothing.
func (ns *Namespace) Close() error { return nil }
