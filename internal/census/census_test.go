package census

import (
	"math"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a1 = netip.MustParseAddrPort("[fd6d:636c::1]:40000")
	a2 = netip.MustParseAddrPort("10.0.0.2:40001")
)

func one(t *testing.T, c *Census, now time.Time, name string) TopicStats {
	t.Helper()
	for _, s := range c.Snapshot(now) {
		if s.Topic == name {
			return s
		}
	}
	t.Fatalf("topic %q not in the snapshot", name)
	return TopicStats{}
}

func near(got, want, tol float64) bool { return math.Abs(got-want) <= tol }

func TestRatePeriodSize(t *testing.T) {
	c := New(0)
	// 10 s at 100 Hz, 100-byte payloads: a steady topic.
	at := t0
	for i := range 1000 {
		c.Add("steady", 100, a1, at)
		if i < 999 {
			at = at.Add(10 * time.Millisecond)
		}
	}
	s := one(t, c, at, "steady")
	if s.Messages != 1000 || s.MinPeriod != 10*time.Millisecond || s.MaxPeriod != 10*time.Millisecond || s.Jitter != 0 {
		t.Errorf("steady: %+v", s)
	}
	if !near(s.Rate, 100, 3) || !near(s.Bandwidth, 10000, 300) {
		t.Errorf("steady: rate %v Hz, bandwidth %v B/s; want 100, 10000", s.Rate, s.Bandwidth)
	}
	if s.SizeMin != 100 || s.SizeMax != 100 || s.SizeMean != 100 || s.Senders != 1 || s.SendersMore {
		t.Errorf("steady sizes or senders: %+v", s)
	}
	if !s.First.Equal(t0) || !s.Last.Equal(at) {
		t.Errorf("first %v last %v", s.First, s.Last)
	}
	// Quiet for a window: the rate falls to 0, the totals stay.
	later := one(t, c, at.Add(6*time.Second), "steady")
	if later.Rate != 0 || later.Bandwidth != 0 || later.Messages != 1000 {
		t.Errorf("after a quiet window: %+v", later)
	}
}

func TestJitter(t *testing.T) {
	c := New(0)
	// Periods alternate 10 ms and 30 ms: mean 20 ms, std dev 10 ms.
	at := t0
	for i := range 101 {
		c.Add("j", i, a1, at)
		if i%2 == 0 {
			at = at.Add(10 * time.Millisecond)
		} else {
			at = at.Add(30 * time.Millisecond)
		}
	}
	s := one(t, c, at, "j")
	if s.MinPeriod != 10*time.Millisecond || s.MaxPeriod != 30*time.Millisecond {
		t.Errorf("periods %v..%v", s.MinPeriod, s.MaxPeriod)
	}
	if d := s.Jitter - 10*time.Millisecond; d < -time.Microsecond || d > time.Microsecond {
		t.Errorf("jitter %v, want 10ms", s.Jitter)
	}
	if s.SizeMin != 0 || s.SizeMax != 100 || s.SizeMean != 50 {
		t.Errorf("sizes %d/%v/%d", s.SizeMin, s.SizeMean, s.SizeMax)
	}
}

func TestRateSinceFirst(t *testing.T) {
	c := New(0)
	// 11 messages 100 ms apart, snapshot 1 s after the first: 11 in 1 s.
	for i := range 11 {
		c.Add("x", 10, a1, t0.Add(time.Duration(i)*100*time.Millisecond))
	}
	s := one(t, c, t0.Add(time.Second), "x")
	if !near(s.Rate, 11, 0.01) || !near(s.Bandwidth, 110, 0.1) {
		t.Errorf("rate %v bandwidth %v; want 11, 110", s.Rate, s.Bandwidth)
	}
	// A topic that starts later is measured from its own first message.
	c.Add("y", 1, a1, t0.Add(2*time.Second))
	c.Add("y", 1, a1, t0.Add(2500*time.Millisecond))
	if y := one(t, c, t0.Add(3*time.Second), "y"); !near(y.Rate, 2, 0.01) {
		t.Errorf("y: rate %v, want 2", y.Rate)
	}
}

// TestRateWholeWindow: what came during one window, seen at its end,
// counts whole (as mcl topics --once shows it).
func TestRateWholeWindow(t *testing.T) {
	c := NewWindow(0, 2*time.Second)
	start := t0.Add(-time.Millisecond) // the window opens before the first message
	for i := range 50 {
		c.Add("burst", 10, a1, t0.Add(time.Duration(i)*time.Millisecond))
	}
	if s := one(t, c, start.Add(2*time.Second), "burst"); !near(s.Rate, 25, 0.1) || !near(s.Bandwidth, 250, 1) {
		t.Errorf("rate %v bandwidth %v; want 25, 250", s.Rate, s.Bandwidth)
	}
}

func TestSenders(t *testing.T) {
	c := New(0)
	c.Add("s", 1, a1, t0)
	c.Add("s", 1, a2, t0)
	c.Add("s", 1, a1, t0)
	if s := one(t, c, t0, "s"); s.Senders != 2 || s.SendersMore {
		t.Errorf("2 senders: %+v", s)
	}
	for i := range 100 {
		c.Add("s", 1, netip.AddrPortFrom(a1.Addr(), uint16(1000+i)), t0)
	}
	if s := one(t, c, t0, "s"); s.Senders != MaxSenders || !s.SendersMore {
		t.Errorf("102 senders: %d, more %v", s.Senders, s.SendersMore)
	}
}

func TestOutOfOrder(t *testing.T) {
	c := New(0)
	c.Add("o", 1, a1, t0.Add(time.Second))
	c.Add("o", 1, a1, t0) // earlier than the first: period counted as 0
	s := one(t, c, t0.Add(time.Second), "o")
	if s.Messages != 2 || s.MinPeriod != 0 || !s.Last.Equal(t0.Add(time.Second)) {
		t.Errorf("%+v", s)
	}
}

func TestLimit(t *testing.T) {
	c := New(10000)
	names := make([]string, 20000)
	for i := range names {
		names[i] = "topic/" + strconv.Itoa(i)
	}
	for i, n := range names {
		c.Add(n, 8, a1, t0.Add(time.Duration(i)))
	}
	if c.Len() != 10000 || c.Refused() != 10000 {
		t.Fatalf("kept %d topics, refused %d; want 10000 and 10000", c.Len(), c.Refused())
	}
	// Known topics still count; new ones are still refused.
	c.Add(names[0], 8, a1, t0)
	c.Add("another", 8, a1, t0)
	if s := one(t, c, t0.Add(time.Second), names[0]); s.Messages != 2 || c.Refused() != 10001 {
		t.Errorf("messages %d refused %d", s.Messages, c.Refused())
	}
	if n := len(c.Snapshot(t0)); n != 10000 {
		t.Errorf("snapshot of %d topics", n)
	}
	if New(-1).Limit() != DefaultLimit {
		t.Error("default limit")
	}
}

func TestAddAllocs(t *testing.T) {
	c := New(0)
	name := "camera/front"
	c.Add(name, 10, a1, t0)
	c.Add(name, 10, a2, t0)
	at := t0
	i := 0
	n := testing.AllocsPerRun(1000, func() {
		at = at.Add(time.Millisecond)
		i++
		from := a1
		if i%2 == 0 {
			from = a2
		}
		c.Add(name, i%500, from, at)
	})
	if n != 0 {
		t.Errorf("Add allocates %v times per message of a known topic", n)
	}
}

func BenchmarkAdd(b *testing.B) {
	c := New(0)
	at := t0
	b.ReportAllocs()
	for b.Loop() {
		at = at.Add(time.Microsecond)
		c.Add("camera/front", 1000, a1, at)
	}
}

// TestLongTopics: a topic longer than MaxTopicLen is refused, so that the
// topics held stay within limit*MaxTopicLen bytes.
func TestLongTopics(t *testing.T) {
	c := New(10)
	at := time.Unix(0, 0)
	c.Add(strings.Repeat("x", MaxTopicLen), 1, netip.AddrPort{}, at)
	c.Add(strings.Repeat("y", MaxTopicLen+1), 1, netip.AddrPort{}, at)
	if c.Len() != 1 || c.Refused() != 1 {
		t.Fatalf("held %d, refused %d; want 1 and 1", c.Len(), c.Refused())
	}
}
