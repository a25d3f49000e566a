//go:build unix

package main

import "golang.org/x/sys/unix"

// foreground reports whether this process is in the foreground process
// group of the terminal fd.
func foreground(fd int) bool {
	pgrp, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	return err == nil && pgrp == unix.Getpgrp()
}
