package bench

import "syscall"

// childAttr returns the attributes of a child process: cross-process mode
// does not run here (see memFile), so nothing is asked.
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
