package bridge

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/mcl-go/mcl"
)

var nextPort atomic.Int32

func init() { nextPort.Store(29000) }

// natsServer starts an in-process NATS server on 127.0.0.1.
func natsServer(t testing.TB, edit func(*server.Options)) *server.Server {
	t.Helper()
	o := &server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true}
	if edit != nil {
		edit(o)
	}
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(5 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	t.Cleanup(s.Shutdown)
	return s
}

// cluster starts n NATS servers routed to each other.
func cluster(t testing.TB, n int) []*server.Server {
	t.Helper()
	var routes []string
	ports := make([]int, n)
	for i := range ports {
		ports[i] = int(nextPort.Add(1)) + 1000
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[i]))
	}
	var ss []*server.Server
	for i := range n {
		ss = append(ss, natsServer(t, func(o *server.Options) {
			o.ServerName = fmt.Sprintf("s%d", i+1)
			o.Cluster = server.ClusterOpts{Name: "mcl", Host: "127.0.0.1", Port: ports[i]}
			o.Routes = server.RoutesFromStr(joinComma(routes))
		}))
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, s := range ss {
		for s.NumRoutes() < n-1 {
			if time.Now().After(deadline) {
				t.Fatalf("cluster: %s has %d routes", s.Name(), s.NumRoutes())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return ss
}

func joinComma(l []string) string {
	var b bytes.Buffer
	for i, s := range l {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s)
	}
	return b.String()
}

// sameMessages fails unless got and want hold the same messages, each as
// often (order aside: topics travel on different subjects).
func sameMessages(t testing.TB, what string, got, want []rec) {
	t.Helper()
	count := map[rec]int{}
	for _, r := range want {
		count[r]++
	}
	for _, r := range got {
		count[r]--
	}
	var bad []string
	for r, n := range count {
		if n != 0 {
			bad = append(bad, fmt.Sprintf("topic %q payload %d bytes (sha %x): %+d", r.topic, len(r.payload), sha256.Sum256([]byte(r.payload)), -n))
		}
	}
	sort.Strings(bad)
	if len(bad) > 0 {
		if len(bad) > 10 {
			bad = append(bad[:10], "...")
		}
		t.Fatalf("%s: got %d messages, want %d; differences (+ extra, - missing):\n%s", what, len(got), len(want), joinLines(bad))
	}
}

func joinLines(l []string) string {
	var b bytes.Buffer
	for _, s := range l {
		b.WriteString("  " + s + "\n")
	}
	return b.String()
}

func pack(t testing.TB, v any) []byte {
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// publishSet publishes a set of messages: small ones on awkward topics,
// and fragmented ones over the server's max_payload; it returns them.
func publishSet(t testing.TB, p *mcl.Publisher, tag string, small int, big []int) []rec {
	t.Helper()
	topics := []string{"gps", "camera/front", "a.b/*/**", "", "/", "two words", "\xff\xfe bin", "café/%41"}
	var out []rec
	for i := range small {
		tp := topics[i%len(topics)]
		pl := pack(t, map[string]any{"tag": tag, "i": i})
		if err := p.PublishRaw(tp, pl); err != nil {
			t.Fatal(err)
		}
		out = append(out, rec{tp, string(pl)})
		if i%50 == 49 {
			time.Sleep(time.Millisecond)
		}
	}
	for i, size := range big {
		data := make([]byte, size)
		for j := range data {
			data[j] = byte(j*7 + i)
		}
		copy(data, tag)
		pl := pack(t, data)
		if err := p.PublishRaw("big/"+tag, pl); err != nil {
			t.Fatal(err)
		}
		out = append(out, rec{"big/" + tag, string(pl)})
		time.Sleep(20 * time.Millisecond)
	}
	return out
}

// eventually waits up to 5 s for ok, which reads counters: a bridge counts
// a message a moment after it published it, so a counter may lag behind
// the messages seen. It fails with what's description if ok never holds.
func eventually(t testing.TB, ok func() bool, what func() string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal(what())
		}
		time.Sleep(time.Millisecond)
	}
}

// probe publishes with p until c gets a message, so that the path from p
// to c is open (subscriptions made, routes learnt), then settles; it
// returns how many messages c has.
func probe(t testing.TB, p *mcl.Publisher, c *collector) int {
	t.Helper()
	n := c.n()
	for i := 0; !c.until(func() bool { return c.n() > n }, 20*time.Millisecond); i++ {
		if i > 250 {
			t.Fatal("no probe came through in 5 s")
		}
		if err := p.Publish("probe", i); err != nil {
			t.Fatal(err)
		}
	}
	return len(c.settle(t, p, 5*time.Second))
}

// TestTwoSites: sites A and B, each a network namespace of its own with a
// bridge, joined only through one NATS server in the sandbox's namespace.
// Without the bridges nothing crosses; with them every message crosses
// once, byte-exact, both ways, fragmented megabytes included; nothing
// comes back.
func TestTwoSites(t *testing.T) {
	srv := natsServer(t, nil)
	url := srv.ClientURL()
	a, b := newSite(t, "A", "239.192.30.1"), newSite(t, "B", "239.192.30.1")
	isolated(t, a, b)
	isolated(t, b, a)
	ba, bb := a.bridge(t, url), b.bridge(t, url)
	colA, colB := a.collect(t), b.collect(t)

	// A NATS client sees the subjects and headers.
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	watch, err := nc.SubscribeSync("mcl.camera.front")
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()

	pa, pb := a.publisher(t), b.publisher(t)
	sentA := publishSet(t, pa, "A", 400, []int{1 << 20, 3 << 20, 200_000})
	colB.wait(len(sentA), 10*time.Second)
	sameMessages(t, "site B", colB.settle(t, pa, 10*time.Second), sentA)
	sentB := publishSet(t, pb, "B", 400, []int{1 << 20})
	all := append(append([]rec(nil), sentA...), sentB...)
	colA.wait(len(all), 10*time.Second)
	sameMessages(t, "site A", colA.settle(t, pb, 10*time.Second), all)
	sameMessages(t, "site B after", colB.snapshot(), all)

	m, err := watch.NextMsg(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get(HeaderTopic) != "camera/front" || m.Header.Get(HeaderOrigin) != ba.ID() {
		t.Errorf("headers %v", m.Header)
	}
	// Each way: the set and one end marker. What each bridge republished
	// came back to it on its group, and stopped there.
	nA, nB := uint64(len(sentA)+1), uint64(len(sentB)+1)
	var sa, sb Stats
	eventually(t, func() bool {
		sa, sb = ba.Stats(), bb.Stats()
		return sa.ToNATS == nA && sb.FromNATS == nA && sb.ToNATS == nB && sa.FromNATS == nB &&
			sb.LoopsSuppressed == nA && sa.LoopsSuppressed == nB
	}, func() string {
		return fmt.Sprintf("forwarded A->NATS %d, NATS->B %d, B->NATS %d, NATS->A %d, want %d, %d; loops suppressed A %d B %d, want %d %d",
			sa.ToNATS, sb.FromNATS, sb.ToNATS, sa.FromNATS, nA, nB, sa.LoopsSuppressed, sb.LoopsSuppressed, nB, nA)
	})
	t.Logf("bridge A: %+v", sa)
	t.Logf("bridge B: %+v", sb)
	if sa.Split != 2 || sb.Joined != 2 || sa.Dropped+sb.Dropped+sa.Invalid+sb.Invalid+sa.Incomplete+sb.Incomplete != 0 {
		t.Errorf("split %d joined %d; dropped %d %d invalid %d %d incomplete %d %d", sa.Split, sb.Joined, sa.Dropped, sb.Dropped, sa.Invalid, sb.Invalid, sa.Incomplete, sb.Incomplete)
	}
}

// TestPythonSite: the seed's Python node publishes in site A's namespace; a
// Go subscriber in site B's gets what a Go subscriber in site A got, once
// each, byte-exact, fragmented megabytes included.
func TestPythonSite(t *testing.T) {
	if err := exec.Command("/usr/bin/python3", "-c", "import msgpack").Run(); err != nil {
		msg := "the Python peer needs /usr/bin/python3 with msgpack: " + err.Error()
		if os.Getenv("MCL_REQUIRE_PYTHON") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	srv := natsServer(t, nil)
	a, b := newSite(t, "A", "239.192.31.1"), newSite(t, "B", "239.192.31.1")
	isolated(t, a, b)
	a.bridge(t, srv.ClientURL())
	b.bridge(t, srv.ClientURL())
	colA, colB := a.collect(t), b.collect(t)
	py := func(args ...string) {
		t.Helper()
		a.do(t, func() error {
			// Started from a thread in site A's namespace, the process is
			// in it.
			cmd := exec.Command("/usr/bin/python3", append([]string{"../interop/seedpeer.py", "pub", "--group", a.conn.Group().Addr().String(),
				"--port", strconv.Itoa(int(a.conn.Group().Port()))}, args...)...)
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("python publisher: %v\n%s", err, out)
			}
			return nil
		})
	}
	py("--topic", "small", "--count", "300", "--seed", "1")
	py("--topic", "big", "--count", "3", "--size", "1000000", "--seed", "2", "--interval", "0.05")
	py("--topic", "bigger", "--count", "1", "--size", "2500000", "--seed", "3")
	const n = 304
	pa := a.publisher(t)
	colA.wait(n, 10*time.Second)
	gotA := colA.settle(t, pa, 10*time.Second)
	if len(gotA) != n {
		t.Fatalf("site A itself got %d of %d messages", len(gotA), n)
	}
	colB.wait(n, 10*time.Second)
	sameMessages(t, "site B", colB.settle(t, pa, 10*time.Second), gotA)
}

// TestTwoBridgesOneGroup: two bridges on site A's group, one on site B's:
// one of A's forwards, the other stands by; nothing is forwarded twice or
// ping-pongs; when the active one closes, the other takes over.
func TestTwoBridgesOneGroup(t *testing.T) {
	srv := natsServer(t, nil)
	url := srv.ClientURL()
	a, b := newSite(t, "A", "239.192.32.1"), newSite(t, "B", "239.192.32.1")
	a1 := a.bridge(t, url)
	a2 := a.bridge(t, url)
	bb := b.bridge(t, url)
	eventually(t, func() bool { return a1.Active() != a2.Active() },
		func() string { return fmt.Sprintf("active: a1 %v a2 %v; want one", a1.Active(), a2.Active()) })
	active, standby := a1, a2
	if a2.Active() {
		active, standby = a2, a1
	}
	colA, colB := a.collect(t), b.collect(t)
	pa, pb := a.publisher(t), b.publisher(t)
	sentA := publishSet(t, pa, "A", 300, []int{1 << 20})
	sentB := publishSet(t, pb, "B", 300, []int{1 << 20})
	all := append(append([]rec(nil), sentA...), sentB...)
	colB.wait(len(all), 10*time.Second)
	sameMessages(t, "site B", colB.settle(t, pa, 10*time.Second), all)
	colA.wait(len(all), 10*time.Second)
	sameMessages(t, "site A", colA.settle(t, pb, 10*time.Second), all)

	// Exactly the sets and the end markers moved, each once: no ping-pong.
	nA, nB := uint64(len(sentA)+1), uint64(len(sentB)+1)
	var sa, ss, sb Stats
	eventually(t, func() bool {
		sa, ss, sb = active.Stats(), standby.Stats(), bb.Stats()
		return sa.ToNATS == nA && sa.FromNATS == nB && sb.ToNATS == nB && sb.FromNATS == nA && ss.ToNATS+ss.FromNATS == 0
	}, func() string {
		return fmt.Sprintf("want %d each way: active %+v; standby %+v; B %+v", nA, sa, ss, sb)
	})
	t.Logf("active: %+v", sa)
	t.Logf("standby: %+v", ss)
	if ss.Standby == 0 || ss.Peers != 1 {
		t.Errorf("standby stood by %d; peers %d", ss.Standby, ss.Peers)
	}

	// Fail-over. What was in flight may be lost (core NATS stores
	// nothing), never doubled: the standby took nothing from NATS, and
	// forwards nothing it read from the group before it took over.
	active.Close()
	eventually(t, standby.Active, func() string { return "the standby bridge did not take over" })
	probe(t, pb, colA) // the new active's subscription is on the server
	probe(t, pa, colB)
	more := publishSet(t, pa, "A2", 100, nil)
	moreB := publishSet(t, pb, "B2", 100, nil)
	all = append(all, more...)
	all = append(all, moreB...)
	colB.wait(len(all), 10*time.Second)
	sameMessages(t, "site B after fail-over", without(colB.settle(t, pa, 10*time.Second), "probe"), all)
	colA.wait(len(all), 10*time.Second)
	sameMessages(t, "site A after fail-over", without(colA.settle(t, pb, 10*time.Second), "probe"), all)
}

// without returns recs without those on topic.
func without(recs []rec, topic string) []rec {
	var out []rec
	for _, r := range recs {
		if r.topic != topic {
			out = append(out, r)
		}
	}
	return out
}

// TestFailover: a three-server cluster; the server site A's bridge is
// connected to is shut down mid-stream; the bridge reconnects to another
// member, and the stream goes on. It reports the gap.
func TestFailover(t *testing.T) {
	ss := cluster(t, 3)
	urls := func(order ...int) string {
		var l []string
		for _, i := range order {
			l = append(l, ss[i].ClientURL())
		}
		return joinComma(l)
	}
	a, b := newSite(t, "A", "239.192.33.1"), newSite(t, "B", "239.192.33.1")
	ba := a.bridge(t, urls(0, 1, 2), NATSOptions(nats.DontRandomize()))
	bb := b.bridge(t, urls(1, 2, 0), NATSOptions(nats.DontRandomize()))
	if ba.nc.ConnectedServerName() != "s1" || bb.nc.ConnectedServerName() != "s2" {
		t.Fatalf("connected to %s and %s", ba.nc.ConnectedServerName(), bb.nc.ConnectedServerName())
	}
	colB := b.collect(t)
	pa := a.publisher(t)
	probes := probe(t, pa, colB) // B's subscription reached s1 through the route

	// 1000 messages a second, paced; s1 goes at a third.
	const n, every = 3000, time.Millisecond
	var sent []rec
	for i := range n {
		if i == n/3 {
			ss[0].Shutdown()
		}
		pl := pack(t, i)
		if err := pa.PublishRaw("stream", pl); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, rec{"stream", string(pl)})
		time.Sleep(every)
	}
	got := colB.settle(t, pa, 10*time.Second)[probes:]
	seen := map[string]int{}
	for _, r := range got {
		seen[r.payload]++
	}
	var missing []int
	for i, r := range sent {
		switch seen[r.payload] {
		case 0:
			missing = append(missing, i)
		case 1:
		default:
			t.Errorf("message %d received %d times", i, seen[r.payload])
		}
	}
	s := ba.Stats()
	t.Logf("bridge A: %+v", s)
	t.Logf("bridge B: %+v", bb.Stats())
	gap := "none"
	if len(missing) > 0 {
		gap = fmt.Sprintf("%d messages, %d..%d", len(missing), missing[0], missing[len(missing)-1])
	}
	t.Logf("fail-over: A reconnected to %s after %v; %d of %d messages received; gap %s",
		ba.nc.ConnectedServerName(), s.LastOutage, len(got), n, gap)
	if s.Reconnects != 1 || !s.Connected || ba.nc.ConnectedServerName() == "s1" {
		t.Fatalf("reconnects %d, connected %v to %s", s.Reconnects, s.Connected, ba.nc.ConnectedServerName())
	}
	// The last third all came through the new server.
	for _, i := range missing {
		if i > 2*n/3 {
			t.Fatalf("message %d, long after the fail-over, missing", i)
		}
	}
}

// TestNATSDown: while no server answers, group messages wait within
// BufferLimits, the rest are dropped and counted; when the server is back
// the bridge reconnects and forwards again.
func TestNATSDown(t *testing.T) {
	port := int(nextPort.Add(1)) + 2000
	srv := natsServer(t, func(o *server.Options) { o.Port = port })
	url := srv.ClientURL()
	a, b := newSite(t, "A", "239.192.34.1"), newSite(t, "B", "239.192.34.1")
	ba := a.bridge(t, url, BufferLimits(100, 1<<20), NATSOptions(nats.ReconnectWait(50*time.Millisecond)))
	bb := b.bridge(t, url)
	colB := b.collect(t)
	pa := a.publisher(t)
	srv.Shutdown()
	eventually(t, func() bool { return !ba.Stats().Connected }, func() string { return "still connected" })
	const burst = 1000
	payload := pack(t, bytes.Repeat([]byte{'x'}, 10_000))
	for i := range burst {
		pa.PublishRaw("burst", payload)
		if i%20 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	var s Stats
	eventually(t, func() bool {
		s = ba.Stats()
		// At least: the bridges' hellos share the queue, and can be dropped too.
		return s.ToNATS+s.Dropped+s.KernelDrops >= burst
	}, func() string { return fmt.Sprintf("bridge A did not account for the burst: %+v", s) })
	t.Logf("while down: %+v", s)
	if s.Dropped == 0 || s.ToNATS > 110 {
		t.Fatalf("down: forwarded %d (buffered), dropped %d: want about 100 buffered and the rest dropped", s.ToNATS, s.Dropped)
	}
	natsServer(t, func(o *server.Options) { o.Port = port })
	deadline := time.Now().Add(10 * time.Second)
	for !(ba.Stats().Connected && bb.Stats().Connected) {
		if time.Now().After(deadline) {
			t.Fatal("no reconnection")
		}
		time.Sleep(10 * time.Millisecond)
	}
	probe(t, pa, colB) // B's subscription is back on the server
	sent := publishSet(t, pa, "after", 100, nil)
	got := colB.settle(t, pa, 5*time.Second)
	var after []rec
	buffered := 0
	for _, r := range got {
		switch r.topic {
		case "burst":
			buffered++
		case "probe":
		default:
			after = append(after, r)
		}
	}
	sameMessages(t, "after the restart", after, sent)
	s = ba.Stats()
	t.Logf("after: %+v; site B got %d of the burst (buffered while down)", s, buffered)
	if s.Reconnects < 1 {
		t.Errorf("reconnects %d", s.Reconnects)
	}
}

// TestLongTopic: a topic whose subject NATS would refuse (the server closes
// the connection of a client whose protocol line is too long) is dropped
// and counted; the connection and the next message are fine. A pattern
// that makes such a subject is refused.
func TestLongTopic(t *testing.T) {
	srv := natsServer(t, nil)
	a := newSite(t, "A", "239.192.36.1")
	ba := a.bridge(t, srv.ClientURL())
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ns, err := nc.SubscribeSync("mcl.>")
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	pa := a.publisher(t)
	long := strings.Repeat(".", 2000) // subject mcl.%2E%2E...: 6004 bytes
	if err := pa.Publish(long, 1); err != nil {
		t.Fatal(err)
	}
	if err := pa.Publish("short", 2); err != nil {
		t.Fatal(err)
	}
	m, err := ns.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "mcl.short" {
		t.Fatalf("got %.40q", m.Subject)
	}
	if s := ba.Stats(); s.DroppedNATS != 1 || s.ToNATS != 1 || !s.Connected || s.Disconnects != 0 {
		t.Fatalf("stats %+v", s)
	}
	if _, err := New(a.conn, srv.ClientURL(), Topics(strings.Repeat("x", 5000))); !errors.Is(err, ErrBadOption) {
		t.Errorf("a pattern of 5000 bytes: %v", err)
	}
}
