package mcl_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/wire"
)

// The Python peer is a Python 3 port of the seed's RawBroadcaster and
// RawListener (interop/seedpeer.py), packing as Python 2 did. It needs
// Debian's python3-msgpack for /usr/bin/python3.
const python = "/usr/bin/python3"

func requirePython(t *testing.T) {
	t.Helper()
	if err := exec.Command(python, "-c", "import msgpack").Run(); err != nil {
		msg := "the Python peer needs " + python + " with msgpack (apt-get install python3-msgpack): " + err.Error()
		if os.Getenv("MCL_REQUIRE_PYTHON") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// seedPayload is the msgpack encoding, as Python 2 packed it, of the
// peer's make_payload(seed, index, size).
func seedPayload(seed, index, size int) []byte {
	if size <= 0 {
		b := []byte{0x83, 0xa1, 'i'}
		b = packUint(b, index)
		b = append(b, 0xa1, 'k')
		b = packUint(b, seed)
		b = append(b, 0xa4, 't', 'e', 'x', 't')
		return wire.AppendStr(b, []byte("héllo"))
	}
	data := []byte{0xff, 0xc3, 0x28}
	for block := 0; len(data) < size; block++ {
		sum := sha256.Sum256(fmt.Appendf(nil, "%d:%d:%d", seed, index, block))
		data = append(data, sum[:]...)
	}
	return wire.AppendStr(nil, data[:size])
}

func packUint(b []byte, v int) []byte {
	switch {
	case v < 128:
		return append(b, byte(v))
	case v < 256:
		return append(b, 0xcc, byte(v))
	default:
		return append(b, 0xcd, byte(v>>8), byte(v))
	}
}

func peerArgs(c *mcl.Connection, args ...string) []string {
	return append([]string{"interop/seedpeer.py", args[0], "--group", c.Group().Addr().String(),
		"--port", strconv.Itoa(int(c.Group().Port()))}, args[1:]...)
}

// runPeerPub runs the Python publisher to completion.
func runPeerPub(t *testing.T, c *mcl.Connection, args ...string) {
	t.Helper()
	out, err := exec.Command(python, peerArgs(c, append([]string{"pub"}, args...)...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("python publisher: %v\n%s", err, out)
	}
}

func TestPythonToGo(t *testing.T) {
	requirePython(t)
	for _, group := range []string{mcl.DefaultGroup, group4} {
		t.Run(group, func(t *testing.T) {
			c := conn(t, group)
			_, ch := chanSubscriber(t, c)
			sub, big := chanSubscriber(t, c, mcl.Topics("big"))
			_, filtered := chanSubscriber(t, c, mcl.Topics("a"))

			runPeerPub(t, c, "--topic", "small", "--count", "1000", "--seed", "1")
			for i, m := range receive(t, ch, 1000) {
				if want := seedPayload(1, i, 0); m.Topic != "small" || !bytes.Equal(m.Payload, want) {
					t.Fatalf("message %d: topic %q payload % x, want % x", i, m.Topic, m.Payload, want)
				}
			}

			runPeerPub(t, c, "--topic", "big", "--count", "20", "--size", "200000", "--seed", "2")
			for i, m := range receive(t, big, 20) {
				if want := seedPayload(2, i, 200_000); !bytes.Equal(m.Payload, want) {
					t.Fatalf("200 KB message %d differs (%d bytes, want %d)", i, len(m.Payload), len(want))
				}
			}
			// The seed's exact multiple: 119995 bytes pack to 120000, sent as
			// three fragments, the last one empty.
			runPeerPub(t, c, "--topic", "big", "--count", "1", "--size", "119995", "--seed", "3")
			if m := receive(t, big, 1)[0]; !bytes.Equal(m.Payload, seedPayload(3, 0, 119_995)) {
				t.Fatal("exact-multiple message differs")
			}
			if st := sub.Stats(); st.Malformed+st.Rejected+st.Evicted != 0 {
				t.Errorf("stats %+v", st)
			}

			// Topic filter: the "a" subscriber sees only a, then a nil topic
			// (the seed's default) arrives as "".
			runPeerPub(t, c, "--topic", "b", "--count", "3")
			runPeerPub(t, c, "--topic", "a", "--count", "2", "--seed", "4")
			for i, m := range receive(t, filtered, 2) {
				if m.Topic != "a" || !bytes.Equal(m.Payload, seedPayload(4, i, 0)) {
					t.Fatalf("filtered subscriber got topic %q", m.Topic)
				}
			}
			runPeerPub(t, c, "--count", "1", "--seed", "5")
			// ch saw every topic: 21 big, 3 b and 2 a messages came before.
			last := receive(t, ch, 21+3+2+1)[21+3+2]
			if last.Topic != "" || !bytes.Equal(last.Payload, seedPayload(5, 0, 0)) {
				t.Errorf("nil topic arrived as %q", last.Topic)
			}
		})
	}
}

// TestTwoPythonPublishers runs two seed publishers on one host at once,
// same topic, same size: the seed's own listener mixes their fragments
// (its key lacks the sender's port); mcl must not.
func TestTwoPythonPublishers(t *testing.T) {
	requirePython(t)
	c := conn(t, mcl.DefaultGroup)
	sub, ch := chanSubscriber(t, c)
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, seed := range []string{"10", "11"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := exec.Command(python, peerArgs(c, "pub", "--topic", "cam", "--count", "20", "--size", "200000", "--seed", seed)...).CombinedOutput()
			if err != nil {
				errs <- fmt.Errorf("python publisher %s: %v\n%s", seed, err, out)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	next := map[int]int{10: 0, 11: 0} // next index expected from each seed
	defer func() {
		if t.Failed() {
			t.Logf("stats %+v", sub.Stats())
		}
	}()
	for _, m := range receive(t, ch, 40) {
		matched := false
		for seed, i := range next {
			if bytes.Equal(m.Payload, seedPayload(seed, i, 200_000)) {
				next[seed]++
				matched = true
				break
			}
		}
		if !matched {
			t.Fatalf("a message matches neither publisher's next payload (%d bytes): fragments were mixed", len(m.Payload))
		}
	}
	if st := sub.Stats(); st.Reassembled != 40 || st.Evicted != 0 {
		t.Errorf("stats %+v", st)
	}
}

// peerSub is a running Python listener.
type peerSub struct {
	cmd   *exec.Cmd
	lines *bufio.Scanner
	errb  bytes.Buffer
}

type peerLine struct {
	Topic      *string `json:"topic"`
	PayloadHex string  `json:"payload_hex"`
	SHA256     string  `json:"sha256"`
	Len        int     `json:"len"`
}

func startPeerSub(t *testing.T, c *mcl.Connection, args ...string) *peerSub {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	args = append([]string{"sub", "--rcvbuf", strconv.Itoa(8 << 20), "--timeout", "60"}, args...)
	p := &peerSub{cmd: exec.CommandContext(ctx, python, peerArgs(c, args...)...)}
	p.cmd.Stderr = &p.errb
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill(); p.cmd.Wait() })
	p.lines = bufio.NewScanner(out)
	p.lines.Buffer(nil, 1<<20)
	if !p.lines.Scan() || p.lines.Text() != "READY" {
		t.Fatalf("python listener did not start: %q %v\n%s", p.lines.Text(), p.lines.Err(), p.errb.String())
	}
	return p
}

func (p *peerSub) next(t *testing.T) peerLine {
	t.Helper()
	if !p.lines.Scan() {
		t.Fatalf("python listener ended: %v\n%s", p.lines.Err(), p.errb.String())
	}
	var l peerLine
	if err := json.Unmarshal(p.lines.Bytes(), &l); err != nil {
		t.Fatalf("python listener printed %q: %v", p.lines.Text(), err)
	}
	return l
}

func TestGoToPython(t *testing.T) {
	requirePython(t)
	for _, group := range []string{mcl.DefaultGroup, group4} {
		t.Run(group, func(t *testing.T) {
			c := conn(t, group)
			pub := publisher(t, c)

			// Small messages, sent a window ahead of what the listener has
			// printed so its socket buffer never overflows.
			peer := startPeerSub(t, c, "--topic", "small")
			const n, window = 1000, 100
			sent := 0
			publishSmall := func(i int) {
				if err := pub.PublishRaw("other", seedPayload(9, i, 0)); err != nil { // filtered by the peer
					t.Fatal(err)
				}
				if err := pub.PublishRaw("small", seedPayload(7, i, 0)); err != nil {
					t.Fatal(err)
				}
			}
			for ; sent < window; sent++ {
				publishSmall(sent)
			}
			for i := range n {
				l := peer.next(t)
				if want := hex.EncodeToString(seedPayload(7, i, 0)); l.PayloadHex != want || l.Topic == nil || *l.Topic != hex.EncodeToString([]byte("small")) {
					t.Fatalf("python got message %d as %+v, want payload %s", i, l, want)
				}
				if sent < n {
					publishSmall(sent)
					sent++
				}
			}

			// A single datagram large enough to be sent from where its
			// payload lies, then large messages, fragmented, including the
			// exact multiple of the MTU that ends in an empty fragment.
			peer = startPeerSub(t, c, "--topic", "big")
			sizes := []int{20_000, 119_995}
			for range 20 {
				sizes = append(sizes, 200_000)
			}
			for i, size := range sizes {
				payload := seedPayload(8, i, size)
				if err := pub.PublishRaw("big", payload); err != nil {
					t.Fatal(err)
				}
				l := peer.next(t)
				sum := sha256.Sum256(payload)
				if l.Len != len(payload) || l.SHA256 != hex.EncodeToString(sum[:]) {
					t.Fatalf("python got large message %d as %d bytes sha256 %s, want %d bytes %x", i, l.Len, l.SHA256, len(payload), sum)
				}
			}
		})
	}
}
