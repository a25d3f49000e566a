package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/internal/mcapcheck"
	"github.com/mcl-go/mcl/mcap"
	"github.com/mcl-go/mcl/recording"
	"github.com/mcl-go/mcl/sandbox"
)

// childArgs, when set, makes the test binary run as the mcl command with
// these arguments (JSON list) instead of running tests: for tests that
// need mcl in a process of its own, to kill it.
const childArgs = "MCL_TEST_COMMAND"

func runChildCommand() {
	var args []string
	if err := json.Unmarshal([]byte(os.Getenv(childArgs)), &args); err != nil {
		panic(err)
	}
	subscribed = func() { os.Stdout.WriteString("READY\n") }
	os.Exit(run(context.Background(), args, os.Stdin, os.Stdout, os.Stderr))
}

// payloads returns n msgpack payloads of assorted sizes, some fragmented.
func payloads(n int) [][]byte {
	var ps [][]byte
	for i := range n {
		size := []int{1, 100, 5000, 200_000}[i%4]
		p := []byte{0xc6, byte(size >> 24), byte(size >> 16), byte(size >> 8), byte(size)}
		for j := range size {
			p = append(p, byte(i+j))
		}
		ps = append(ps, p)
	}
	return ps
}

// TestRecordReplayRoundTrip: live network -> mcl record -> mcl replay ->
// subscriber, every message byte-exact and in order: published in the
// seed framing or in mcl/2, and replayed in either.
func TestRecordReplayRoundTrip(t *testing.T) {
	for _, tc := range []struct{ live, replay string }{{"seed", "seed"}, {"mcl2", "mcl2"}, {"mcl2", "seed"}} {
		t.Run(tc.live+"-to-"+tc.replay, func(t *testing.T) {
			testRecordReplay(t, tc.live, tc.replay)
		})
	}
}

func testRecordReplay(t *testing.T, liveFraming, replayFraming string) {
	sandbox.Require(t)
	live, out := int(nextPort.Add(1)), int(nextPort.Add(1))
	file := filepath.Join(t.TempDir(), "trip.mcap")
	ps := payloads(40)

	done := startCommand(t, "record", "--port", strconv.Itoa(live), "-o", file, "--count", strconv.Itoa(len(ps)), "--duration", "30s")
	var opts []mcl.PublishOption
	if liveFraming == "mcl2" {
		opts = append(opts, mcl.WithFraming(mcl.FramingMCL2))
	}
	pub := publisherOn(t, mcl.DefaultGroup, live, opts...)
	for i, p := range ps {
		if err := pub.PublishRaw("t"+strconv.Itoa(i%3), p); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // pace the sender: the point is timing, not load
	}
	r := wait(t, done)
	if r.code != 0 || !strings.Contains(r.stderr, "recorded 40 messages") {
		t.Fatalf("record: %+v", r)
	}

	outConn, err := mcl.NewConnection(mcl.DefaultGroup, mcl.Port(out))
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan *mcl.Message, len(ps))
	sub, err := mcl.SubscribeChan(outConn, ch)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	// --dry-run lists what would go, and sends nothing: the subscriber's
	// first message is the real replay's.
	dry := mcl_(context.Background(), "", "replay", file, "--port", strconv.Itoa(out), "--dry-run")
	if dry.code != 0 || strings.Count(dry.stdout, "\n") != len(ps) || !strings.Contains(dry.stdout, `"topic":"t1"`) ||
		!strings.Contains(dry.stdout, strconv.Itoa(out)) || !strings.Contains(dry.stderr, "would replay 40 messages") {
		t.Fatalf("replay --dry-run: %+v", dry)
	}
	r = mcl_(context.Background(), "", "replay", file, "--port", strconv.Itoa(out), "--speed", "4", "--framing", replayFraming)
	if r.code != 0 || !strings.Contains(r.stderr, "replay: sending to [ff15::c73d:cf41:ea8e:b0a0]:"+strconv.Itoa(out)) {
		t.Fatalf("replay: %+v", r)
	}
	for i, p := range ps {
		select {
		case m := <-ch:
			if m.Topic != "t"+strconv.Itoa(i%3) || !bytes.Equal(m.Payload, p) {
				t.Fatalf("replayed message %d: topic %q, %d bytes; want %d bytes", i, m.Topic, len(m.Payload), len(p))
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("replay delivered %d of %d messages", i, len(ps))
		}
	}
	if st := sub.Stats(); (st.Senders == 1) != (replayFraming == "mcl2") || st.Lost != 0 {
		t.Fatalf("replayed in %s: subscriber stats %+v", replayFraming, st)
	}
	mcapcheck.Validate(t, file)
}

// startRecorder runs `mcl record args...` in a process of its own, to be
// killed, and returns once it has joined its groups.
func startRecorder(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	js, _ := json.Marshal(append([]string{"record"}, args...))
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childArgs+"="+string(js))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "READY\n" {
		t.Fatalf("recorder did not start: %q %v", line, err)
	}
	return cmd
}

// TestRecordKill9 kills a recorder with SIGKILL and reads what it left.
func TestRecordKill9(t *testing.T) {
	sandbox.Require(t)
	port := int(nextPort.Add(1))
	file := filepath.Join(t.TempDir(), "killed.mcap")
	cmd := startRecorder(t, "--port", strconv.Itoa(port), "-o", file, "--flush", "50ms")
	pub := publisherOn(t, mcl.DefaultGroup, port)
	ps := payloads(30)
	for i, p := range ps {
		if err := pub.PublishRaw("k", p); err != nil {
			t.Fatal(err)
		}
		if i%10 == 9 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	// Wait until a flush has put all of them on disk, then kill.
	deadline := time.Now().Add(10 * time.Second)
	for count(t, file) < len(ps) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d messages reached the disk", count(t, file), len(ps))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	i := 0
	for rec, err := range recording.Read(file, recording.Filter{}) {
		if err != nil {
			t.Logf("after the intact records: %v", err)
			break
		}
		if !bytes.Equal(rec.Payload, ps[i]) {
			t.Fatalf("record %d differs", i)
		}
		i++
	}
	if i != len(ps) {
		t.Fatalf("read %d records after kill -9, want %d", i, len(ps))
	}
	r := mcl_(context.Background(), "", "info", file)
	if r.code != 0 || !strings.Contains(r.stdout, "30") {
		t.Errorf("info on the killed recording: %+v", r)
	}
}

// TestRecordKill9AtOnce kills a recorder the moment it is ready, long
// before its first flush: the file it leaves reads as an empty recording
// that was not closed, with every command.
func TestRecordKill9AtOnce(t *testing.T) {
	sandbox.Require(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "killed.mcap")
	cmd := startRecorder(t, "--port", strconv.Itoa(int(nextPort.Add(1))), "-o", file, "--flush", "1h")
	if err := cmd.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if st, err := os.Stat(file); err != nil || st.Size() == 0 {
		t.Fatalf("the killed recorder left %v, %v; want the MCAP header", st, err)
	}

	var errs []error
	for rec, err := range recording.Read(file, recording.Filter{}) {
		if err == nil {
			t.Fatalf("a record from a recorder killed before any message: %+v", rec)
		}
		errs = append(errs, err)
	}
	if len(errs) != 1 || !errors.Is(errs[0], mcap.ErrTruncated) {
		t.Errorf("recording.Read: %v; want only the missing end", errs)
	}

	r := mcl_(context.Background(), "", "info", file)
	f := inspInfoFields(t, r.stdout)
	if r.code != 0 || f["messages"] != "0" || f["library"] != "mcl" || f["summary"] != "missing: recovered by scanning: file was not closed" {
		t.Errorf("info on the recording killed at once: %+v", r)
	}
	// dump prints its nothing, reports the missing end, and goes on.
	good, msgs := inspSampleFile(t)
	r = mcl_(context.Background(), "", "dump", file, good)
	if r.code != 1 || strings.Count(r.stdout, "\n") != len(msgs) || !strings.Contains(r.stderr, "without a Data End record") {
		t.Errorf("dump: code %d, %d lines, stderr %q", r.code, strings.Count(r.stdout, "\n"), r.stderr)
	}
	r = mcl_(context.Background(), "", "convert", file, "-o", filepath.Join(dir, "out.mcap"))
	if r.code != 1 || !strings.Contains(r.stdout, "0 messages") {
		t.Errorf("convert: %+v", r)
	}
}

// TestRecordFullDisk records onto a small file system until it is full. The
// summary counts exactly the messages the file gives back, and says that
// the disk filled and how many messages were lost.
func TestRecordFullDisk(t *testing.T) {
	sandbox.Require(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	dir := t.TempDir()
	// Room for the first 1 MiB chunk, not for the second.
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1536k", "mcltest", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v %s", err, out)
	}
	defer syscall.Unmount(dir, 0)
	port := int(nextPort.Add(1))
	file := filepath.Join(dir, "full.mcap")
	done := startCommand(t, "record", "--port", strconv.Itoa(port), "-o", file, "--compression", "none", "--flush", "1h")
	pub := publisherOn(t, mcl.DefaultGroup, port)
	p := make([]byte, 1000)
	p[0], p[1], p[2] = 0xc5, 0x03, 0xe5 // bin 16 of 997 bytes
	var r result
publish:
	for i := 0; ; i++ {
		select {
		case r = <-done:
			break publish
		default:
		}
		if i == 20000 {
			r = wait(t, done)
			break
		}
		if err := pub.PublishRaw("f", p); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%+v", r)
	if r.code != 1 || !strings.Contains(r.stderr, "no space left on device") {
		t.Fatalf("record on a full disk: %+v", r)
	}
	var recorded, lost int
	if _, err := fmt.Sscanf(r.stderr, "recorded %d messages", &recorded); err != nil {
		t.Fatalf("no summary: %v", err)
	}
	if i := strings.Index(r.stderr, "disk full: lost "); i < 0 {
		t.Errorf("the summary does not say the disk filled")
	} else if _, err := fmt.Sscanf(r.stderr[i:], "disk full: lost %d received messages", &lost); err != nil || lost == 0 {
		t.Errorf("lost %d messages (%v)", lost, err)
	}
	if n := count(t, file); recorded != n || n == 0 {
		t.Errorf("the summary says %d messages were recorded; the file holds %d", recorded, n)
	}
}

// count reads how many intact records a file holds now.
func count(t *testing.T, file string) int {
	n := 0
	for _, err := range recording.Read(file, recording.Filter{}) {
		if err != nil {
			break
		}
		n++
	}
	return n
}

// TestRecordSeveralGroups records an IPv6 and an IPv4 group into one file
// and finds each message with its own group.
func TestRecordSeveralGroups(t *testing.T) {
	sandbox.Require(t)
	port := int(nextPort.Add(1))
	file := filepath.Join(t.TempDir(), "groups.mcap")
	groups := []string{mcl.DefaultGroup, "239.192.0.9"}
	done := startCommand(t, "record", "--group", groups[0], "--group", groups[1],
		"--port", strconv.Itoa(port), "-o", file, "--count", "4", "--duration", "30s")
	for _, g := range groups {
		pub := publisherOn(t, g, port)
		for range 2 {
			if err := pub.Publish("g", g); err != nil {
				t.Fatal(err)
			}
		}
	}
	if r := wait(t, done); r.code != 0 {
		t.Fatalf("record: %+v", r)
	}
	seen := map[string]int{}
	for rec, err := range recording.Read(file, recording.Filter{}) {
		if err != nil {
			t.Fatal(err)
		}
		var payload string
		m := mcl.Message{Payload: rec.Payload}
		if err := m.Decode(&payload); err != nil || payload != rec.Group.Addr().String() {
			t.Errorf("message %q recorded with group %s", payload, rec.Group)
		}
		seen[rec.Group.Addr().String()]++
	}
	if seen[groups[0]] != 2 || seen[groups[1]] != 2 {
		t.Errorf("messages by group: %v", seen)
	}
	mcapcheck.Validate(t, file)
}

// publisherOn returns a publisher to group and port, closed with the test.
func publisherOn(t *testing.T, group string, port int, opts ...mcl.PublishOption) *mcl.Publisher {
	t.Helper()
	conn, err := mcl.NewConnection(group, mcl.Port(port))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := mcl.NewPublisher(conn, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	return pub
}

// TestRecordCannotCreate checks that an output the file system refuses is
// a failure (exit 1), not bad usage (exit 2), and an impossible one is.
func TestRecordCannotCreate(t *testing.T) {
	for _, tc := range []struct {
		out  string
		args []string
		code int
		want string
	}{
		{"/proc/mcl-nope/", nil, 1, "mkdir /proc/mcl-nope/"},
		{"/proc/mcl-nope/x.mcap", nil, 1, "open /proc/mcl-nope/x.mcap"},
		{filepath.Join(t.TempDir(), "x.mcap"), []string{"--split-size", "10"}, 2, "needs a directory"},
		{t.TempDir(), []string{"--gap", "0s"}, 2, "--gap 0s"},
	} {
		r := mcl_(context.Background(), "", append([]string{"record", "-o", tc.out}, tc.args...)...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("record -o %s %v: exit %d, %q; want exit %d mentioning %q", tc.out, tc.args, r.code, r.stderr, tc.code, tc.want)
		}
	}
}
