package bridge

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestSubject(t *testing.T) {
	for _, tc := range []struct{ topic, subject string }{
		{"gps", "mcl.gps"},
		{"camera/front", "mcl.camera.front"},
		{"", "mcl.%"},
		{"/", "mcl.%.%"},
		{"/x/", "mcl.%.x.%"},
		{"a//b", "mcl.a.%.b"},
		{"a.b", "mcl.a%2Eb"},
		{"*", "mcl.%2A"},
		{"**/>", "mcl.%2A%2A.%3E"},
		{"100%", "mcl.100%25"},
		{"%", "mcl.%25"},
		{"two words", "mcl.two%20words"},
		{"tab\there\n", "mcl.tab%09here%0A"},
		{"café", "mcl.caf%C3%A9"},
		{"\xff\x00", "mcl.%FF%00"},
		{"$SYS", "mcl.$SYS"},
		{"a-b_c:d~e+f=g@h,i", "mcl.a-b_c:d~e+f=g@h,i"},
	} {
		if got := Subject("mcl", tc.topic); got != tc.subject {
			t.Errorf("Subject(%q) = %q, want %q", tc.topic, got, tc.subject)
		}
		if got, err := Topic("mcl", tc.subject); err != nil || got != tc.topic {
			t.Errorf("Topic(%q) = %q, %v, want %q", tc.subject, got, err, tc.topic)
		}
	}
}

func TestTopicLenient(t *testing.T) {
	for _, tc := range []struct{ subject, topic string }{
		{"mcl.caf%c3%a9", "café"},
		{"mcl.café", "café"},
		{"site.mcl.a.b", "a/b"},
	} {
		prefix := "mcl"
		if strings.HasPrefix(tc.subject, "site.") {
			prefix = "site.mcl"
		}
		if got, err := Topic(prefix, tc.subject); err != nil || got != tc.topic {
			t.Errorf("Topic(%q) = %q, %v, want %q", tc.subject, got, err, tc.topic)
		}
	}
	for _, s := range []string{"mcl", "other.a", "mcl.a..b", "mcl.a%2", "mcl.a%zz", "mcl.%%", "mcl."} {
		if got, err := Topic("mcl", s); !errors.Is(err, ErrSubject) {
			t.Errorf("Topic(%q) = %q, %v, want ErrSubject", s, got, err)
		}
	}
}

// validSubject reports whether s is a literal NATS subject: tokens not
// empty, no wildcards, no whitespace, printable ASCII.
func validSubject(s string) bool {
	for _, tok := range strings.Split(s, ".") {
		if tok == "" || tok == "*" || tok == ">" {
			return false
		}
		for i := 0; i < len(tok); i++ {
			if tok[i] <= 0x20 || tok[i] >= 0x7f || tok[i] == '*' || tok[i] == '>' {
				return false
			}
		}
	}
	return true
}

func FuzzSubjectRoundTrip(f *testing.F) {
	for _, s := range []string{"", "/", "gps", "a.b/*/**", "%", "%25", "\xff/ /\x00", "café/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		s := Subject("p.q", topic)
		if !validSubject(s) {
			t.Fatalf("Subject(%q) = %q: not a valid literal subject", topic, s)
		}
		got, err := Topic("p.q", s)
		if err != nil || got != topic {
			t.Fatalf("Topic(Subject(%q)) = %q, %v", topic, got, err)
		}
		if strings.Count(s, ".")-2 != strings.Count(topic, "/") {
			t.Fatalf("Subject(%q) = %q: a token per segment", topic, s)
		}
		// Any subject: no panic, and what decodes encodes to a subject
		// that decodes the same.
		if tp, err := Topic("p.q", "p.q."+topic); err == nil && utf8.ValidString(topic) {
			if back, err := Topic("p.q", Subject("p.q", tp)); err != nil || back != tp {
				t.Fatalf("round trip of %q: %q, %v", tp, back, err)
			}
		}
	})
}

func TestSubjectsFor(t *testing.T) {
	for _, tc := range []struct {
		patterns []string
		want     []string
	}{
		{nil, []string{"mcl.>"}},
		{[]string{"gps"}, []string{"mcl.gps"}},
		{[]string{"gps", "imu", "a.b"}, []string{"mcl.gps", "mcl.imu", "mcl.a%2Eb"}},
		{[]string{"camera/*"}, []string{"mcl.camera.*"}},
		{[]string{"vehicle/**"}, []string{"mcl.vehicle", "mcl.vehicle.>"}},
		{[]string{"**"}, []string{"mcl.>"}},
		{[]string{"**/front"}, []string{"mcl.>"}},
		{[]string{"a/**/b"}, []string{"mcl.a.>"}},
		{[]string{"*/x", "a/y"}, []string{"mcl.*.x", "mcl.a.y"}},
		{[]string{"camera/*", "camera/front"}, []string{"mcl.>"}}, // overlap
		{[]string{"a/**", "a/b"}, []string{"mcl.>"}},
	} {
		if got := subjectsFor("mcl", tc.patterns); !slices.Equal(got, tc.want) {
			t.Errorf("subjectsFor(%q) = %q, want %q", tc.patterns, got, tc.want)
		}
	}
}

func TestCheckPrefix(t *testing.T) {
	for _, p := range []string{"", ".", "a.", "a..b", "a.*", ">", "a b"} {
		if checkPrefix(p) == nil {
			t.Errorf("checkPrefix(%q) accepted", p)
		}
	}
	for _, p := range []string{"mcl", "site1.mcl", "$mcl"} {
		if err := checkPrefix(p); err != nil {
			t.Errorf("checkPrefix(%q): %v", p, err)
		}
	}
}

func TestJoiner(t *testing.T) {
	t0 := time.Unix(1000, 0)
	j := newJoiner(1<<20, time.Second)
	if w, d := j.add("o/1", 2, 3, []byte("bb"), t0); w != nil || d != 0 {
		t.Fatal(w, d)
	}
	j.add("o/1", 1, 3, []byte("a"), t0)
	j.add("o/1", 1, 3, []byte("x"), t0) // a repeat is ignored
	if w, _ := j.add("o/1", 3, 3, []byte("ccc"), t0); string(w) != "abbccc" {
		t.Fatalf("joined %q", w)
	}
	if j.bytes != 0 || len(j.pending) != 0 {
		t.Fatalf("left %d bytes, %d pending", j.bytes, len(j.pending))
	}
	// Timeout.
	j.add("o/2", 1, 2, []byte("a"), t0)
	if _, d := j.add("o/3", 1, 2, []byte("a"), t0.Add(2*time.Second)); d != 1 {
		t.Fatalf("timed out %d, want 1", d)
	}
	// Bound: the oldest other message is evicted.
	big := make([]byte, 600<<10)
	j.add("o/4", 1, 2, big, t0.Add(2*time.Second))
	if _, d := j.add("o/5", 1, 2, big, t0.Add(2*time.Second)); d < 1 {
		t.Fatalf("evicted %d, want 1 or 2", d)
	}
	if _, ok := j.pending["o/5"]; !ok {
		t.Fatal("the newest message was evicted")
	}
	if j.bytes > 1<<20 {
		t.Fatalf("holds %d bytes", j.bytes)
	}
	for _, s := range []string{"", "1", "0/2", "3/2", "1/1", "1/70000", "a/b"} {
		if _, _, ok := parsePart(s); ok {
			t.Errorf("parsePart(%q) accepted", s)
		}
	}
}
