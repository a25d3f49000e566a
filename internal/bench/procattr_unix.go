//go:build unix && !linux

package bench

import "syscall"

// childAttr returns the attributes of a child process: out of the
// terminal's process group, so that a Ctrl-C reaches Run, which ends its
// children.
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
