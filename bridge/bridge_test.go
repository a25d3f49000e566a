package bridge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/sandbox"
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

// site returns a Connection to its own group and port: two sites do not
// hear each other.
func site(t testing.TB, group string) *mcl.Connection {
	t.Helper()
	sandbox.Require(t)
	c, err := mcl.NewConnection(group, mcl.Port(int(nextPort.Add(1))))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// start makes and runs a bridge, and waits until it forwards.
func start(t testing.TB, c *mcl.Connection, urls string, opts ...Option) *Bridge {
	t.Helper()
	b, err := New(c, urls, append([]Option{AnnounceInterval(100 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	b.cfg.settle = 100 * time.Millisecond
	done := make(chan error, 1)
	go func() { done <- b.Run(context.Background()) }()
	t.Cleanup(func() {
		b.Close()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-b.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("bridge not ready")
	}
	return b
}

type rec struct {
	topic   string
	payload string
}

// collector receives every message on a group.
type collector struct {
	mu  sync.Mutex
	got []rec
	sub *mcl.Subscriber
}

func collect(t testing.TB, c *mcl.Connection) *collector {
	t.Helper()
	col := &collector{}
	s, err := mcl.Subscribe(c, func(m *mcl.Message) {
		if m.Topic == HelloTopic {
			return
		}
		col.mu.Lock()
		col.got = append(col.got, rec{m.Topic, string(m.Payload)})
		col.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	col.sub = s
	t.Cleanup(func() { s.Close() })
	return col
}

func (c *collector) n() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

func (c *collector) snapshot() []rec {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]rec(nil), c.got...)
}

// wait waits for n messages, then a little longer for any extra.
func (c *collector) wait(t testing.TB, n int, timeout time.Duration) []rec {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for c.n() < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	return c.snapshot()
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

func publisher(t testing.TB, c *mcl.Connection) *mcl.Publisher {
	t.Helper()
	p, err := mcl.NewPublisher(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// TestTwoSites: two groups that do not reach each other, a bridge on each,
// one NATS server between them. Every message crosses once, byte-exact,
// both ways, fragmented megabytes included; nothing comes back.
func TestTwoSites(t *testing.T) {
	srv := natsServer(t, nil)
	url := srv.ClientURL()
	a, b := site(t, "239.192.30.1"), site(t, "239.192.30.2")
	ba, bb := start(t, a, url), start(t, b, url)
	colA, colB := collect(t, a), collect(t, b)

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

	pa, pb := publisher(t, a), publisher(t, b)
	sentA := publishSet(t, pa, "A", 400, []int{1 << 20, 3 << 20, 200_000})
	sameMessages(t, "site B", colB.wait(t, len(sentA), 10*time.Second), sentA)
	sentB := publishSet(t, pb, "B", 400, []int{1 << 20})
	gotA := colA.wait(t, len(sentA)+len(sentB), 10*time.Second)
	sameMessages(t, "site A", gotA, append(append([]rec(nil), sentA...), sentB...))
	sameMessages(t, "site B after", colB.snapshot(), append(append([]rec(nil), sentA...), sentB...))

	m, err := watch.NextMsg(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get(HeaderTopic) != "camera/front" || m.Header.Get(HeaderOrigin) != ba.ID() {
		t.Errorf("headers %v", m.Header)
	}
	sa, sb := ba.Stats(), bb.Stats()
	t.Logf("bridge A: %+v", sa)
	t.Logf("bridge B: %+v", sb)
	if sa.ToNATS != uint64(len(sentA)) || sb.FromNATS != uint64(len(sentA)) || sb.ToNATS != uint64(len(sentB)) || sa.FromNATS != uint64(len(sentB)) {
		t.Errorf("forwarded A->NATS %d, NATS->B %d, B->NATS %d, NATS->A %d; want %d, %d", sa.ToNATS, sb.FromNATS, sb.ToNATS, sa.FromNATS, len(sentA), len(sentB))
	}
	if sa.Split != 2 || sb.Joined != 2 || sa.Dropped+sb.Dropped+sa.Invalid+sb.Invalid+sa.Incomplete+sb.Incomplete != 0 {
		t.Errorf("split %d joined %d; dropped %d %d invalid %d %d incomplete %d %d", sa.Split, sb.Joined, sa.Dropped, sb.Dropped, sa.Invalid, sb.Invalid, sa.Incomplete, sb.Incomplete)
	}
	// What each bridge republished came back to it on its group, and
	// stopped there.
	if sb.LoopsSuppressed != uint64(len(sentA)) || sa.LoopsSuppressed != uint64(len(sentB)) {
		t.Errorf("loops suppressed A %d B %d, want %d %d", sa.LoopsSuppressed, sb.LoopsSuppressed, len(sentB), len(sentA))
	}
}

// TestPythonSite: the seed's Python node publishes on site A; a Go
// subscriber on site B gets what a Go subscriber on site A got.
func TestPythonSite(t *testing.T) {
	if err := exec.Command("/usr/bin/python3", "-c", "import msgpack").Run(); err != nil {
		msg := "the Python peer needs /usr/bin/python3 with msgpack: " + err.Error()
		if os.Getenv("MCL_REQUIRE_PYTHON") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	srv := natsServer(t, nil)
	a, b := site(t, "239.192.31.1"), site(t, "239.192.31.2")
	start(t, a, srv.ClientURL())
	start(t, b, srv.ClientURL())
	colA, colB := collect(t, a), collect(t, b)
	py := func(args ...string) {
		cmd := exec.Command("/usr/bin/python3", append([]string{"../interop/seedpeer.py", "pub", "--group", a.Group().Addr().String(),
			"--port", strconv.Itoa(int(a.Group().Port()))}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("python publisher: %v\n%s", err, out)
		}
	}
	py("--topic", "small", "--count", "300", "--seed", "1")
	py("--topic", "big", "--count", "3", "--size", "1000000", "--seed", "2", "--interval", "0.05")
	gotA := colA.wait(t, 303, 10*time.Second)
	if len(gotA) != 303 {
		t.Fatalf("site A itself got %d of 303 messages", len(gotA))
	}
	sameMessages(t, "site B", colB.wait(t, 303, 10*time.Second), gotA)
}

// TestTwoBridgesOneGroup: two bridges on site A's group, one on site B's:
// one of A's forwards, the other stands by; nothing is forwarded twice or
// ping-pongs; when the active one closes, the other takes over.
func TestTwoBridgesOneGroup(t *testing.T) {
	srv := natsServer(t, nil)
	url := srv.ClientURL()
	a, b := site(t, "239.192.32.1"), site(t, "239.192.32.2")
	a1 := start(t, a, url)
	a2 := start(t, a, url)
	bb := start(t, b, url)
	time.Sleep(300 * time.Millisecond)
	if a1.Active() == a2.Active() {
		t.Fatalf("active: a1 %v a2 %v; want one", a1.Active(), a2.Active())
	}
	active, standby := a1, a2
	if a2.Active() {
		active, standby = a2, a1
	}
	colA, colB := collect(t, a), collect(t, b)
	pa, pb := publisher(t, a), publisher(t, b)
	sentA := publishSet(t, pa, "A", 300, []int{1 << 20})
	sentB := publishSet(t, pb, "B", 300, []int{1 << 20})
	all := append(append([]rec(nil), sentA...), sentB...)
	sameMessages(t, "site B", colB.wait(t, len(all), 10*time.Second), all)
	sameMessages(t, "site A", colA.wait(t, len(all), 10*time.Second), all)

	// Nothing more moves: no ping-pong.
	before := []Stats{a1.Stats(), a2.Stats(), bb.Stats()}
	time.Sleep(500 * time.Millisecond)
	after := []Stats{a1.Stats(), a2.Stats(), bb.Stats()}
	for i := range before {
		if before[i].ToNATS != after[i].ToNATS || before[i].FromNATS != after[i].FromNATS {
			t.Errorf("bridge %d still forwarding: %+v then %+v", i, before[i], after[i])
		}
	}
	st := standby.Stats()
	t.Logf("active: %+v", active.Stats())
	t.Logf("standby: %+v", st)
	if st.ToNATS+st.FromNATS != 0 || st.Standby == 0 || st.Peers != 1 {
		t.Errorf("standby forwarded %d, %d; stood by %d; peers %d", st.ToNATS, st.FromNATS, st.Standby, st.Peers)
	}

	// Fail-over.
	active.Close()
	deadline := time.Now().Add(2 * time.Second)
	for !standby.Active() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if !standby.Active() {
		t.Fatal("the standby bridge did not take over")
	}
	more := publishSet(t, pa, "A2", 100, nil)
	moreB := publishSet(t, pb, "B2", 100, nil)
	all = append(all, more...)
	all = append(all, moreB...)
	sameMessages(t, "site B after fail-over", colB.wait(t, len(all), 10*time.Second), all)
	sameMessages(t, "site A after fail-over", colA.wait(t, len(all), 10*time.Second), all)
}

// TestFailover: a three-server cluster; the server site A's bridge is
// connected to is shut down mid-stream; the bridge reconnects to another
// member, and the stream goes on.
func TestFailover(t *testing.T) {
	ss := cluster(t, 3)
	urls := func(order ...int) string {
		var l []string
		for _, i := range order {
			l = append(l, ss[i].ClientURL())
		}
		return joinComma(l)
	}
	a, b := site(t, "239.192.33.1"), site(t, "239.192.33.2")
	ba := start(t, a, urls(0, 1, 2), NATSOptions(nats.DontRandomize()))
	bb := start(t, b, urls(1, 2, 0), NATSOptions(nats.DontRandomize()))
	if ba.nc.ConnectedServerName() != "s1" || bb.nc.ConnectedServerName() != "s2" {
		t.Fatalf("connected to %s and %s", ba.nc.ConnectedServerName(), bb.nc.ConnectedServerName())
	}
	colB := collect(t, b)
	pa := publisher(t, a)
	// Until B's subscription reached s1 through the route.
	for i := 0; colB.n() == 0; i++ {
		if i > 500 {
			t.Fatal("no message crossed the cluster")
		}
		pa.Publish("probe", i)
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	probes := colB.n()

	const n, every = 3000, time.Millisecond
	killed := make(chan time.Time, 1)
	var sent []rec
	for i := range n {
		if i == n/3 {
			ss[0].Shutdown()
			killed <- time.Now()
		}
		pl := pack(t, i)
		if err := pa.PublishRaw("stream", pl); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, rec{"stream", string(pl)})
		time.Sleep(every)
	}
	got := colB.wait(t, probes+n, 3*time.Second)[probes:]
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
	a, b := site(t, "239.192.34.1"), site(t, "239.192.34.2")
	ba := start(t, a, url, BufferLimits(100, 1<<20), NATSOptions(nats.ReconnectWait(50*time.Millisecond)))
	bb := start(t, b, url)
	colB := collect(t, b)
	pa := publisher(t, a)
	srv.Shutdown()
	for ba.Stats().Connected {
		time.Sleep(5 * time.Millisecond)
	}
	payload := pack(t, bytes.Repeat([]byte{'x'}, 10_000))
	for i := range 1000 {
		pa.PublishRaw("burst", payload)
		if i%20 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	time.Sleep(100 * time.Millisecond)
	s := ba.Stats()
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
	time.Sleep(200 * time.Millisecond) // B's subscription is back on the server
	before := colB.n()
	sent := publishSet(t, pa, "after", 100, nil)
	got := colB.wait(t, before+len(sent), 5*time.Second)
	var after []rec
	for _, r := range got {
		if r.topic != "burst" {
			after = append(after, r)
		}
	}
	sameMessages(t, "after the restart", after, sent)
	s = ba.Stats()
	t.Logf("after: %+v; site B got %d of the burst (buffered while down)", s, len(got)-len(after))
	if s.Reconnects < 1 {
		t.Errorf("reconnects %d", s.Reconnects)
	}
}
