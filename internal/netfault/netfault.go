package netfault

import (
	"net"
	"os"
	"testing"

	"github.com/mcl-go/mcl/sandbox"
)

// requireEnv, when "1", turns a skip for want of nftables into a failure,
// as sandbox.Require does for want of the sandbox.
const requireEnv = "MCL_REQUIRE_SANDBOX"

// check fails the test unless the process runs in a working sandbox
// network and the arguments of DropRandom make sense.
func check(t testing.TB, iface string, port uint16, percent int) {
	t.Helper()
	if !sandbox.Inside() {
		t.Fatalf("netfault: refusing to change the firewall outside the sandbox network (MCL_SANDBOX is not set); call sandbox.Enter in TestMain and sandbox.Require in the test")
	}
	if _, err := sandbox.Current(); err != nil {
		t.Fatalf("netfault: refusing to change the firewall, the sandbox network is not set up: %v; call sandbox.Require in the test first", err)
	}
	if percent < 0 || percent > 100 {
		t.Fatalf("netfault: drop percentage %d: use 0..100", percent)
	}
	if port == 0 {
		t.Fatalf("netfault: port 0: name the UDP destination port whose datagrams to drop")
	}
	if _, err := net.InterfaceByName(iface); err != nil {
		t.Fatalf("netfault: interface %q: %v", iface, err)
	}
}

// unusable skips the test because nftables cannot be used, or fails it
// under MCL_REQUIRE_SANDBOX=1. step says what failed, err how, and hint
// (when not empty) what is probably missing.
func unusable(t testing.TB, step string, err error, hint string) {
	t.Helper()
	if hint != "" {
		hint = " (" + hint + ")"
	}
	if os.Getenv(requireEnv) == "1" {
		t.Fatalf("netfault: nftables unusable (%s=1, so the test fails rather than skips): %s: %v%s", requireEnv, step, err, hint)
	}
	t.Skipf("netfault: skipping, nftables unusable (set %s=1 to fail instead): %s: %v%s", requireEnv, step, err, hint)
}
