package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/sandbox"
)

func TestMain(m *testing.M) {
	if os.Getenv(childArgs) != "" {
		runChildCommand()
	}
	if _, err := sandbox.Enter(); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox:", err)
	}
	os.Exit(m.Run())
}

var nextPort atomic.Int32

func init() { nextPort.Store(28000) }

type result struct {
	code           int
	stdout, stderr string
}

func mcl_(ctx context.Context, stdin string, args ...string) result {
	var out, errb bytes.Buffer
	code := run(ctx, args, strings.NewReader(stdin), &out, &errb)
	return result{code, out.String(), errb.String()}
}

// startSub runs `mcl sub` in the background and returns once it has joined.
func startSub(t *testing.T, args ...string) <-chan result {
	t.Helper()
	return startCommand(t, append([]string{"sub"}, args...)...)
}

// startCommand runs a command that subscribes (sub, record) in the
// background and returns once it has joined its groups.
func startCommand(t *testing.T, args ...string) <-chan result {
	t.Helper()
	return startCommandContext(t, context.Background(), nil, args...)
}

// startCommandContext is startCommand with a context whose end is the
// command's Ctrl-C, and its standard output written to stdout as well
// when that is not nil.
func startCommandContext(t *testing.T, ctx context.Context, stdout io.Writer, args ...string) <-chan result {
	t.Helper()
	joined := make(chan struct{})
	subscribed = func() { close(joined) }
	t.Cleanup(func() { subscribed = func() {} })
	done := make(chan result, 1)
	go func() {
		if stdout == nil {
			done <- mcl_(ctx, "", args...)
			return
		}
		var errb bytes.Buffer
		code := run(ctx, args, strings.NewReader(""), stdout, &errb)
		done <- result{code, "", errb.String()}
	}()
	select {
	case <-joined:
	case r := <-done:
		t.Fatalf("mcl %s exited early: %+v", args[0], r)
	}
	return done
}

func wait(t *testing.T, done <-chan result) result {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("mcl sub did not exit")
	}
	return result{}
}

func counters(t *testing.T, stderr string) map[string]uint64 {
	t.Helper()
	m := map[string]uint64{}
	sc := bufio.NewScanner(strings.NewReader(stderr))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 {
			if v, err := strconv.ParseUint(f[1], 10, 64); err == nil {
				m[f[0]] = v
			}
		}
	}
	return m
}

func TestPubSubLines(t *testing.T) {
	sandbox.Require(t)
	for _, group := range []string{mcl.DefaultGroup, "239.192.0.7"} {
		t.Run(group, func(t *testing.T) {
			port := strconv.Itoa(int(nextPort.Add(1)))
			done := startSub(t, "--group", group, "--port", port, "--topic", "gps", "--count", "4", "--timeout", "20s")
			long := strings.Repeat("x", 200_000) // a line longer than any scanner buffer, and a fragmented message
			stdin := `{"lat": -33.89, "lon": 151.19, "ok": true}` + "\n\n" +
				`"` + long + `"` + "\n" +
				`[1, -2, 3.5, null, {"z": 1, "a": 2}]` + "\n" +
				`"héllo"` // no final newline
			if r := mcl_(context.Background(), stdin, "pub", "--group", group, "--port", port, "--topic", "gps"); r.code != 0 {
				t.Fatalf("pub: %+v", r)
			}
			r := wait(t, done)
			if r.code != 0 {
				t.Fatalf("sub: %+v", r)
			}
			want := []string{
				`{"topic":"gps","payload":{"lat":-33.89,"lon":151.19,"ok":true}}`,
				`{"topic":"gps","payload":"` + long + `"}`,
				`{"topic":"gps","payload":[1,-2,3.5,null,{"z":1,"a":2}]}`,
				`{"topic":"gps","payload":"héllo"}`,
			}
			got := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
			if len(got) != len(want) {
				t.Fatalf("sub printed %d lines, want %d:\n%.500s", len(got), len(want), r.stdout)
			}
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("line %d:\n got %.200s\nwant %.200s", i, got[i], want[i])
				}
				if !json.Valid([]byte(got[i])) {
					t.Errorf("line %d is not JSON", i)
				}
			}
			if c := counters(t, r.stderr); c["delivered"] != 4 || c["reassembled"] != 1 {
				t.Errorf("counters %v", c)
			}
		})
	}
}

func TestPubPayloadCount(t *testing.T) {
	sandbox.Require(t)
	port := strconv.Itoa(int(nextPort.Add(1)))
	done := startSub(t, "--port", port, "--count", "3", "--meta")
	r := mcl_(context.Background(), "", "pub", "--port", port, "--topic", "t", "--payload", `{"a": "\u00ff"}`, "--count", "3")
	if r.code != 0 {
		t.Fatalf("pub: %+v", r)
	}
	if c := counters(t, r.stderr); c["messages"] != 3 {
		t.Errorf("pub counters %v", c)
	}
	s := wait(t, done)
	lines := strings.Split(strings.TrimSpace(s.stdout), "\n")
	if s.code != 0 || len(lines) != 3 {
		t.Fatalf("sub: %+v", s)
	}
	var line struct {
		Topic   string
		Payload map[string]string
		Sender  string
		Time    time.Time
	}
	if err := json.Unmarshal([]byte(lines[0]), &line); err != nil {
		t.Fatal(err)
	}
	if line.Topic != "t" || line.Payload["a"] != "ÿ" || !strings.HasPrefix(line.Sender, "[fd6d:") || line.Time.IsZero() {
		t.Errorf("line %s", lines[0])
	}
}

func TestSubTimeout(t *testing.T) {
	sandbox.Require(t)
	port := strconv.Itoa(int(nextPort.Add(1)))
	r := mcl_(context.Background(), "", "sub", "--port", port, "--timeout", "100ms")
	if r.code != 0 || r.stdout != "" || counters(t, r.stderr)["delivered"] != 0 || !strings.Contains(r.stderr, "delivered 0\n") {
		t.Errorf("sub --timeout without --count: %+v", r)
	}
	r = mcl_(context.Background(), "", "sub", "--port", port, "--timeout", "100ms", "--count", "1")
	if r.code != 1 || !strings.Contains(r.stderr, "received 0 of 1") {
		t.Errorf("sub --timeout with --count: %+v", r)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		in   string
		code int
		want string
	}{
		{[]string{"pub", "--topic", "t", "--port", "80", "--payload", "1"}, "", 2, "1024..65535"},
		{[]string{"pub", "--topic", "t", "--group", "10.0.0.1", "--payload", "1"}, "", 2, "not a multicast group"},
		{[]string{"sub", "--iface", "nosuch0", "--timeout", "1ms"}, "", 2, "ip link"},
		{[]string{"pub", "--payload", "1"}, "", 2, "--topic is required"},
		{[]string{"pub", "--topic", "t", "--payload", "{bad"}, "", 2, "--payload"},
		{[]string{"pub", "--topic", "t", "--count", "0", "--payload", "1"}, "", 2, "--count"},
		{[]string{"sub", "--bogus"}, "", 2, "unknown flag: --bogus (see mcl sub --help)"},
		{[]string{"nosuch"}, "", 2, `unknown command "nosuch"`},
		{[]string{"sbu"}, "", 2, "did you mean sub"},
		{[]string{"pub", "--topic", strings.Repeat("t", 5000), "--payload", "1"}, "", 2, "--topic: 5000 bytes"},
		{[]string{"pub", "--topic", "t", "--pace", "500k", "--payload", "1"}, "", 2, "at least 1M"},
		{[]string{"pub", "--topic", "t", "--pace", "fast", "--payload", "1"}, "", 2, "not a rate"},
		{[]string{"sub", "--timeout", "soon"}, "", 2, "invalid argument"},
		{[]string{"demo", "--duration", "0s"}, "", 2, "--duration"},
		{[]string{"pub", "--topic", "t", "--framing", "3", "--payload", "1"}, "", 2, `--framing "3"`},
		{[]string{"pub", "--topic", "t", "--express", "--payload", "1"}, "", 2, "go with --framing mcl2"},
		{[]string{"pub", "--topic", "t", "--framing", "mcl2", "--datagram-size", "99", "--payload", "1"}, "", 2, "--datagram-size 99"},
		{[]string{"bench", "--repeat", "0"}, "", 2, "--repeat"},
		{[]string{"bench", "--mtu", "100"}, "", 2, "--mtu 100"},
		{[]string{"sub", "--topic", "cam*", "--timeout", "1ms"}, "", 2, `--topic: in a topic pattern, "*" and "**" must be whole segments`},
		{[]string{"replay", "--topic", "a/b*", "nosuch.mcap"}, "", 2, "--topic"},
		{[]string{"dump", "--topic", "**x", "nosuch.mcap"}, "", 2, "--topic"},
	} {
		r := mcl_(context.Background(), tc.in, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("mcl %s: exit %d, stderr %q; want exit %d mentioning %q", strings.Join(tc.args, " "), r.code, r.stderr, tc.code, tc.want)
		}
	}
}

func TestPubBadLine(t *testing.T) {
	sandbox.Require(t)
	port := strconv.Itoa(int(nextPort.Add(1)))
	r := mcl_(context.Background(), "1\n2\nnot json\n4\n", "pub", "--port", port, "--topic", "t")
	if r.code != 1 || !strings.Contains(r.stderr, "line 3") {
		t.Errorf("pub with a bad line: %+v", r)
	}
	if c := counters(t, r.stderr); c["messages"] != 2 {
		t.Errorf("published %d messages before the bad line, want 2", c["messages"])
	}
}

func TestHelp(t *testing.T) {
	for _, cmd := range []string{"pub", "sub", "demo"} {
		r := mcl_(context.Background(), "", cmd, "--help")
		if r.code != 0 || !strings.Contains(r.stdout, "Examples:") || !strings.Contains(r.stdout, "mcl "+cmd) {
			t.Errorf("mcl %s --help: %+v", cmd, r)
		}
	}
	for _, args := range [][]string{{"help"}, {}} {
		r := mcl_(context.Background(), "", args...)
		for _, cmd := range []string{"pub", "sub", "demo"} {
			if r.code != 0 || !strings.Contains(r.stdout, cmd) {
				t.Errorf("mcl %s: exit %d, does not list %s", strings.Join(args, " "), r.code, cmd)
			}
		}
	}
}

// TestPubPace publishes a message of 42 fragments at 20 MB/s: it arrives
// whole, and sending it took at least as long as the rate says.
func TestPubPace(t *testing.T) {
	sandbox.Require(t)
	port := strconv.Itoa(int(nextPort.Add(1)))
	done := startSub(t, "--port", port, "--count", "1", "--timeout", "20s")
	long := strings.Repeat("y", 2_500_000)
	start := time.Now()
	r := mcl_(context.Background(), `"`+long+`"`, "pub", "--port", port, "--topic", "big", "--pace", "20M")
	took := time.Since(start)
	if r.code != 0 {
		t.Fatalf("pub: %+v", r)
	}
	// 41 gaps of 60 KB at 20 MB/s: 123 ms.
	if min := 41 * 60_000 * time.Second / 20_000_000; took < min {
		t.Errorf("pub --pace 20M sent 2.5 MB in %v, under %v", took, min)
	}
	s := wait(t, done)
	if s.code != 0 || !strings.Contains(s.stdout, long) {
		t.Fatalf("sub: exit %d, %d bytes out; %s", s.code, len(s.stdout), s.stderr)
	}
}

// TestPubLineMemory checks how publishLines holds a 20 MB line: read
// into one buffer of its exact size (not grown chunk by chunk, with copies
// left behind at each step), and packed into one buffer of the packed
// size. Process-wide allocation counters would also count what other
// tests running meanwhile allocate, so the buffers are checked instead.
func TestPubLineMemory(t *testing.T) {
	const size = 20 << 20
	in := `"` + strings.Repeat("z", size) + "\"\n"
	line, err := readLine(bufio.NewReaderSize(strings.NewReader(in+"1\n"), 64<<10), nil)
	if err != nil || len(line) != len(in) || cap(line) != len(in) {
		t.Fatalf("readLine: %d bytes in a buffer of %d, %v; want %d in one of that size", len(line), cap(line), err, len(in))
	}
	var packed []byte
	err = publishLines(strings.NewReader(in), func(b []byte) error { packed = b; return nil })
	if err != nil || len(packed) != size+5 || cap(packed) > (size+5)*101/100 {
		t.Fatalf("publishLines: packed %d bytes in a buffer of %d, %v", len(packed), cap(packed), err)
	}
}

func TestDemo(t *testing.T) {
	sandbox.Require(t)
	r := mcl_(context.Background(), "", "demo", "--duration", "1200ms")
	if r.code != 0 {
		t.Fatalf("demo: %+v", r)
	}
	for _, want := range []string{"recv gps", "recv camera 200005 bytes", "final counters", "malformed 0"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, r.stdout)
		}
	}
}

// TestEnvironment: MCL_GROUP, MCL_PORT and MCL_IFACE set the defaults of
// --group, --port and --iface; flags override them; a bad value says
// where it came from.
func TestEnvironment(t *testing.T) {
	sandbox.Require(t)
	port := strconv.Itoa(int(nextPort.Add(1)))
	t.Setenv("MCL_GROUP", "239.192.0.9")
	t.Setenv("MCL_PORT", port)
	t.Setenv("MCL_IFACE", "")
	done := startSub(t, "--count", "1", "--timeout", "20s")
	if r := mcl_(context.Background(), "", "pub", "--topic", "t", "--payload", "7"); r.code != 0 {
		t.Fatalf("pub: %+v", r)
	}
	if r := wait(t, done); r.code != 0 || !strings.Contains(r.stdout, `"payload":7`) {
		t.Fatalf("sub with the environment's group and port: %+v", r)
	}
	t.Setenv("MCL_PORT", "80")
	if r := mcl_(context.Background(), "", "pub", "--topic", "t", "--payload", "1"); r.code != 2 || !strings.Contains(r.stderr, "$MCL_PORT") {
		t.Fatalf("MCL_PORT=80: %+v", r)
	}
	t.Setenv("MCL_PORT", "many")
	if r := mcl_(context.Background(), "", "pub", "--topic", "t", "--payload", "1"); r.code != 2 || !strings.Contains(r.stderr, "MCL_PORT") {
		t.Fatalf("MCL_PORT=many: %+v", r)
	}
	if r := mcl_(context.Background(), "", "pub", "--topic", "t", "--payload", "1", "--port", port); r.code != 0 {
		t.Fatalf("--port over a bad MCL_PORT: %+v", r)
	}
	t.Setenv("MCL_GROUP", "10.0.0.1")
	if r := mcl_(context.Background(), "", "pub", "--topic", "t", "--payload", "1", "--port", port); r.code != 2 || !strings.Contains(r.stderr, "$MCL_GROUP") {
		t.Fatalf("MCL_GROUP=10.0.0.1: %+v", r)
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		if r := mcl_(context.Background(), "", args...); r.code != 0 || !strings.HasPrefix(r.stdout, "mcl ") || !strings.Contains(r.stdout, "go1.") {
			t.Errorf("mcl %v: %+v", args, r)
		}
	}
}
