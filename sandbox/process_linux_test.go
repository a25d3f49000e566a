package sandbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// These tests run the test binary again, as a helper process that calls
// Enter in its TestMain like any program would, and check what Enter does
// from the outside: exit status, signals, the parent's death, the
// unprivileged (user namespace) path, and processes started inside.

const (
	unprivEnv = "MCL_SANDBOX_TEST_UNPRIV" // "1": TestUnprivilegedChild acts
	helperEnv = "MCL_SANDBOX_TEST_HELPER" // mode for TestHelperProcess
	netnsEnv  = "MCL_SANDBOX_TEST_NETNS"  // the starting test's namespace
)

// exitUnavailable is TestUnprivilegedChild's exit status when the kernel
// refuses to create the namespaces.
const exitUnavailable = 77

// helper returns a command running the test binary bin (the running one if
// "") with only the named test, its environment that of this process
// without the marker (so that the helper starts outside, like a program
// run from a shell) plus extra.
func helper(t *testing.T, bin, test string, extra ...string) *exec.Cmd {
	t.Helper()
	if bin == "" {
		var err error
		if bin, err = os.Executable(); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, bin, "-test.run=^"+test+"$", "-test.v")
	cmd.Env = append(environWithout(markerEnv), extra...)
	cmd.Stderr = &testWriter{t: t}
	return cmd
}

// testWriter logs a helper's stderr.
type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Logf("helper stderr: %s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startHelper starts a TestHelperProcess in the given mode and returns it
// with the pid it reported, which is the pid of the process that runs the
// tests (Enter's child).
func startHelper(t *testing.T, mode string, sysProcAttr *syscall.SysProcAttr) (*exec.Cmd, *bufio.Reader, int) {
	t.Helper()
	cmd := helper(t, "", "TestHelperProcess", helperEnv+"="+mode)
	cmd.SysProcAttr = sysProcAttr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	br := bufio.NewReader(out)
	line := expectLine(t, br, "READY ")
	pid, err := strconv.Atoi(line)
	if err != nil {
		t.Fatalf("bad READY line %q", line)
	}
	return cmd, br, pid
}

// expectLine reads the helper's stdout up to a line starting with prefix
// and returns the rest of that line.
func expectLine(t *testing.T, br *bufio.Reader, prefix string) string {
	t.Helper()
	for {
		line, err := br.ReadString('\n')
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			return strings.TrimSpace(rest)
		}
		if err != nil {
			t.Fatalf("helper output ended (%v) without a %q line", err, prefix)
		}
	}
}

// TestHelperProcess is the helper the other tests start; it does nothing
// unless MCL_SANDBOX_TEST_HELPER is set.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("helper process for other tests")
	}
	n, err := Current()
	if err != nil {
		fmt.Printf("ERROR %v\n", err)
		os.Exit(2)
	}
	switch mode {
	case "exit":
		os.Exit(7)
	case "signal":
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
		fmt.Printf("READY %d\n", os.Getpid())
		fmt.Printf("GOT %d\n", <-sigs)
		os.Exit(42)
	case "selfkill":
		syscall.Kill(os.Getpid(), syscall.SIGTERM)
		select {}
	case "block":
		fmt.Printf("READY %d\n", os.Getpid())
		select {}
	case "adopt":
		// Started from inside: no new namespace, the network is there.
		id, err := netnsID()
		if err != nil {
			t.Fatal(err)
		}
		if want := os.Getenv(netnsEnv); id != want {
			t.Fatalf("helper is in network namespace %s, want its starter's %s", id, want)
		}
		checkInterfaces(t, n)
		fmt.Printf("ADOPTED %d\n", os.Getpid())
	default:
		t.Fatalf("unknown helper mode %q", mode)
	}
}

func TestExitStatus(t *testing.T) {
	Require(t)
	err := helper(t, "", "TestHelperProcess", helperEnv+"=exit").Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 7 {
		t.Fatalf("helper exiting with 7: err = %v, want exit status 7", err)
	}
}

func TestChildKilledBySignal(t *testing.T) {
	Require(t)
	err := helper(t, "", "TestHelperProcess", helperEnv+"=selfkill").Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("helper killing itself: err = %v, want an exit error", err)
	}
	ws := ee.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Errorf("helper killing itself with SIGTERM: status %v, want killed by SIGTERM", ee)
	}
}

func TestSignalForwarding(t *testing.T) {
	Require(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(unix.SignalName(sig), func(t *testing.T) {
			// A new session has no controlling terminal, so nothing but
			// the parent's forwarding can deliver the signal to the child.
			cmd, out, pid := startHelper(t, "signal", &syscall.SysProcAttr{Setsid: true})
			if pid == cmd.Process.Pid {
				t.Fatalf("the helper's tests run in the process started (%d), want in Enter's child", pid)
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if got := expectLine(t, out, "GOT "); got != strconv.Itoa(int(sig)) {
				t.Errorf("child got signal %s, want %d", got, sig)
			}
			io.Copy(io.Discard, out)
			err := cmd.Wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 42 {
				t.Errorf("helper: err = %v, want exit status 42", err)
			}
		})
	}
}

func TestParentDeathKillsChild(t *testing.T) {
	Require(t)
	cmd, _, pid := startHelper(t, "block", nil)
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatalf("pidfd_open(%d): %v", pid, err)
	}
	defer unix.Close(pidfd)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	// The pidfd becomes readable when the process exits.
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, int(waitFor/time.Millisecond))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Fatalf("Enter's child %d still runs %v after its parent was killed", pid, waitFor)
		}
		return
	}
}

// TestAdopt: a process started from inside the sandbox inherits the marker
// and the namespace, and its Enter returns the existing network.
func TestAdopt(t *testing.T) {
	Require(t)
	id, err := netnsID()
	if err != nil {
		t.Fatal(err)
	}
	cmd := helper(t, "", "TestHelperProcess", helperEnv+"=adopt", netnsEnv+"="+id)
	cmd.Env = append(os.Environ(), helperEnv+"=adopt", netnsEnv+"="+id) // keep the marker
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); !strings.Contains(got, fmt.Sprintf("ADOPTED %d", cmd.Process.Pid)) {
		t.Errorf("helper output %q, want it to have adopted the network in the process started (%d)", got, cmd.Process.Pid)
	}
}

// TestUnprivileged runs a copy of the test binary as uid/gid 65534, which
// must enter the sandbox through a user namespace.
func TestUnprivileged(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run the test binary as uid 65534")
	}
	if !mapped("/proc/self/uid_map", 65534) || !mapped("/proc/self/gid_map", 65534) {
		t.Skip("needs root, to run the test binary as uid 65534, which is not mapped in this user namespace")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The go build directory is private (0700): copy the binary where
	// nobody can reach it.
	dir, err := os.MkdirTemp("", "mcl-sandbox-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, filepath.Base(exe))
	if err := copyFile(bin, exe); err != nil {
		t.Fatal(err)
	}

	cmd := helper(t, bin, "TestUnprivilegedChild", unprivEnv+"=1")
	cmd.Dir = dir
	cmd.Stderr = nil
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == exitUnavailable {
		t.Skipf("the kernel refuses unprivileged user namespaces here:\n%s", out)
	}
	if err != nil {
		t.Fatalf("unprivileged child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: TestUnprivilegedChild") {
		t.Fatalf("unprivileged child did not pass:\n%s", out)
	}
	t.Logf("unprivileged child:\n%s", out)
}

// mapped reports whether id is mapped in the user namespace, according to
// /proc/self/uid_map or gid_map.
func mapped(file string, id int) bool {
	b, err := os.ReadFile(file)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		var inside, outside, count int
		if _, err := fmt.Sscan(line, &inside, &outside, &count); err == nil && inside <= id && id < inside+count {
			return true
		}
	}
	return false
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, 0o755)
}

// TestUnprivilegedChild is the unprivileged side of TestUnprivileged; it
// does nothing unless MCL_SANDBOX_TEST_UNPRIV=1.
func TestUnprivilegedChild(t *testing.T) {
	if os.Getenv(unprivEnv) != "1" {
		t.Skip("helper process for TestUnprivileged")
	}
	n, err := Current()
	if err != nil {
		// Refused by the kernel: Enter came back outside. A failure to
		// set the network up in a namespace that could be created is
		// ours, unless AppArmor took the namespace's capabilities.
		msg := err.Error()
		if !Inside() && (!strings.Contains(msg, "in the userns sandbox") || strings.Contains(msg, "apparmor")) {
			fmt.Printf("UNAVAILABLE: %v\n", err)
			os.Exit(exitUnavailable)
		}
		t.Fatalf("Enter: %v", err)
	}
	m, err := parseMarker(os.Getenv(markerEnv))
	if err != nil {
		t.Fatal(err)
	}
	if m.kind != kindUserns {
		t.Errorf("Enter made a %s sandbox, want %s", m.kind, kindUserns)
	}
	if os.Getuid() != 0 || os.Getgid() != 0 {
		t.Errorf("uid %d gid %d in the user namespace, want 0 0", os.Getuid(), os.Getgid())
	}
	for _, f := range []string{"/proc/self/uid_map", "/proc/self/gid_map"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Fields(string(b)); strings.Join(got, " ") != "0 65534 1" {
			t.Errorf("%s = %q, want 0 65534 1 (root inside is nobody outside)", f, b)
		}
	}
	checkInterfaces(t, n)
	for _, fam := range families {
		r := listen(t, fam, 0, sockOpts{})
		r.join(t, n.Peer)
		s := newSender(t, n, fam, n.Iface, false)
		msg := nonce()
		s.send(t, r.port(), msg)
		if dg := r.readPayload(t, msg); dg.ifindex != mustInterface(t, n.Peer).Index {
			t.Errorf("%s: received on interface %d, want %s", fam.name, dg.ifindex, n.Peer)
		}
	}
}
