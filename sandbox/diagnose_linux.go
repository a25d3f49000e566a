package sandbox

import (
	"errors"
	"io/fs"
	"strings"
)

// diagnose explains why no namespace could be created and how to fix it,
// from the kernel's settings. read reads a file (os.ReadFile, or a fake in
// tests); euid is the effective user ID. The result starts with "; ".
func diagnose(read func(string) ([]byte, error), euid int) string {
	get := func(path string) (string, bool) {
		b, err := read(path)
		if err != nil {
			return "", false
		}
		return strings.TrimSpace(string(b)), true
	}
	var reasons, fixes []string
	if _, err := read("/proc/self/ns/user"); errors.Is(err, fs.ErrNotExist) {
		reasons = append(reasons, "the kernel has no user namespaces (CONFIG_USER_NS is off)")
	}
	if v, ok := get("/proc/sys/user/max_user_namespaces"); ok && v == "0" {
		reasons = append(reasons, "user namespaces are disabled: user.max_user_namespaces=0")
		fixes = append(fixes, "sysctl -w user.max_user_namespaces=16384")
	}
	if v, ok := get("/proc/sys/user/max_net_namespaces"); ok && v == "0" {
		reasons = append(reasons, "network namespaces are disabled: user.max_net_namespaces=0")
		fixes = append(fixes, "sysctl -w user.max_net_namespaces=16384")
	}
	if euid != 0 {
		if v, ok := get("/proc/sys/kernel/unprivileged_userns_clone"); ok && v == "0" {
			reasons = append(reasons, "unprivileged user namespaces are disabled: kernel.unprivileged_userns_clone=0")
			fixes = append(fixes, "sysctl -w kernel.unprivileged_userns_clone=1")
		}
		if v, ok := get("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"); ok && v == "1" {
			reasons = append(reasons, "unprivileged user namespaces are disabled: kernel.apparmor_restrict_unprivileged_userns=1")
			fixes = append(fixes, "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 (or give this program an AppArmor profile that allows userns)")
		}
	}
	if len(reasons) == 0 {
		reasons = append(reasons, "namespaces are probably blocked by a seccomp filter or a container runtime")
		fixes = append(fixes, "in a container, give it CAP_SYS_ADMIN and an unconfined seccomp profile (docker run --cap-add SYS_ADMIN --security-opt seccomp=unconfined, or --privileged)")
	}
	if euid != 0 {
		fixes = append([]string{"run as root (sudo)"}, fixes...)
	}
	return "; " + strings.Join(reasons, "; ") + "; to fix: " + strings.Join(fixes, ", or ")
}
