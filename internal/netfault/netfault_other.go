//go:build !linux

package netfault

import (
	"errors"
	"fmt"
	"runtime"
	"testing"
)

// A Rule is a packet-dropping nftables rule installed by DropRandom.
type Rule struct{}

var errNoNftables = fmt.Errorf("nftables exists only on Linux, not on %s: %w", runtime.GOOS, errors.ErrUnsupported)

// DropRandom fails the test outside the sandbox network, as on Linux, and
// otherwise skips it (or fails it, under MCL_REQUIRE_SANDBOX=1): nftables
// exists only on Linux.
func DropRandom(t testing.TB, iface string, port uint16, percent int) *Rule {
	t.Helper()
	check(t, iface, port, percent)
	unusable(t, "installing the rule", errNoNftables, "")
	return nil
}

// Dropped returns an error wrapping errors.ErrUnsupported.
func (r *Rule) Dropped() (packets uint64, err error) {
	return 0, errNoNftables
}
