package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mcl-go/mcl/sandbox"
)

// childEnv, when set, makes the test binary a child process of a test
// (see actChild) instead of running the tests.
const childEnv = "MCL_BENCH_TEST_CHILD"

// spawnTest returns a Spawn that runs the test binary as a child that
// acts as act says (see actChild).
func spawnTest(act string) func() *exec.Cmd {
	return func() *exec.Cmd {
		cmd := exec.Command("/proc/self/exe")
		cmd.Env = append(os.Environ(), childEnv+"="+act)
		return cmd
	}
}

// actChild is the body of a test's child process, and returns its exit
// status. "serve" is a child of cross-process mode, as `mcl bench child`
// is; the others need no network and act out children that go wrong, or
// right: "fail" fails to set up, "hang" never gets ready, "die" dies once
// ready, "ready" gets ready and stops when told.
func actChild(act string) int {
	in := bufio.NewReader(os.Stdin)
	if act != "serve" {
		if _, err := in.ReadString('\n'); err != nil { // the task
			fmt.Fprintln(os.Stderr, "no task:", err)
			return 1
		}
	}
	switch act {
	case "serve":
		if _, err := sandbox.Current(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := ServeChild(context.Background(), in, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	case "fail":
		fmt.Fprintln(os.Stderr, "no sockets today")
		return 3
	case "hang":
		time.Sleep(time.Hour)
	case "die":
		fmt.Println(readyLine)
		fmt.Fprintln(os.Stderr, "crashed")
		return 4
	case "ready":
		fmt.Println(readyLine)
		io.Copy(io.Discard, in)
		return 0
	}
	fmt.Fprintln(os.Stderr, "no such act:", act)
	return 2
}

// startTest starts a child that acts as act says, with two shared
// counters, and kills it at the end of the test.
func startTest(t *testing.T, ctx context.Context, act string) *child {
	t.Helper()
	k, err := processes{spawn: spawnTest(act)}.start(ctx, "subscriber 2 of 4", task{Role: roleSubscriber}, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.kill)
	return k
}

// TestChildFailure checks that a child that fails to set up gives an
// error that names its role and quotes its stderr.
func TestChildFailure(t *testing.T) {
	k := startTest(t, context.Background(), "fail")
	err := k.ready()
	for _, want := range []string{"subscriber 2 of 4 process exited while setting up", "exit status 3", "its stderr: no sockets today"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want an error saying %q", err, want)
		}
	}
}

// TestChildKilledWithContext checks that a child that hangs is killed
// when the context of its row ends (a Ctrl-C), without waiting for it.
func TestChildKilledWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	k := startTest(t, ctx, "hang")
	cancel()
	err := k.ready()
	if err == nil || !strings.Contains(err.Error(), "exited while setting up (signal: killed)") {
		t.Errorf("got %v, want the child killed", err)
	}
}

// TestChildDies checks that a child that dies after it got ready is
// found out, by a row's check between turns and by a ping-pong waiting for
// its echo, with its stderr.
func TestChildDies(t *testing.T) {
	k := startTest(t, context.Background(), "die")
	if err := k.ready(); err != nil {
		t.Fatal(err)
	}
	<-k.exited
	want := "subscriber 2 of 4 process exited before its row was done (exit status 4); its stderr: crashed"
	if err := (children{k}).exitedEarly(); err == nil || err.Error() != want {
		t.Errorf("check between turns: %v, want %q", err, want)
	}
	timeout := k.watch(func() error { return os.ErrDeadlineExceeded })
	if err := timeout(); err == nil || err.Error() != want {
		t.Errorf("round trip without a reply: %v, want %q", err, want)
	}
	other := errors.New("other")
	if err := k.watch(func() error { return other })(); err != other {
		t.Errorf("other error: %v, want it passed on", err)
	}
}

// TestChildStops checks the way a row ends without error: the children
// are told to stop, exit 0, and are released.
func TestChildStops(t *testing.T) {
	ks := children{startTest(t, context.Background(), "ready"), startTest(t, context.Background(), "ready")}
	for _, k := range ks {
		if err := k.ready(); err != nil {
			t.Fatal(err)
		}
	}
	if err := ks.exitedEarly(); err != nil {
		t.Errorf("children running: %v", err)
	}
	if err := ks.stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
	ks.kill() // a second time, as a row's deferred clean-up does
	for _, k := range ks {
		if !k.cmd.ProcessState.Success() {
			t.Errorf("child ended %v", k.cmd.ProcessState)
		}
	}
}

// TestServeChildBadTask checks that a child refuses a task it does not
// know before it opens anything.
func TestServeChildBadTask(t *testing.T) {
	for in, want := range map[string]string{
		"":                                "no task on stdin",
		"juggle\n":                        "task \"juggle\\n\"",
		`{"role":"juggler","ports":[]}`:   "bad task",
		`{"role":"subscriber","size":64}`: "bad task",
		`{"role":"echo","group":"ff15::1","ports":[29001,29002]}` + "\n": "bad task",
	} {
		var out strings.Builder
		err := ServeChild(context.Background(), strings.NewReader(in), &out)
		if err == nil || !strings.Contains(err.Error(), want) || out.Len() > 0 {
			t.Errorf("task %q: %v, said %q; want an error saying %q and nothing said", in, err, out.String(), want)
		}
	}
}

// TestSharedCounters checks that a count made through one mapping of the
// shared memory shows through another, as a child's does in Run.
func TestSharedCounters(t *testing.T) {
	if size := unsafe.Sizeof(counter{}); size > counterSpan {
		t.Fatalf("a counter takes %d bytes, more than its span of %d", size, counterSpan)
	}
	parent, err := newShared(2)
	if err != nil {
		t.Fatal(err)
	}
	defer parent.close()
	fd, err := unix.Dup(int(parent.f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	kid, err := mapShared(os.NewFile(uintptr(fd), "counters"))
	if err != nil {
		t.Fatal(err)
	}
	defer kid.close()
	kid.at(1).add(100)
	kid.at(1).add(100)
	if m, b := parent.at(1).msgs.Load(), parent.at(1).bytes.Load(); m != 2 || b != 200 {
		t.Errorf("counter 1 seen from the other mapping: %d messages, %d bytes; want 2 and 200", m, b)
	}
	if m := parent.at(0).msgs.Load(); m != 0 {
		t.Errorf("counter 0 counted %d", m)
	}
}

// TestHeadKeepsStart checks that a child's stderr is quoted from its start,
// and says how much was left out.
func TestHeadKeepsStart(t *testing.T) {
	var h head
	fmt.Fprintln(&h, "panic: boom")
	h.Write([]byte(strings.Repeat("x", stderrLimit)))
	s := h.String()
	if !strings.HasPrefix(s, "panic: boom\n") || !strings.HasSuffix(s, " [and 12 bytes more]") {
		t.Errorf("kept %q...%q", s[:20], s[len(s)-30:])
	}
}
