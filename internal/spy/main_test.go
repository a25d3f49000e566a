package spy

import (
	"fmt"
	"os"
	"testing"

	"github.com/mcl-go/mcl/sandbox"
)

// TestMain runs the package's tests inside a private network namespace, so
// nothing they send can leave the machine; tests that need it call
// sandbox.Require.
func TestMain(m *testing.M) {
	if _, err := sandbox.Enter(); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox:", err)
	}
	os.Exit(m.Run())
}
