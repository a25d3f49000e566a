package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/internal/mcapcheck"
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
// subscriber, every message byte-exact and in order.
func TestRecordReplayRoundTrip(t *testing.T) {
	sandbox.Require(t)
	live, out := int(nextPort.Add(1)), int(nextPort.Add(1))
	file := filepath.Join(t.TempDir(), "trip.mcap")
	ps := payloads(40)

	done := startCommand(t, "record", "--port", strconv.Itoa(live), "-o", file, "--count", strconv.Itoa(len(ps)), "--duration", "30s")
	pub := publisherOn(t, mcl.DefaultGroup, live)
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
	if r := mcl_(context.Background(), "", "replay", file, "--port", strconv.Itoa(out), "--speed", "4"); r.code != 0 {
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
	mcapcheck.Validate(t, file)
}

// TestRecordKill9 kills a recorder with SIGKILL and reads what it left.
func TestRecordKill9(t *testing.T) {
	sandbox.Require(t)
	port := int(nextPort.Add(1))
	file := filepath.Join(t.TempDir(), "killed.mcap")
	args, _ := json.Marshal([]string{"record", "--port", strconv.Itoa(port), "-o", file, "--flush", "50ms"})
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childArgs+"="+string(args))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "READY\n" {
		t.Fatalf("recorder did not start: %q %v", line, err)
	}
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
func publisherOn(t *testing.T, group string, port int) *mcl.Publisher {
	t.Helper()
	conn, err := mcl.NewConnection(group, mcl.Port(port))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := mcl.NewPublisher(conn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	return pub
}
