package spy

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/mcl-go/mcl/internal/census"
)

// clock is a settable time for Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

func pack(t testing.TB, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var (
	senderA = netip.MustParseAddrPort("10.0.0.1:5000")
	senderB = netip.MustParseAddrPort("10.0.0.2:5000")
)

// feed adds 30 messages on robot/pose (x = 0, 0.5, ... 14.5, from A then
// B), 5 on robot/gps and 1 undecodable one on junk, 10 ms apart.
func feed(t *testing.T, s *Server, c *clock) {
	for i := range 30 {
		at := c.add(10 * time.Millisecond)
		from := senderA
		if i >= 20 {
			from = senderB
		}
		s.Add("robot/pose", pack(t, map[string]any{"pose": map[string]any{"x": float64(i) / 2}, "ranges": []int{1, 2, 3, i}}), from, at)
		if i < 5 {
			s.Add("robot/gps", pack(t, []any{"<b>", i}), senderA, at)
		}
	}
	s.Add("junk", []byte{0xc1}, senderA, c.add(time.Millisecond))
}

func newTest(t *testing.T, cfg Config) (*Server, *clock, *httptest.Server) {
	c := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	cfg.Now = c.now
	s := New(cfg)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return s, c, ts
}

func getFrame(t *testing.T, url string) Frame {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s %s", url, resp.Status, b)
	}
	var f Frame
	if err := json.NewDecoder(resp.Body).Decode(&f); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestFrame(t *testing.T) {
	s, c, ts := newTest(t, Config{Keep: 20, Where: "ff02::1 port 1"})
	feed(t, s, c)
	c.add(100 * time.Millisecond)

	f := getFrame(t, ts.URL+"/api/frame")
	if f.Topics != 3 || f.Matched != 3 || len(f.Rows) != 3 || f.Where != "ff02::1 port 1" || f.Keep != 20 {
		t.Fatalf("frame: %+v", f)
	}
	var names []string
	for _, r := range f.Rows {
		names = append(names, r.Topic)
	}
	if got := strings.Join(names, " "); got != "junk robot/gps robot/pose" {
		t.Errorf("rows by name: %s", got)
	}
	f = getFrame(t, ts.URL+"/api/frame?sort=messages&dir=desc&filter=robot/*")
	if len(f.Rows) != 2 || f.Matched != 2 || f.Rows[0].Topic != "robot/pose" || f.Rows[0].Messages != 30 || f.Rows[1].Messages != 5 || f.Rows[0].Senders != 2 {
		t.Fatalf("sorted, filtered: %+v", f.Rows)
	}
	pose := f.Rows[0]
	if pose.ID == 0 || pose.Rate <= 0 || pose.SizeMax < pose.SizeMin {
		t.Errorf("pose row: %+v", pose)
	}
	f = getFrame(t, ts.URL+"/api/frame?filter=**/gps,junk")
	if len(f.Rows) != 2 || f.Rows[0].Topic != "junk" {
		t.Errorf("two patterns: %+v", f.Rows)
	}
	f = getFrame(t, ts.URL+"/api/frame?filter=robot/po*")
	if f.Error == "" || len(f.Rows) != 3 {
		t.Errorf("bad pattern: error %q, %d rows", f.Error, len(f.Rows))
	}

	// The detail: senders, the last 20 messages, as JSON.
	f = getFrame(t, ts.URL+"/api/frame?topic="+strconv.FormatUint(pose.ID, 10))
	d := f.Detail
	if d == nil || d.Topic != "robot/pose" || d.Seq != 30 || len(d.Messages) != 20 || d.Stats == nil || d.Stats.Messages != 30 {
		t.Fatalf("detail: %+v", d)
	}
	if len(d.Senders) != 2 || d.Senders[0] != (Sender{"10.0.0.1:5000", 20}) || d.Senders[1] != (Sender{"10.0.0.2:5000", 10}) {
		t.Errorf("senders: %+v", d.Senders)
	}
	if d.Messages[0].Seq != 11 || d.Messages[19].Seq != 30 {
		t.Errorf("seqs %d..%d, want 11..30", d.Messages[0].Seq, d.Messages[19].Seq)
	}
	if got := string(d.Messages[19].Payload); got != `{"pose":{"x":14.5},"ranges":[1,2,3,29]}` && got != `{"ranges":[1,2,3,29],"pose":{"x":14.5}}` {
		t.Errorf("last payload %s", got)
	}
	f = getFrame(t, ts.URL+"/api/frame?topic="+strconv.FormatUint(pose.ID, 10)+"&since=28")
	if n := len(f.Detail.Messages); n != 2 || f.Detail.Messages[0].Seq != 29 {
		t.Errorf("since 28: %d messages", n)
	}
	f = getFrame(t, ts.URL+"/api/frame?topic=99999")
	if f.Detail == nil || !f.Detail.Gone {
		t.Errorf("unknown id: %+v", f.Detail)
	}
	// An undecodable payload is listed with a note.
	f = getFrame(t, ts.URL+"/api/frame?topic="+strconv.FormatUint(f.Rows[0].ID, 10))
	if m := f.Detail.Messages; len(m) != 1 || m[0].Payload != nil || !strings.Contains(m[0].Note, "undecodable") {
		t.Errorf("junk: %+v", m)
	}

	for _, bad := range []string{"sort=nope", "dir=up", "topic=x", "since=-1"} {
		resp, err := http.Get(ts.URL + "/api/frame?" + bad)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("%s: %s", bad, resp.Status)
		}
	}
}

func TestMessagesDownload(t *testing.T) {
	s, c, ts := newTest(t, Config{Keep: 20})
	feed(t, s, c)
	id := getFrame(t, ts.URL+"/api/frame?filter=robot/pose").Rows[0].ID
	resp, err := http.Get(ts.URL + "/api/messages?topic=" + strconv.FormatUint(id, 10))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment;") {
		t.Errorf("headers %v", resp.Header)
	}
	sc := bufio.NewScanner(resp.Body)
	var lines []Message
	for sc.Scan() {
		var m Message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 20 || lines[0].Seq != 11 || lines[19].Seq != 30 || lines[19].Sender != "10.0.0.2:5000" {
		t.Fatalf("%d lines: %+v", len(lines), lines)
	}
	var p struct{ Pose struct{ X float64 } }
	if err := json.Unmarshal(lines[19].Payload, &p); err != nil || p.Pose.X != 14.5 {
		t.Errorf("payload %s: %v", lines[19].Payload, err)
	}
	for _, q := range []string{"topic=x", "topic=12345"} {
		resp, err := http.Get(ts.URL + "/api/messages?" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Errorf("%s: %s", q, resp.Status)
		}
	}
}

func TestSecurityHeaders(t *testing.T) {
	_, _, ts := newTest(t, Config{})
	for _, path := range []string{"/", "/app.js", "/app.css", "/api/frame"} {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Security-Policy") != CSP || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: %s %v", path, resp.Status, resp.Header)
		}
		switch path {
		case "/":
			if !strings.Contains(string(body), `<script src="app.js"`) || strings.Contains(string(body), "<script>") || strings.Contains(string(body), " onclick") {
				t.Errorf("index.html has inline script")
			}
		case "/app.js":
			if ct := resp.Header.Get("Content-Type"); !strings.Contains(ct, "javascript") {
				t.Errorf("app.js Content-Type %q", ct)
			}
			// The page never parses data as markup or code (comments aside).
			var code strings.Builder
			for _, line := range strings.Split(string(body), "\n") {
				if !strings.HasPrefix(strings.TrimSpace(line), "//") {
					code.WriteString(line + "\n")
				}
			}
			for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "Function(", "javascript:", "setTimeout('", "srcdoc"} {
				if strings.Contains(code.String(), sink) {
					t.Errorf("app.js uses %s", sink)
				}
			}
		}
	}
	if !strings.Contains(CSP, "default-src 'none'") || !strings.Contains(CSP, "script-src 'self'") || strings.Contains(CSP, "unsafe") {
		t.Errorf("CSP %q", CSP)
	}

	// DNS rebinding: a Host that is a name other than localhost is refused.
	for host, want := range map[string]int{"evil.example:8088": 403, "localhost:8088": 200, "127.0.0.1:8088": 200, "[::1]:8088": 200, "app.localhost": 200} {
		req, _ := http.NewRequest("GET", ts.URL+"/api/frame", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %s: %s, want %d", host, resp.Status, want)
		}
	}
}

func TestClear(t *testing.T) {
	s, c, ts := newTest(t, Config{})
	feed(t, s, c)
	resp, err := http.Post(ts.URL+"/api/clear", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 || s.Len() != 3 {
		t.Fatalf("clear without the header: %s, %d topics", resp.Status, s.Len())
	}
	req, _ := http.NewRequest("POST", ts.URL+"/api/clear", nil)
	req.Header.Set("X-Mcl-Spy", "1")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 || s.Len() != 0 || s.KeptBytes() != 0 || s.Census().Len() != 0 {
		t.Fatalf("clear: %s, %d topics", resp.Status, s.Len())
	}
	if f := getFrame(t, ts.URL+"/api/frame"); f.Topics != 0 || len(f.Rows) != 0 {
		t.Errorf("after clear: %+v", f)
	}
}

// TestEvents reads the event stream: a frame at once, then one per
// interval, the detail sending each message once.
func TestEvents(t *testing.T) {
	s, c, ts := newTest(t, Config{Keep: 20})
	feed(t, s, c)
	id := getFrame(t, ts.URL+"/api/frame?filter=robot/pose").Rows[0].ID
	resp, err := http.Get(ts.URL + "/events?sort=rate&dir=desc&topic=" + strconv.FormatUint(id, 10))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" || resp.Header.Get("Content-Security-Policy") == "" {
		t.Fatalf("headers %v", resp.Header)
	}
	br := bufio.NewReader(resp.Body)
	next := func() (Frame, time.Time) {
		t.Helper()
		var f Frame
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if data, ok := strings.CutPrefix(line, "data: "); ok {
				if err := json.Unmarshal([]byte(data), &f); err != nil {
					t.Fatal(err)
				}
				blank, _ := br.ReadString('\n')
				if blank != "\n" {
					t.Fatalf("event not ended by a blank line: %q", blank)
				}
				return f, time.Now()
			}
			if line != "event: frame\n" {
				t.Fatalf("line %q", line)
			}
		}
	}
	f, t0 := next()
	if len(f.Rows) != 3 || f.Rows[0].Topic != "robot/pose" || len(f.Detail.Messages) != 20 {
		t.Fatalf("first frame: %d rows, %+v", len(f.Rows), f.Detail)
	}
	s.Add("robot/pose", pack(t, map[string]any{"pose": map[string]any{"x": 99}}), senderA, c.add(time.Millisecond))
	f, t1 := next()
	if n := len(f.Detail.Messages); n != 1 || f.Detail.Messages[0].Seq != 31 {
		t.Fatalf("second frame: %d messages", n)
	}
	f, t2 := next()
	if n := len(f.Detail.Messages); n != 0 {
		t.Fatalf("third frame: %d messages, want none new", n)
	}
	// At most ten frames a second.
	if d := t2.Sub(t0); d < 2*MinInterval-20*time.Millisecond {
		t.Errorf("three frames in %v (%v, %v)", d, t1.Sub(t0), t2.Sub(t1))
	}
}

// TestBoundKeptBytes checks that payloads past MaxPayload or the total
// MaxKeptBytes are listed but not kept.
func TestBoundKeptBytes(t *testing.T) {
	s := New(Config{Keep: 10, MaxKeptBytes: 10000, MaxPayload: 2000})
	big := pack(t, strings.Repeat("x", 3000))
	mid := pack(t, strings.Repeat("y", 1500))
	now := time.Now()
	s.Add("big", big, senderA, now)
	for i := range 100 {
		s.Add("t"+strconv.Itoa(i%20), mid, senderA, now)
	}
	if k := s.KeptBytes(); k > 10000 {
		t.Errorf("kept %d bytes, bound 10000", k)
	}
	f := s.Frame(Query{})
	if f.NotKept < 90 {
		t.Errorf("not kept %d", f.NotKept)
	}
	_, ms, _ := s.Messages(1)
	if len(ms) != 1 || ms[0].Payload != nil || ms[0].Size != len(big) || ms[0].Note == "" {
		t.Errorf("big: %+v", ms)
	}
}

// TestFloodMillionTopics adds a million distinct topics: the server keeps
// MaxTopics, counts the rest as refused, and its memory stays within the
// bound however many more come.
func TestFloodMillionTopics(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	const n = 1_000_000
	s := New(Config{}) // the defaults: 10000 topics, 20 messages each
	payload := pack(t, map[string]any{"x": 1.5, "s": "<script>alert(1)</script>"})
	at := time.Now()
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	var atBound uint64
	var buf []byte
	for i := range n {
		buf = strconv.AppendInt(append(buf[:0], "flood/"...), int64(i), 16)
		s.Add(string(buf), payload, senderA, at)
		if i == 2*census.DefaultLimit {
			atBound = heap()
		}
	}
	after := heap()
	if s.Len() != census.DefaultLimit || s.Census().Len() != census.DefaultLimit {
		t.Fatalf("%d topics held, census %d; want %d", s.Len(), s.Census().Len(), census.DefaultLimit)
	}
	if r := s.Census().Refused(); r != n-census.DefaultLimit {
		t.Errorf("refused %d, want %d", r, n-census.DefaultLimit)
	}
	grown := int64(after) - int64(before)
	t.Logf("heap: %d MB before, %d MB at 20000 topics offered, %d MB after a million", before>>20, atBound>>20, after>>20)
	// 10000 topics of one message each: a few hundred bytes apiece in the
	// census and here. A leak of the refused ones would be 990000 of them.
	if grown > 32<<20 {
		t.Errorf("heap grew %d MB for a million topics", grown>>20)
	}
	if d := int64(after) - int64(atBound); d > 4<<20 {
		t.Errorf("heap grew %d MB after the bound was reached", d>>20)
	}
	// A frame holds at most MaxRows rows, however many topics.
	start := time.Now()
	f := s.Frame(Query{Sort: "rate", Desc: true})
	if len(f.Rows) != DefaultMaxRows || f.Topics != census.DefaultLimit || f.Refused != n-census.DefaultLimit {
		t.Errorf("frame: %d rows, %d topics, %d refused", len(f.Rows), f.Topics, f.Refused)
	}
	t.Logf("a frame of 10000 topics took %v", time.Since(start))
}

// BenchmarkAdd is the cost per message in the Subscriber's callback: a
// census.Add and a copy into the topic's ring.
func BenchmarkAdd(b *testing.B) {
	s := New(Config{})
	payload := pack(b, map[string]any{"x": 1.5, "y": []int{1, 2, 3}})
	topics := []string{"a", "b", "c", "d"}
	at := time.Now()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s.Add(topics[i&3], payload, senderA, at)
	}
}

// TestFrameMCL2Loss: a row sums the loss of the topic's mcl/2 senders,
// and has none when its senders are not mcl/2 senders.
func TestFrameMCL2Loss(t *testing.T) {
	cfg := Config{Senders: func() map[netip.AddrPort]census.Loss {
		return map[netip.AddrPort]census.Loss{senderA: {Lost: 3, Reordered: 1, Repeated: 2}}
	}}
	s, c, ts := newTest(t, cfg)
	feed(t, s, c)
	c.add(100 * time.Millisecond)
	f := getFrame(t, ts.URL+"/api/frame")
	for _, r := range f.Rows {
		var fromA bool
		d := s.Frame(Query{Topic: r.ID}).Detail
		for _, x := range d.Senders {
			fromA = fromA || x.Addr == senderA.String()
		}
		if want := (census.Loss{Lost: 3, Reordered: 1, Repeated: 2}); fromA && (r.MCL2 == nil || *r.MCL2 != want) || !fromA && r.MCL2 != nil {
			t.Errorf("topic %q (from A: %v): mcl2 %+v", r.Topic, fromA, r.MCL2)
		}
	}
}
