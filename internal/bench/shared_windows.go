package bench

import (
	"errors"
	"os"
)

// mapShared fails: cross-process mode, like the sandbox, needs Linux.
func mapShared(*os.File) (*shared, error) {
	return nil, errors.New("cross-process mode needs Linux")
}

// close does nothing: no memory is ever mapped here.
func (s *shared) close() {}
