package sock

import "syscall"

// sysfd is the descriptor a RawConn hands over, as syscall's socket
// functions take it here.
func sysfd(fd uintptr) syscall.Handle { return syscall.Handle(fd) }
