//go:build !linux && !windows

package sock

// sysfd is the descriptor a RawConn hands over, as syscall's socket
// functions take it here.
func sysfd(fd uintptr) int { return int(fd) }
