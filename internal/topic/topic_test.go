package topic

import (
	"errors"
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	for _, c := range []struct {
		pattern string
		yes, no []string
	}{
		{"camera/*", []string{"camera/front", "camera/", "camera/x y"}, []string{"camera", "camera/front/raw", "cameras/front", "x/camera/front"}},
		{"**/front", []string{"front", "camera/front", "a/b/c/front"}, []string{"camera/front/raw", "fronts", "camera/back", ""}},
		{"**", []string{"", "a", "a/b/c", "/"}, nil},
		{"*", []string{"", "a", "gps"}, []string{"a/b", "/"}},
		{"a/**", []string{"a", "a/b", "a/b/c", "a/"}, []string{"b", "ab", "b/a"}},
		{"a/**/z", []string{"a/z", "a/b/z", "a/b/c/z"}, []string{"a", "a/z/b", "z", "a/b"}},
		{"*/**/*", []string{"a/b", "a/b/c", "a/b/c/d"}, []string{"a", ""}},
		{"**/**/x", []string{"x", "a/x", "a/b/x"}, []string{"a", "x/a"}},
		{"a/*/c/**/e", []string{"a/b/c/e", "a/b/c/d/e", "a/b/c/d/d/e"}, []string{"a/c/e", "a/b/b/c/e", "a/b/c"}},
		{"/x", []string{"/x"}, []string{"x", "a/x"}},
		{"x/", []string{"x/"}, []string{"x", "x/a"}},
	} {
		p, err := Compile(c.pattern)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range c.yes {
			if !p.Match([]byte(s)) || !ref(strings.Split(c.pattern, "/"), strings.Split(s, "/")) {
				t.Errorf("%q should match %q", c.pattern, s)
			}
		}
		for _, s := range c.no {
			if p.Match([]byte(s)) || ref(strings.Split(c.pattern, "/"), strings.Split(s, "/")) {
				t.Errorf("%q should not match %q", c.pattern, s)
			}
		}
	}
}

func TestCompileErrors(t *testing.T) {
	for _, s := range []string{"cam*", "a/*b/c", "***", "a/b**"} {
		if _, err := Compile(s); !errors.Is(err, ErrPattern) {
			t.Errorf("Compile(%q): %v, want ErrPattern", s, err)
		}
		if _, err := NewFilter([]string{"ok", s}); !errors.Is(err, ErrPattern) {
			t.Errorf("NewFilter with %q: %v, want ErrPattern", s, err)
		}
	}
}

func TestFilter(t *testing.T) {
	f, err := NewFilter([]string{"gps", "camera/*", "**/raw"})
	if err != nil {
		t.Fatal(err)
	}
	for s, want := range map[string]bool{"gps": true, "gps/x": false, "camera/a": true, "lidar/raw": true, "imu": false, "camera/a/raw": true} {
		if f.Match([]byte(s)) != want || f.MatchString(s) != want {
			t.Errorf("filter on %q: want %v", s, want)
		}
	}
	var none *Filter
	if !none.Match([]byte("anything")) || !none.MatchString("") {
		t.Error("a nil filter must pass everything")
	}
	if f, _ := NewFilter(nil); f != nil {
		t.Error("an empty list must give a nil filter")
	}
}

// ref is the definition, by recursion: exponential, for short inputs.
func ref(p, t []string) bool {
	if len(p) == 0 {
		return len(t) == 0
	}
	switch p[0] {
	case "**":
		for k := 0; k <= len(t); k++ {
			if ref(p[1:], t[k:]) {
				return true
			}
		}
		return false
	case "*":
		return len(t) > 0 && ref(p[1:], t[1:])
	}
	return len(t) > 0 && p[0] == t[0] && ref(p[1:], t[1:])
}

// FuzzMatch compares Match with the recursive definition on patterns and
// topics drawn from a small alphabet, where every case is reachable.
func FuzzMatch(f *testing.F) {
	f.Add("a/**/b", "a/x/y/b")
	f.Add("**/*/**", "")
	f.Fuzz(func(t *testing.T, pattern, topic string) {
		if len(pattern) > 24 || len(topic) > 24 {
			return
		}
		p, err := Compile(pattern)
		if err != nil {
			return
		}
		if got, want := p.Match([]byte(topic)), ref(strings.Split(pattern, "/"), strings.Split(topic, "/")); got != want {
			t.Fatalf("%q on %q: %v, want %v", pattern, topic, got, want)
		}
	})
}

// BenchmarkFilter: an exact name as before patterns (a map lookup), and
// with patterns beside it.
func BenchmarkFilter(b *testing.B) {
	topic := []byte("vehicle/camera/front/raw")
	for _, c := range []struct {
		name string
		list []string
	}{
		{"exact", []string{"gps", "imu", "vehicle/camera/front/raw"}},
		{"exact-miss", []string{"gps", "imu", "lidar"}},
		{"pattern", []string{"gps", "**/front/*"}},
		{"pattern-miss", []string{"gps", "**/back/*", "lidar/*"}},
	} {
		f, err := NewFilter(c.list)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				f.Match(topic)
			}
		})
	}
}
