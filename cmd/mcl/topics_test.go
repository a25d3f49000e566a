package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcl-go/mcl"
	"github.com/mcl-go/mcl/internal/census"
	"github.com/mcl-go/mcl/sandbox"
)

// topicsOutput is one JSON object of mcl topics.
type topicsOutput struct {
	Time   time.Time
	Topics []struct {
		Topic       string
		Messages    uint64
		RateHz      float64 `json:"rate_hz"`
		MCL2        *census.Loss
		BytesPerS   float64 `json:"bytes_per_s"`
		MinPeriodS  float64 `json:"min_period_s"`
		MaxPeriodS  float64 `json:"max_period_s"`
		SizeMin     int     `json:"size_min"`
		SizeMax     int     `json:"size_max"`
		SizeMean    float64 `json:"size_mean"`
		Senders     int
		First, Last time.Time
	}
	Refused, Undecodable, Lost, Reordered, Repeated, Dropped uint64
}

// bin returns a msgpack bin of n bytes: n+2 bytes long for n < 256, n+3 up
// to 65535.
func bin(n int) []byte {
	var p []byte
	if n < 256 {
		p = []byte{0xc4, byte(n)}
	} else {
		p = []byte{0xc5, byte(n >> 8), byte(n)}
	}
	return append(p, make([]byte, n)...)
}

const hostile = "\x1b[2Jevil"

// publishKnown publishes 50 messages on gps (sizes 12 and 102), 20 on
// imu (1003) and 10 on the hostile topic (1, a nil).
func publishKnown(t *testing.T, pub *mcl.Publisher) {
	t.Helper()
	for i := range 50 {
		p := bin(10)
		if i%2 == 1 {
			p = bin(100)
		}
		if err := pub.PublishRaw("gps", p); err != nil {
			t.Fatal(err)
		}
		if i < 20 {
			if err := pub.PublishRaw("imu", bin(1000)); err != nil {
				t.Fatal(err)
			}
		}
		if i < 10 {
			if err := pub.PublishRaw(hostile, []byte{0xc0}); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Millisecond)
	}
}

func TestTopicsOnceJSON(t *testing.T) {
	sandbox.Require(t)
	for _, framing := range []string{"seed", "mcl2"} {
		t.Run(framing, func(t *testing.T) {
			port := int(nextPort.Add(1))
			done := startCommand(t, "topics", "--port", strconv.Itoa(port), "--once", "--window", "2s", "--json")
			var opts []mcl.PublishOption
			if framing == "mcl2" {
				opts = append(opts, mcl.WithFraming(mcl.FramingMCL2), mcl.Express())
			}
			publishKnown(t, publisherOn(t, mcl.DefaultGroup, port, opts...))
			sendGarbage(t, port)
			r := wait(t, done)
			if r.code != 0 || strings.Count(r.stdout, "\n") != 1 {
				t.Fatalf("topics: %+v", r)
			}
			var o topicsOutput
			if err := json.Unmarshal([]byte(r.stdout), &o); err != nil {
				t.Fatalf("%v: %s", err, r.stdout)
			}
			want := map[string]struct {
				n        uint64
				min, max int
			}{"gps": {50, 12, 102}, "imu": {20, 1003, 1003}, hostile: {10, 1, 1}}
			if len(o.Topics) != len(want) || o.Refused != 0 || o.Undecodable != 1 || o.Lost != 0 || o.Time.IsZero() {
				t.Errorf("output %s", r.stdout)
			}
			for i, s := range o.Topics {
				w, ok := want[s.Topic]
				if !ok {
					t.Errorf("unexpected topic %q", s.Topic)
					continue
				}
				// The loss of the topic's mcl/2 senders: none lost, and
				// nothing to say of seed senders.
				if (s.MCL2 == nil) != (framing == "seed") || (s.MCL2 != nil && *s.MCL2 != census.Loss{}) {
					t.Errorf("topic %q: mcl2 %+v in the %s framing", s.Topic, s.MCL2, framing)
				}
				if s.Messages != w.n || s.SizeMin != w.min || s.SizeMax != w.max || s.Senders != 1 {
					t.Errorf("topic %q: %d messages, sizes %d..%d, %d senders; want %d, %d..%d, 1",
						s.Topic, s.Messages, s.SizeMin, s.SizeMax, s.Senders, w.n, w.min, w.max)
				}
				// All came in the 2 s window, just after it opened.
				if hz := float64(w.n) / 2; s.RateHz < hz*0.95 || s.RateHz > hz*1.2 {
					t.Errorf("topic %q: rate %v Hz, want about %v", s.Topic, s.RateHz, hz)
				}
				if s.BytesPerS <= 0 || s.MaxPeriodS < s.MinPeriodS || s.First.After(s.Last) {
					t.Errorf("topic %q: %+v", s.Topic, s)
				}
				if i > 0 && o.Topics[i-1].Topic > s.Topic {
					t.Errorf("not sorted by name: %q before %q", o.Topics[i-1].Topic, s.Topic)
				}
			}
			if !strings.Contains(r.stdout, `"topic":"\u001b[2Jevil"`) {
				t.Errorf("hostile topic not escaped in JSON: %s", r.stdout)
			}
		})
	}
}

// sendGarbage sends one datagram to the default group that is no frame.
func sendGarbage(t *testing.T, port int) {
	t.Helper()
	c, err := net.Dial("udp", net.JoinHostPort(mcl.DefaultGroup, strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("not an mcl frame")); err != nil {
		t.Fatal(err)
	}
}

// lockedBuffer is a bytes.Buffer written by a command while a test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestTopicsLive runs topics until Ctrl-C: a JSON object per interval,
// the counts growing to what was published, and exit 0.
func TestTopicsLive(t *testing.T) {
	sandbox.Require(t)
	port := int(nextPort.Add(1))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out lockedBuffer
	done := startCommandContext(t, ctx, &out, "topics", "--port", strconv.Itoa(port), "--interval", "50ms", "--sort", "messages", "--topic", "gps", "--topic", "imu")
	publishKnown(t, publisherOn(t, mcl.DefaultGroup, port))
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), `"topic":"gps","messages":50,`) {
		if time.Now().After(deadline) {
			t.Fatalf("gps never reached 50 messages:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	r := wait(t, done)
	if r.code != 0 {
		t.Fatalf("topics after Ctrl-C: %+v", r)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	var last topicsOutput
	for _, l := range lines {
		if err := json.Unmarshal([]byte(l), &last); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
	}
	// Sorted by messages, the hostile topic filtered out by --topic.
	if len(last.Topics) != 2 || last.Topics[0].Topic != "gps" || last.Topics[1].Topic != "imu" || last.Topics[1].Messages != 20 {
		t.Errorf("last object %s", lines[len(lines)-1])
	}
}

func TestTopicsTableSafe(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c := census.New(0)
	from := netip.MustParseAddrPort("[fd6d:636c::1]:40000")
	long := strings.Repeat("very/long/", 20)
	names := []string{"gps", hostile, "tab\there", "bad\xff\xfeutf8", "rtl\u202eesrever", "", `"quoted"`, "camera/front", "héllo", long}
	for i, n := range names {
		for j := range 3 {
			c.Add(n, 10*(i+1), from, at.Add(time.Duration(j)*100*time.Millisecond))
		}
	}
	for i := range 70 {
		c.Add("gps", 10, netip.AddrPortFrom(from.Addr(), uint16(1000+i)), at.Add(time.Second))
	}
	now := at.Add(2 * time.Second)
	ts := c.Snapshot(now)
	sortTopics(ts, "name")
	var b bytes.Buffer
	renderTopicsTable(&b, palette{}, "[ff15::1]:26000", now, ts, nil, topicsFooter{Undecodable: 3, Lost: 4}, c.Limit())
	out := b.String()
	for i, r := range out {
		if (r < 0x20 && r != '\n') || r == 0x7f || r == '\u202e' || r == '\ufffd' {
			t.Fatalf("byte %d of the table is %U:\n%s", i, r, out)
		}
	}
	for _, want := range []string{
		"\ngps ", "\ncamera/front ", "\nhéllo ",
		`"\x1b[2Jevil"`, `"tab\there"`, `"bad\xff\xfeutf8"`, `"rtl\u202eesrever"`, "\n\"\" ", `"\"quoted\""`,
		"very/long/very/long/very/long/very/long/very/lo…",
		"64+", "undecodable datagrams 3", "lost 4", "30/30/30", "100.0ms/100.0ms",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	t.Logf("\n%s", out)
}

func TestTopicsUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"topics", "--sort", "size2"}, `--sort "size2"`},
		{[]string{"topics", "--interval", "0s"}, "--interval"},
		{[]string{"topics", "--once", "--window", "-1s"}, "--window"},
		{[]string{"topics", "--max-topics", "0"}, "--max-topics 0"},
		{[]string{"topics", "--topic", "cam*"}, "--topic"},
		{[]string{"topics", "extra"}, `no arguments; got "extra"`},
	} {
		r := mcl_(context.Background(), "", tc.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("mcl %s: exit %d, stderr %q; want exit 2 mentioning %q", strings.Join(tc.args, " "), r.code, r.stderr, tc.want)
		}
	}
}
