package sock

import (
	"runtime"
	"testing"
	"time"
)

// TestSpinner checks the rule with made-up times: no spinning before the
// first datagram, spinning until spin has passed since the last one, and
// again after the next.
func TestSpinner(t *testing.T) {
	t0 := time.Unix(1000, 0)
	s := spinner{spin: 50 * time.Microsecond}
	if s.again(t0) {
		t.Fatal("spins before any datagram arrived")
	}
	s.arrived(t0)
	for _, c := range []struct {
		at   time.Duration
		want bool
	}{{0, true}, {time.Microsecond, true}, {49 * time.Microsecond, true}, {50 * time.Microsecond, false}, {time.Second, false}} {
		if got := s.again(t0.Add(c.at)); got != c.want {
			t.Errorf("%v after a datagram: again %v, want %v", c.at, got, c.want)
		}
	}
	if s.spins != 3 {
		t.Errorf("counted %d spins, want 3", s.spins)
	}
	s.arrived(t0.Add(time.Second))
	if !s.again(t0.Add(time.Second + 10*time.Microsecond)) {
		t.Error("no spin after the next datagram")
	}
}

// TestSpinWhereItPays: a process with one P never spins, whatever asked.
func TestSpinWhereItPays(t *testing.T) {
	c := Config{Spin: 50 * time.Microsecond}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	if got := c.spin(); got != 0 {
		t.Errorf("GOMAXPROCS 1: spin %v, want 0", got)
	}
	runtime.GOMAXPROCS(2)
	if runtime.NumCPU() < 2 {
		return // NumCPU decides alone
	}
	if got := c.spin(); got != c.Spin {
		t.Errorf("GOMAXPROCS 2: spin %v, want %v", got, c.Spin)
	}
	if got := (Config{Spin: -1}).spin(); got != 0 {
		t.Errorf("negative Spin: spin %v, want 0", got)
	}
}
