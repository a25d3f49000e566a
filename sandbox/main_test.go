package sandbox

import (
	"fmt"
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	if _, err := Enter(); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox:", err) // tests that need it call Require and skip/fail
	}
	os.Exit(m.Run())
}
