package senders

import (
	"cmp"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// oracle is the package doc's rules written the obvious way, with maps
// instead of a bitmap and a quickselect, to check a Table against.
type oracle struct {
	max     int
	senders map[uint64]*oracleSender
	gone    Counts
	evicted uint64
}

type oracleSender struct {
	Sender
	high  uint64
	start uint64          // where tracking started or last restarted
	seen  map[uint64]bool // numbers delivered since start
	lost  int64           // Lost, signed so that an underflow shows
}

func (o *oracle) observe(t *testing.T, id, seq uint64, from netip.AddrPort, now time.Time) Verdict {
	s := o.senders[id]
	if s == nil {
		if len(o.senders) >= o.max {
			var all []*oracleSender
			for _, s := range o.senders {
				all = append(all, s)
			}
			slices.SortFunc(all, func(a, b *oracleSender) int {
				if c := a.Last.Compare(b.Last); c != 0 {
					return c
				}
				return cmp.Compare(a.ID, b.ID)
			})
			for _, s := range all[:max(o.max/4, 1)] {
				c := s.Counts
				c.Lost = uint64(s.lost)
				o.gone.add(c)
				o.evicted++
				delete(o.senders, s.ID)
			}
		}
		o.senders[id] = &oracleSender{
			Sender: Sender{ID: id, Addr: from, First: now, Last: now, Counts: Counts{Datagrams: 1}},
			high:   seq, start: seq, seen: map[uint64]bool{seq: true},
		}
		return Deliver
	}
	s.Last = now
	d := int64(seq - s.high)
	var v Verdict
	switch {
	case d >= 1 && d <= JumpLimit:
		v = Deliver
		s.lost += d - 1
		s.high = seq
	case d > -Window && d <= 0:
		if s.seen[seq] {
			s.Duplicates++
			return Duplicate
		}
		v = Reordered
		s.Reordered++
		if int64(seq-s.start) > 0 { // skipped since tracking started
			s.lost--
			if s.lost < 0 {
				t.Fatalf("sender %#x: Lost underflows at seq %#x", id, seq)
			}
		}
	case d >= -JumpLimit && d <= -Window:
		s.Late++
		return Late
	default:
		v = Jumped
		s.Jumps++
		s.high, s.start = seq, seq
		clear(s.seen)
	}
	if s.seen[seq] {
		t.Fatalf("sender %#x: seq %#x delivered twice without a restart", id, seq)
	}
	s.seen[seq] = true
	s.Datagrams++
	s.Addr = from
	return v
}

func (o *oracle) snapshot() []Sender {
	var out []Sender
	for _, s := range o.senders {
		c := *s
		c.Lost = uint64(s.lost)
		out = append(out, c.Sender)
	}
	slices.SortFunc(out, func(a, b Sender) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// FuzzObserve reads its input as datagrams from 8 senders into a table of
// 4, and checks every verdict, and at the end every count, against the
// oracle: so no panics, at most 4 senders tracked, no number delivered
// twice without a restart of its sender's tracking, and Lost never below
// zero.
//
// Each datagram is 3 bytes: ctl (bits 0-2 the sender, bits 3-5 how to
// pick the number from a and b, bit 6 the address, bit 7 advance the clock
// a second, else the time stays the same), a, b. The number is picked
// relative to the sender's highest h, so that the rules' boundaries are
// near: h+1, h+a, h-a, h-W+a-128, h+J+a-128, h-J+a-128, a<<56|b, h+(a<<8|b).
func FuzzObserve(f *testing.F) {
	f.Add([]byte{0x00, 0, 0, 0x00, 0, 0, 0x08, 5, 0, 0x10, 3, 0, 0x10, 3, 0})
	f.Add([]byte{0x01, 0, 0, 0x21, 128, 0, 0x19, 128, 0, 0x29, 127, 0, 0x29, 129, 0})
	f.Add([]byte{0x82, 0, 0, 0xb2, 0xff, 0xff, 0x82, 0, 0, 0x3a, 0xff, 0xfe, 0x12, 0, 0})
	f.Add([]byte{0x80, 0, 0, 0x81, 0, 0, 0x82, 0, 0, 0x83, 0, 0, 0x84, 0, 0, 0x05, 0, 0, 0x06, 0, 0, 0x87, 0, 0, 0x00, 0, 0})
	f.Add([]byte{0x03, 0, 0, 0x3b, 0x03, 0xff, 0x1b, 0x80, 0, 0x1b, 0x01, 0, 0x13, 0x80, 0})

	ids := []uint64{0, 1, 2, 3, 1 << 63, 1<<64 - 1, 42, 7}
	addrs := []netip.AddrPort{addrA, addrB}
	f.Fuzz(func(t *testing.T, data []byte) {
		const max = 4
		tab := New(max)
		o := &oracle{max: max, senders: map[uint64]*oracleSender{}}
		now := t0
		// 500 datagrams are plenty to churn 8 senders through 4 places;
		// the cap keeps each run, and so minimisation, fast.
		for k := 0; k < 500 && len(data) >= 3; k++ {
			ctl, a, b := data[0], uint64(data[1]), uint64(data[2])
			data = data[3:]
			id := ids[ctl&7]
			var h uint64
			if s := o.senders[id]; s != nil {
				h = s.high
			}
			var seq uint64
			switch ctl >> 3 & 7 {
			case 0:
				seq = h + 1
			case 1:
				seq = h + a
			case 2:
				seq = h - a
			case 3:
				seq = h - Window + a - 128
			case 4:
				seq = h + JumpLimit + a - 128
			case 5:
				seq = h - JumpLimit + a - 128
			case 6:
				seq = a<<56 | b
			case 7:
				seq = h + (a<<8 | b)
			}
			if ctl&0x80 != 0 {
				now = now.Add(time.Second)
			}
			from := addrs[ctl>>6&1]
			want := o.observe(t, id, seq, from, now)
			if got := tab.Observe(id, seq, from, now); got != want {
				t.Fatalf("datagram %d: sender %#x seq %#x: %v, want %v", k, id, seq, got, want)
			}
			if n := len(tab.byID); n > max {
				t.Fatalf("datagram %d: %d senders tracked", k, n)
			}
		}
		got, want := tab.Senders(nil), o.snapshot()
		if !slices.EqualFunc(got, want, func(a, b Sender) bool {
			return a.ID == b.ID && a.Addr == b.Addr && a.First.Equal(b.First) && a.Last.Equal(b.Last) && a.Counts == b.Counts
		}) {
			t.Fatalf("senders\n got %+v\nwant %+v", got, want)
		}
		tot := Totals{Counts: o.gone, Senders: len(want), Evicted: o.evicted}
		for _, s := range want {
			tot.add(s.Counts)
		}
		if got := tab.Totals(); got != tot {
			t.Fatalf("totals\n got %+v\nwant %+v", got, tot)
		}
	})
}
