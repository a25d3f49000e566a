package mcl

import "golang.org/x/sys/unix"

// netNamespace identifies the network namespace of the calling thread,
// where a socket it opens belongs: Subscribers in different namespaces
// (a test's or a tool's sites, each on a thread that entered its own)
// must not share a socket, even for the same group and port. 0 if the
// kernel does not say.
func netNamespace() uint64 {
	var st unix.Stat_t
	if unix.Stat("/proc/thread-self/ns/net", &st) != nil {
		return 0
	}
	return st.Ino
}
