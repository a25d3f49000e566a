package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A kind is one way of creating the sandbox's namespaces.
type kind string

const (
	kindNetns  kind = "netns"  // CLONE_NEWNET, needs CAP_SYS_ADMIN
	kindUserns kind = "userns" // CLONE_NEWUSER|CLONE_NEWNET, for anyone
)

func (k kind) flags() string {
	if k == kindUserns {
		return "CLONE_NEWUSER|CLONE_NEWNET"
	}
	return "CLONE_NEWNET"
}

// statusFD is the child's file descriptor for the status pipe: the first of
// exec.Cmd.ExtraFiles.
const statusFD = 3

// exitSetupFailed is the child's exit status after it reported on the
// status pipe that it could not set the network up.
const exitSetupFailed = 125

// marker is the value of the marker variable: "kind,netns[,fd]", where
// netns identifies the network namespace of the process that ran Enter
// outside (device:inode of /proc/self/ns/net) and fd, present only for the
// child Enter started, is the write end of the status pipe.
type marker struct {
	kind  kind
	outer string
	fd    int
}

func (m marker) String() string {
	s := string(m.kind) + "," + m.outer
	if m.fd > 0 {
		s += "," + strconv.Itoa(m.fd)
	}
	return s
}

func parseMarker(s string) (marker, error) {
	f := strings.Split(s, ",")
	if len(f) < 2 || len(f) > 3 || (f[0] != string(kindNetns) && f[0] != string(kindUserns)) || !strings.Contains(f[1], ":") {
		return marker{}, fmt.Errorf("malformed %s=%q (it is set by sandbox.Enter, not by hand)", markerEnv, s)
	}
	m := marker{kind: kind(f[0]), outer: f[1]}
	if len(f) == 3 {
		fd, err := strconv.Atoi(f[2])
		if err != nil || fd < 3 {
			return marker{}, fmt.Errorf("malformed %s=%q (it is set by sandbox.Enter, not by hand)", markerEnv, s)
		}
		m.fd = fd
	}
	return m, nil
}

// netnsID identifies the network namespace the calling thread is in.
func netnsID() (string, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return "", fmt.Errorf("identifying the network namespace: %w", err)
	}
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino), nil
}

// hasCapSysAdmin reports whether CAP_SYS_ADMIN is in the effective set,
// which is what creating a network namespace without a user namespace takes.
func hasCapSysAdmin() bool {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return os.Geteuid() == 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return os.Geteuid() == 0
			}
			return caps&(1<<unix.CAP_SYS_ADMIN) != 0
		}
	}
	return os.Geteuid() == 0
}

// enterOutside starts the program again in new namespaces and exits with
// its status. It returns only if no child could be started, or every child
// reported that it could not set the network up.
func enterOutside() error {
	outer, err := netnsID()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	var kinds []kind
	if hasCapSysAdmin() {
		kinds = append(kinds, kindNetns)
	}
	kinds = append(kinds, kindUserns)

	var failures []string
	for _, k := range kinds {
		err := runChild(k, outer) // exits if the child got going
		if errors.Is(err, unix.ENOSPC) {
			err = fmt.Errorf("%w (a namespace limit was reached)", err)
		}
		failures = append(failures, fmt.Sprintf("%s: %v", k.flags(), err))
	}
	return fmt.Errorf("%w: no network namespace could be created and set up (%s)%s",
		ErrUnavailable, strings.Join(failures, "; "), diagnose(os.ReadFile, os.Geteuid()))
}

// runChild runs the program in namespaces of the given kind. If the child
// starts and does not report a failure to set the network up, runChild
// exits the process with the child's status; otherwise it returns why.
func runChild(k kind, outer string) error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()

	cmd := exec.Command("/proc/self/exe")
	cmd.Args = append([]string(nil), os.Args...)
	cmd.Env = append(environWithout(markerEnv), markerEnv+"="+marker{kind: k, outer: outer, fd: statusFD}.String())
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdio(os.Stdin), stdio(os.Stdout), stdio(os.Stderr)
	cmd.ExtraFiles = []*os.File{w}
	attr := &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNET,
		// The child must not outlive the parent that waits for it.
		Pdeathsig: syscall.SIGKILL,
	}
	if k == kindUserns {
		attr.Cloneflags |= syscall.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}}
		attr.GidMappingsEnableSetgroups = false
	}
	cmd.SysProcAttr = attr

	// Catch the signals before the child exists, so that none is lost.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer signal.Stop(sigs)

	// Pdeathsig fires when the thread that started the child exits.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	err = cmd.Start()
	w.Close()
	if err != nil {
		return err
	}

	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	for waiting := true; waiting; {
		select {
		case s := <-sigs:
			if shouldForward(s) {
				cmd.Process.Signal(s)
			}
		case <-done:
			waiting = false
		}
	}

	if msg, ok := strings.CutPrefix(readStatus(r), "error "); ok {
		return errors.New(msg)
	}
	exitLike(cmd.ProcessState)
	panic("unreachable")
}

// stdio returns f to pass to the child, or nil (/dev/null) if its file
// descriptor is closed, which would make starting the child fail.
func stdio(f *os.File) *os.File {
	var st unix.Stat_t
	if f == nil || unix.Fstat(int(f.Fd()), &st) != nil {
		return nil
	}
	return f
}

// readStatus returns what the child wrote on the status pipe, without
// waiting: the child has exited, but a process it started before calling
// Enter may still hold the pipe open.
func readStatus(r *os.File) string {
	rc, err := r.SyscallConn()
	if err != nil {
		return ""
	}
	var buf [4096]byte
	n := 0
	rc.Read(func(fd uintptr) bool {
		n, _ = unix.Read(int(fd), buf[:])
		return true // never wait
	})
	if n <= 0 {
		return ""
	}
	return strings.TrimSpace(string(buf[:n]))
}

// shouldForward reports whether a signal the parent received should be
// sent on to the child. The terminal sends SIGINT, SIGQUIT and SIGHUP to its
// whole foreground process group, which holds the child too, so those are
// not forwarded while the parent is in the foreground: the child would get
// them twice.
func shouldForward(s os.Signal) bool {
	if s == syscall.SIGTERM {
		return true
	}
	tty, err := os.Open("/dev/tty")
	if err != nil {
		return true // no controlling terminal
	}
	defer tty.Close()
	fg, err := unix.IoctlGetInt(int(tty.Fd()), unix.TIOCGPGRP)
	if err != nil {
		return true
	}
	return fg != unix.Getpgrp()
}

// exitLike ends the process the way the child ended.
func exitLike(ps *os.ProcessState) {
	ws, ok := ps.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() {
		os.Exit(ps.ExitCode())
	}
	sig := ws.Signal()
	switch sig {
	case syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGKILL:
		// Die of the same signal, so that a shell sees what happened. If
		// the signal is ignored (nohup), fall back to the exit status.
		signal.Reset(sig)
		syscall.Kill(os.Getpid(), sig)
		time.Sleep(time.Second)
	}
	os.Exit(128 + int(sig))
}

func environWithout(name string) []string {
	env := os.Environ()
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// enterInside sets the network up in the namespace Enter's parent created,
// and reports the outcome to the parent if it is waiting for it.
func enterInside() (*Network, error) {
	m, err := parseMarker(os.Getenv(markerEnv))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	var status *os.File
	if m.fd > 0 {
		// Only the child Enter started reports; processes it starts
		// inherit the marker without the descriptor.
		os.Setenv(markerEnv, marker{kind: m.kind, outer: m.outer}.String())
		var st unix.Stat_t
		if unix.Fstat(m.fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFIFO {
			unix.CloseOnExec(m.fd)
			status = os.NewFile(uintptr(m.fd), "sandbox-status")
		}
	}

	n, err := setUp(m)
	if status != nil {
		if err != nil {
			fmt.Fprintf(status, "error %s (in the %s sandbox)\n", strings.ReplaceAll(err.Error(), "\n", " "), m.kind)
			status.Close()
			os.Exit(exitSetupFailed) // the parent goes on with the reason
		}
		fmt.Fprintln(status, "ok")
		status.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return n, nil
}
