package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/recording"
	"github.com/mcl-go/mcl/sandbox"
)

// openPTY opens a pseudo-terminal: what is written to master is read
// from tty, and the other way round. It skips the test where there is
// none to open.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("no pseudo-terminal: unlock: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// screen collects what a program writes to a terminal, read from its
// master side, and tells a test when some text has appeared.
type screen struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	more chan struct{} // a value after each read
}

func readScreen(master *os.File) *screen {
	s := &screen{more: make(chan struct{}, 1)}
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := master.Read(b)
			s.mu.Lock()
			s.buf.Write(b[:n])
			s.mu.Unlock()
			select {
			case s.more <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	return s
}

func (s *screen) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// waitFor waits until the screen shows want after from bytes (a length of
// String taken before), and returns the length of what it shows then.
func (s *screen) waitFor(t *testing.T, from int, want string) int {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		out := s.String()
		if i := strings.Index(out[from:], want); i >= 0 {
			return from + i + len(want)
		}
		select {
		case <-s.more:
		case <-timeout:
			t.Fatalf("the terminal does not show %q; it shows %q", want, out[from:])
		}
	}
}

// startOnTerminal runs mcl args in a process of its own whose controlling
// terminal, standard input and standard error are tty (in its foreground,
// as a shell runs a command), or with foreground false only its standard
// input and error, as a job a shell put in the background.
func startOnTerminal(t *testing.T, tty *os.File, foreground bool, args ...string) *exec.Cmd {
	t.Helper()
	js, _ := json.Marshal(args)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childArgs+"="+string(js))
	cmd.Stdin, cmd.Stderr = tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: foreground, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

// exitCode waits for cmd and returns its exit status.
func exitCode(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil && cmd.ProcessState == nil {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode()
	case <-time.After(20 * time.Second):
		t.Fatal("the command did not exit")
	}
	return -1
}

// hourApart writes a recording of n messages on topic "t" whose payloads
// are the msgpack ints 0, 1, ..., an hour apart but for the second and
// third, a second after the one before them.
func hourApart(t *testing.T, n int) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "hours.mcap")
	rec, err := recording.Create(file, recording.Options{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	group := netip.AddrPortFrom(netip.MustParseAddr(mcl.DefaultGroup), 26000)
	for i := range n {
		if i == 1 || i > 3 {
			at = at.Add(time.Hour)
		} else if i > 0 {
			at = at.Add(time.Second)
		}
		if err := rec.Write(group, &mcl.Message{Topic: "t", Payload: []byte{byte(i)}, Received: at}); err != nil {
			t.Fatal(err)
		}
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	return file
}

// termios returns the terminal settings of tty.
func termios(t *testing.T, tty *os.File) unix.Termios {
	t.Helper()
	st, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	return *st
}

// replayed returns a channel of the payloads (one byte each) that arrive
// on port.
func replayed(t *testing.T, port int) <-chan *mcl.Message {
	t.Helper()
	conn, err := mcl.NewConnection(mcl.DefaultGroup, mcl.Port(port))
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan *mcl.Message, 16)
	sub, err := mcl.SubscribeChan(conn, ch)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close() })
	return ch
}

// expect waits for message want to be replayed.
func expect(t *testing.T, ch <-chan *mcl.Message, want int) {
	t.Helper()
	select {
	case m := <-ch:
		if len(m.Payload) != 1 || int(m.Payload[0]) != want {
			t.Fatalf("replayed %v, want message %d", m.Payload, want)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("message %d was not replayed", want)
	}
}

// TestReplayTerminal replays a recording whose messages are hours apart
// on a terminal, stepping through them with n, . and the right arrow,
// pausing and resuming with space, quitting with q: each step sends one
// message, the status line follows, and the terminal's settings are
// restored at the end.
func TestReplayTerminal(t *testing.T) {
	sandbox.Require(t)
	master, tty := openPTY(t)
	before := termios(t, tty)
	file := hourApart(t, 6) // at 0, 1h, 1h+1s, 1h+2s, 2h+2s, 3h+2s
	port := int(nextPort.Add(1))
	ch := replayed(t, port)
	scr := readScreen(master)
	t.Setenv("TERM", "xterm")
	t.Setenv("NO_COLOR", "")
	cmd := startOnTerminal(t, tty, true, "replay", file, "--port", strconv.Itoa(port))

	at := scr.waitFor(t, 0, "replay: sending to [ff15::c73d:cf41:ea8e:b0a0]:"+strconv.Itoa(port))
	at = scr.waitFor(t, at, "\r\n") // raw mode: the carriage return is replay's
	expect(t, ch, 0)
	at = scr.waitFor(t, at, "replay 0:00.0/3:00:02  1/6 msgs")

	for i, key := range []string{"n", ".", "\x1b[C"} {
		master.WriteString(key)
		expect(t, ch, i+1)
		at = scr.waitFor(t, at, fmt.Sprintf("%d/6 msgs", i+2))
	}
	at = scr.waitFor(t, at, sgrBold+sgrYellow+"PAUSED"+sgrReset+" 1:00:02/3:00:02  4/6 msgs")
	master.WriteString(" ") // resume: message 4 is an hour away
	at = scr.waitFor(t, at, "replay 1:00:02/3:00:02")
	master.WriteString("q")
	if code := exitCode(t, cmd); code != 0 {
		t.Fatalf("replay exited %d: %q", code, scr.String())
	}
	scr.waitFor(t, at, "\r\x1b[Kreplayed 4 messages")
	select {
	case m := <-ch:
		t.Fatalf("message %v replayed after q", m.Payload)
	default:
	}
	if after := termios(t, tty); after != before {
		t.Errorf("terminal settings not restored:\nbefore %+v\nafter  %+v", before, after)
	}
}

// TestReplayTerminalCtrlC: in raw mode Ctrl-C is a key, not a signal;
// replay reads it as q, ends as at the end, and restores the terminal.
func TestReplayTerminalCtrlC(t *testing.T) {
	sandbox.Require(t)
	master, tty := openPTY(t)
	before := termios(t, tty)
	port := int(nextPort.Add(1))
	ch := replayed(t, port)
	scr := readScreen(master)
	t.Setenv("NO_COLOR", "1")
	cmd := startOnTerminal(t, tty, true, "replay", hourApart(t, 3), "--port", strconv.Itoa(port))
	expect(t, ch, 0)
	at := scr.waitFor(t, 0, "1/3 msgs")
	master.WriteString("\x03")
	if code := exitCode(t, cmd); code != 0 {
		t.Fatalf("replay exited %d: %q", code, scr.String())
	}
	scr.waitFor(t, at, "replayed 1 messages")
	if after := termios(t, tty); after != before {
		t.Errorf("terminal settings not restored:\nbefore %+v\nafter  %+v", before, after)
	}
	if out := scr.String(); strings.Contains(out, "\x1b[1m") || strings.Contains(out, "\x1b[3") {
		t.Errorf("colours with NO_COLOR=1: %q", out)
	}
}

// TestReplayBackground: a replay that is not in its terminal's foreground
// (a shell's background job) leaves the terminal's settings alone and
// shows no status line, as replay off a terminal does: setting or reading
// the terminal would have the job stopped.
func TestReplayBackground(t *testing.T) {
	sandbox.Require(t)
	master, tty := openPTY(t)
	before := termios(t, tty)
	port := int(nextPort.Add(1))
	ch := replayed(t, port)
	scr := readScreen(master)
	cmd := startOnTerminal(t, tty, false, "replay", hourApart(t, 2), "--port", strconv.Itoa(port), "--speed", "0")
	expect(t, ch, 0)
	expect(t, ch, 1)
	if code := exitCode(t, cmd); code != 0 {
		t.Fatalf("replay exited %d: %q", code, scr.String())
	}
	scr.waitFor(t, 0, "replayed 2 messages")
	if out := scr.String(); strings.Contains(out, "msgs") || strings.Contains(out, "\x1b[K") {
		t.Errorf("a background replay drew a status line: %q", out)
	}
	if after := termios(t, tty); after != before {
		t.Errorf("terminal settings changed: %+v, %+v", before, after)
	}
}

// TestColorTerminal runs topics --once on a terminal: its header is bold,
// unless NO_COLOR is set or the terminal is dumb.
func TestColorTerminal(t *testing.T) {
	sandbox.Require(t)
	for _, tc := range []struct {
		noColor, term string
		colour        bool
	}{
		{"", "xterm", true},
		{"1", "xterm", false},
		{"0", "xterm", false}, // any value but the empty string
		{"", "dumb", false},
	} {
		t.Run(fmt.Sprintf("NO_COLOR=%s,TERM=%s", tc.noColor, tc.term), func(t *testing.T) {
			master, tty := openPTY(t)
			scr := readScreen(master)
			t.Setenv("NO_COLOR", tc.noColor)
			t.Setenv("TERM", tc.term)
			code := run(context.Background(), []string{"topics", "--once", "--window", "10ms", "--port", strconv.Itoa(int(nextPort.Add(1)))}, strings.NewReader(""), tty, tty)
			if code != 0 {
				t.Fatalf("topics exited %d: %q", code, scr.String())
			}
			end := scr.waitFor(t, 0, "dropped 0")
			out := scr.String()[:end]
			if got := strings.Contains(out, sgrBold+"TOPIC"); got != tc.colour {
				t.Errorf("bold header %v, want %v: %q", got, tc.colour, out)
			}
			if !tc.colour && strings.Contains(out, "\x1b[") {
				t.Errorf("escape sequences without colour: %q", out)
			}
		})
	}
}
