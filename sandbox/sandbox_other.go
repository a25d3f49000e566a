//go:build !linux

package sandbox

import (
	"fmt"
	"runtime"
)

func enterOutside() error {
	return fmt.Errorf("%w: network namespaces exist only on Linux, not on %s", ErrUnavailable, runtime.GOOS)
}

func enterInside() (*Network, error) {
	return nil, fmt.Errorf("%w: network namespaces exist only on Linux, not on %s", ErrUnavailable, runtime.GOOS)
}

func setLinkMTU(int) error {
	return fmt.Errorf("%w: network namespaces exist only on Linux, not on %s", ErrUnavailable, runtime.GOOS)
}
