package sock

import "unsafe"

// The kernel copies a datagram between user memory and its socket buffers
// with "rep movsb" on processors that have fast short rep mov (FSRM). On
// AMD Zen processors, such a copy runs two to three times slower when its
// destination lies 1 to 31 bytes past its source modulo 4096: the check
// for overlapping copies looks at the low 12 address bits only. On this
// project's EPYC test machine, reading 16 KB from a pipe took 15 µs into a
// buffer 1-31 bytes past a page boundary and 5 µs into any other (see
// docs/benchmarks.md).
//
// Where the kernel writes a datagram is not known, but it is predictable
// enough: the socket's page fragment restarts at a page boundary once the
// receivers have freed the datagrams before, the datagrams of one sendmmsg
// follow each other in it, and between restarts a datagram that did not
// fit the rest of a page leaves the next to start a little way into a new
// one. A sender that copies from a buffer starting at a page boundary (as
// large Go allocations do) therefore often hits the slow case. So buffers
// from Buffer start half a page off; WriteOne sends a payload from where it
// lies only if that is well clear of the slow window, and WriteGather
// copies the pieces the kernel would copy slowly.
const (
	aliasPage = 4096
	// aliasSlow bounds the slow window, 1-31 bytes measured, with a margin
	// for processors that look a little further.
	aliasSlow = 64
	// aliasGood is how far before the kernel's expected destination a
	// copy's source is placed: as far from the slow window as can be.
	aliasGood = aliasPage / 2
	// aliasMin is the smallest copy worth moving; below it, the slow path
	// costs less than a copy of our own.
	aliasMin = 1 << 10
	// maxDatagram is more than any UDP datagram holds.
	maxDatagram = 1 << 16
	// aliasDrift is how far past the start of a page the kernel may
	// write a datagram sent alone, as far as WriteOne cares: datagrams
	// left over from a page put the next one tens of bytes in.
	aliasDrift = 512
)

// Buffer returns a buffer of length and capacity n placed half a page off,
// so that the kernel's copies to it and from it are not slowed by the
// address aliasing described above, wherever in its page the kernel's side
// of the copy starts, give or take half a page.
func Buffer(n int) []byte {
	return alignedAt(n, 0)[:n]
}

// alignedAt returns an empty buffer of capacity n whose first byte lies
// aliasGood before kernelAt, modulo aliasPage.
func alignedAt(n, kernelAt int) []byte {
	b := make([]byte, n+aliasPage)
	off := goodOffset(b, kernelAt)
	return b[off : off : off+n]
}

// goodOffset returns where in b, within its first page, a copy for the
// kernel to put at offset kernelAt of a page is to start: aliasGood
// before it, modulo aliasPage.
func goodOffset(b []byte, kernelAt int) int {
	return (kernelAt - aliasGood - int(addr(b))) & (aliasPage - 1)
}

// slowCopy reports whether the kernel's copy of body, expected at offset
// kernelAt of a page or up to drift bytes further, could take the slow
// path.
func slowCopy(body []byte, kernelAt, drift int) bool {
	if len(body) < aliasMin {
		return false
	}
	d := (kernelAt - int(addr(body)) + drift) & (aliasPage - 1)
	return 0 < d && d < aliasSlow+drift
}

func addr(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }
