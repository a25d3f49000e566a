package mcl_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/mcl-go/mcl/sandbox"
)

// TestMain runs the package's tests inside a private network namespace, so
// nothing they send can leave the machine. Tests that need the network call
// sandbox.Require, which skips them (or fails them in CI) when no namespace
// could be made.
func TestMain(m *testing.M) {
	if _, err := sandbox.Enter(); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox:", err)
	}
	os.Exit(m.Run())
}
