//go:build !linux

package mcl

// netNamespace is 0 where there are no network namespaces.
func netNamespace() uint64 { return 0 }
